"""Structured logs: one JSON object a line on stderr, with secrets redacted.

Probes and the agent log events with fields (``log.info("claimed", count=3)``);
any field whose name looks like a secret is replaced by a marker before it is
written, so a password given by mistake never reaches a log file.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from midprobe.probes.credentials.redact import REDACTED, redact_fields, redact_url


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(redact_fields(fields))
        if record.exc_info and record.exc_info[1] is not None:
            entry["error"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        return json.dumps(entry, default=str)


class StructuredLogger:
    """A thin wrapper so call sites read ``log.info("event", key=value)``."""

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)

    def _log(self, level: int, event: str, fields: dict[str, Any]) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, event, extra={"fields": fields})

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, event, fields)


def get_logger(name: str) -> StructuredLogger:
    return StructuredLogger(name)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes each record to ``sys.stderr`` as it is when the record comes, not as it was when the
    logs were configured: a stderr replaced since (a command run in-process, a test's capture)
    is followed, and one closed since is never written to."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        """``sys.stderr`` is always the stream; the one given is not kept."""


def configure(level: str = "info", stream: Any = None) -> None:
    """Send midprobe's logs as JSON lines to ``stream`` (stderr by default, as it is at each record)."""
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("midprobe")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


__all__ = ["REDACTED", "StructuredLogger", "configure", "get_logger", "redact_fields", "redact_url"]

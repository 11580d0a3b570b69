"""``open_queue(url)``: pick the backend from the URL (``sqlite:///...`` or ``postgresql://...``).

URLs are only ever shown through ``redact_url``: a PostgreSQL password never reaches a log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from midprobe.capabilities.errors import QueueError, QueueUrlError
from midprobe.probes.credentials.redact import redact_url
from midprobe.runner.ecc.record import ECC_PAYLOAD_CAP
from midprobe.runner.queue.base import EccQueue

SQLITE_PREFIX = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql", "postgres")
MEMORY = ":memory:"
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class SqliteLocation:
    """A SQLite database file, or ``:memory:`` (one private database per queue object)."""

    path: str

    @property
    def in_memory(self) -> bool:
        return self.path == MEMORY

    def require_existing(self) -> None:
        """``QueueError`` unless the database file exists: read-only commands never create one,
        so a mistyped ``--queue`` is told at once instead of reading an empty new database."""
        if not self.in_memory and not Path(self.path).is_file():
            raise QueueError(f"no database at {self.path} (nothing was written there yet: check --queue)")


@dataclass(frozen=True)
class PostgresLocation:
    """A PostgreSQL connection URL as libpq takes it."""

    url: str


def parse_queue_url(url: str) -> SqliteLocation | PostgresLocation:
    """Check a queue URL and say where it points; ``QueueUrlError`` (one line, password hidden) if bad.

    ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` (the SQLAlchemy
    convention: the path is what follows the third slash), ``sqlite:///:memory:``;
    ``postgresql://user:password@host:port/database?...`` (``postgres://`` too).
    """
    if not isinstance(url, str) or not url.strip():
        raise QueueUrlError("the queue URL is empty (use sqlite:///path.db or postgresql://...)")
    url = url.strip()
    shown = redact_url(url)
    match = _SCHEME.match(url)
    scheme = match.group(1).lower() if match else ""
    if scheme == "sqlite":
        if not url.startswith(SQLITE_PREFIX):
            raise QueueUrlError(
                f"{shown}: a SQLite queue URL has no host: write sqlite:///relative.db or sqlite:////abs/path.db"
            )
        raw = url[len(SQLITE_PREFIX) :]
        if "?" in raw or "#" in raw:
            raise QueueUrlError(f"{shown}: a SQLite queue URL takes no query or fragment")
        path = unquote(raw)
        if not path or path.endswith("/"):
            raise QueueUrlError(f"{shown}: the SQLite queue URL names no database file")
        if "\x00" in path:
            raise QueueUrlError(f"{shown}: the SQLite database path holds a NUL character")
        return SqliteLocation(path)
    if scheme in POSTGRES_SCHEMES:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018  (urlsplit checks the port only when asked)
        except ValueError as error:
            raise QueueUrlError(f"{shown}: not a valid PostgreSQL URL ({error})") from None
        if parts.fragment:
            raise QueueUrlError(f"{shown}: a PostgreSQL URL takes no #fragment")
        return PostgresLocation(url)
    if not scheme:
        raise QueueUrlError(f"{shown!r} is not a queue URL (use sqlite:///path.db or postgresql://...)")
    raise QueueUrlError(
        f"{shown}: unsupported queue URL scheme {scheme!r} (use sqlite:///path.db or postgresql://...)"
    )


def open_queue(
    url: str,
    *,
    payload_cap: int = ECC_PAYLOAD_CAP,
    busy_timeout_seconds: float = 30.0,
    must_exist: bool = False,
) -> EccQueue:
    """Open (creating the schema if needed) the ECC queue at ``url``.

    ``must_exist``: refuse a SQLite file that does not exist yet (for commands that only read).

    ``payload_cap``: payloads over this many bytes are stored aside as attachments.
    ``busy_timeout_seconds``: how long to wait for another writer's lock (SQLite) or
    for the connection and a statement (PostgreSQL) before raising ``QueueError``.
    """
    if isinstance(payload_cap, bool) or not isinstance(payload_cap, int) or payload_cap < 1:
        raise QueueUrlError(f"payload_cap must be a positive number of bytes, not {payload_cap!r}")
    location = parse_queue_url(url)
    if isinstance(location, SqliteLocation):
        if must_exist:
            location.require_existing()
        from midprobe.runner.queue.sqlite import SqliteQueue

        return SqliteQueue(
            location.path,
            url=redact_url(url.strip()),
            payload_cap=payload_cap,
            busy_timeout_seconds=busy_timeout_seconds,
        )
    from midprobe.runner.queue.postgres import PostgresQueue

    return PostgresQueue(location.url, payload_cap=payload_cap, busy_timeout_seconds=busy_timeout_seconds)


def sqlite_url(path: str | Path) -> str:
    """The queue URL of a SQLite file (absolute paths get the fourth slash)."""
    text = str(path)
    return SQLITE_PREFIX + (MEMORY if text == MEMORY else quote(text, safe="/"))


__all__ = [
    "PostgresLocation",
    "SqliteLocation",
    "open_queue",
    "parse_queue_url",
    "redact_url",
    "sqlite_url",
]

"""``open_queue(url)``: pick the backend from the URL (``sqlite:///...``, ``postgresql://...``, ``https://...``).

URLs are only ever shown through ``redact_url``: a PostgreSQL password never reaches a log.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
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
INSTANCE_PASSWORD_VARIABLE = "MIDPROBE_INSTANCE_PASSWORD"  # noqa: S105  (the variable's name, not a password)
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


@dataclass(frozen=True)
class InstanceLocation:
    """A midprobe instance serving the queue to agents: ``https://HOST:PORT`` (no path, no credentials)."""

    url: str


def _instance_location(url: str, shown: str) -> InstanceLocation:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise QueueUrlError(f"{shown}: not a valid instance URL ({error})") from None
    if parts.username is not None or parts.password is not None:
        raise QueueUrlError(
            f"{shown}: an instance URL carries no credentials"
            f" (give --user; the password comes from {INSTANCE_PASSWORD_VARIABLE})"
        )
    if not parts.hostname:
        raise QueueUrlError(f"{shown}: the instance URL names no host (https://HOST:PORT)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise QueueUrlError(f"{shown}: an instance URL is https://HOST:PORT, without path, query or fragment")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return InstanceLocation(f"https://{host}:{port or 443}")


def parse_queue_url(url: str) -> SqliteLocation | PostgresLocation | InstanceLocation:
    """Check a queue URL and say where it points; ``QueueUrlError`` (one line, password hidden) if bad.

    ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` (the SQLAlchemy
    convention: the path is what follows the third slash), ``sqlite:///:memory:``;
    ``postgresql://user:password@host:port/database?...`` (``postgres://`` too);
    ``https://HOST:PORT`` (a midprobe instance; the agent's ``--user`` and ``--ca`` go with it).
    """
    if not isinstance(url, str) or not url.strip():
        raise QueueUrlError(
            "the queue URL is empty (use sqlite:///path.db, postgresql://... or https://HOST:PORT)"
        )
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
    if scheme == "https":
        return _instance_location(url, shown)
    if not scheme:
        raise QueueUrlError(
            f"{shown!r} is not a queue URL (use sqlite:///path.db, postgresql://... or https://HOST:PORT)"
        )
    raise QueueUrlError(
        f"{shown}: unsupported queue URL scheme {scheme!r} (use sqlite:///path.db, postgresql://... or https://HOST:PORT)"
    )


def open_queue(
    url: str,
    *,
    payload_cap: int = ECC_PAYLOAD_CAP,
    busy_timeout_seconds: float = 30.0,
    must_exist: bool = False,
    user: str | None = None,
    ca_file: Path | None = None,
    spool_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    connections: int = 1,
) -> EccQueue:
    """Open (creating the schema if needed) the ECC queue at ``url``.

    ``must_exist``: refuse a SQLite file that does not exist yet (for commands that only read).

    ``payload_cap``: payloads over this many bytes are stored aside as attachments.
    ``busy_timeout_seconds``: how long to wait for another writer's lock (SQLite) or
    for the connection and a statement (PostgreSQL) before raising ``QueueError``.
    ``user``, ``ca_file``, ``spool_dir`` are for ``https://`` only: the instance user (its
    password from ``MIDPROBE_INSTANCE_PASSWORD`` in ``environ``, default ``os.environ``), the
    instance's CA (default: the system's CAs), and the folder of the result spool (none: no spool);
    ``cert_file`` and ``key_file``: a client certificate the instance issued (then the password
    may be left unset: the certificate logs the user in).
    ``connections``: PostgreSQL only, how many calls may run at once (the instance's pool).
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
    if isinstance(location, InstanceLocation):
        return _open_instance(location, payload_cap, user, (ca_file, cert_file, key_file), spool_dir, environ)
    from midprobe.runner.queue.postgres import PostgresQueue

    return PostgresQueue(
        location.url,
        payload_cap=payload_cap,
        busy_timeout_seconds=busy_timeout_seconds,
        connections=connections,
    )


def _open_instance(
    location: InstanceLocation,
    payload_cap: int,
    user: str | None,
    tls_files: tuple[Path | None, Path | None, Path | None],
    spool_dir: Path | None,
    environ: Mapping[str, str] | None,
) -> EccQueue:
    from midprobe.runner.queue.https import HttpsQueue, tls_context
    from midprobe.runner.queue.spool import ResultSpool

    if not user:
        raise QueueUrlError(
            f"{location.url}: an https:// queue is for agents: midprobe agent --user NAME (others need the database URL)"
        )
    password = (os.environ if environ is None else environ).get(INSTANCE_PASSWORD_VARIABLE, "")
    ca_file, cert_file, key_file = tls_files
    if not password and cert_file is None:
        raise QueueUrlError(
            f"{location.url}: set {INSTANCE_PASSWORD_VARIABLE} to the password of user {user!r}"
        )
    return HttpsQueue(
        location.url,
        user=user,
        password=password or None,
        verify=tls_context(ca_file, cert_file, key_file),
        spool=ResultSpool(spool_dir) if spool_dir is not None else None,
        payload_cap=payload_cap,
    )


def sqlite_url(path: str | Path) -> str:
    """The queue URL of a SQLite file (absolute paths get the fourth slash)."""
    text = str(path)
    return SQLITE_PREFIX + (MEMORY if text == MEMORY else quote(text, safe="/"))


__all__ = [
    "INSTANCE_PASSWORD_VARIABLE",
    "InstanceLocation",
    "PostgresLocation",
    "SqliteLocation",
    "open_queue",
    "parse_queue_url",
    "redact_url",
    "sqlite_url",
]

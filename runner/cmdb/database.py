"""The CMDB's connection to the queue's database: one small interface over sqlite3 and psycopg.

The CMDB lives in the same database as the ECC queue, so one ``--queue URL`` names both.
Statements use ``?`` placeholders; the PostgreSQL side rewrites them.
"""

from __future__ import annotations

import builtins
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

from midprobe.capabilities.errors import QueueError, QueueUrlError
from midprobe.probes.credentials.redact import redact_url
from midprobe.runner.queue.url import InstanceLocation, SqliteLocation, parse_queue_url

Row = tuple[Any, ...]

#: Serialises identification between processes on PostgreSQL ("midcmdb").
_IDENTIFY_LOCK_KEY = 0x6D69_6463_6D64_62


class Executor(Protocol):
    def execute(self, sql: str, params: Sequence[object] = ()) -> builtins.list[Row]: ...


def _message(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


class _SqliteExecutor:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def execute(self, sql: str, params: Sequence[object] = ()) -> builtins.list[Row]:
        cursor = self._connection.execute(sql, tuple(params))
        return [tuple(row) for row in cursor.fetchall()] if cursor.description else []


class SqliteDatabase:
    dialect = "sqlite"

    def __init__(self, path: str, *, must_exist: bool = False, busy_timeout_seconds: float = 30.0) -> None:
        if must_exist:
            SqliteLocation(path).require_existing()
        try:
            self._connection = sqlite3.connect(
                path, timeout=busy_timeout_seconds, isolation_level=None, check_same_thread=False
            )
            self._connection.execute("PRAGMA journal_mode=WAL")
            # As the queue's connections have it: in WAL mode a commit survives a crashed process
            # without an fsync per commit (the discovery status writes one per device and phase).
            self._connection.execute("PRAGMA synchronous=NORMAL")
            self._connection.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as error:
            raise QueueError(f"cannot open the CMDB database {path}: {_message(error)}") from None
        self._lock = threading.Lock()

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Executor]:
        """One transaction; ``write=False`` for reads only (no write lock taken up front)."""
        with self._lock:
            try:
                self._connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield _SqliteExecutor(self._connection)
                except BaseException:
                    self._connection.execute("ROLLBACK")
                    raise
                self._connection.execute("COMMIT")
            except sqlite3.Error as error:
                raise QueueError(f"CMDB database error: {_message(error)}") from None

    def close(self) -> None:
        self._connection.close()


class _PostgresExecutor:
    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[object] = ()) -> builtins.list[Row]:
        self._cursor.execute(sql.replace("?", "%s"), tuple(params))
        return [tuple(row) for row in self._cursor.fetchall()] if self._cursor.description else []


class PostgresDatabase:
    dialect = "postgresql"

    def __init__(self, url: str, *, busy_timeout_seconds: float = 30.0) -> None:
        import psycopg

        self._psycopg = psycopg
        self._shown = redact_url(url)
        try:
            self._connection = psycopg.connect(
                url, autocommit=True, connect_timeout=max(1, int(busy_timeout_seconds))
            )
        except psycopg.Error as error:
            raise QueueError(f"cannot connect to {self._shown}: {self._scrub(error)}") from None
        self._lock = threading.Lock()

    def _scrub(self, error: BaseException) -> str:
        return redact_url(_message(error))

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Executor]:
        """One transaction; a writing one is serialised with every other writer (an advisory lock)."""
        with self._lock:
            try:
                with self._connection.transaction(), self._connection.cursor() as cursor:
                    if write:
                        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_IDENTIFY_LOCK_KEY,))
                    yield _PostgresExecutor(cursor)
            except self._psycopg.Error as error:
                raise QueueError(f"CMDB database error on {self._shown}: {self._scrub(error)}") from None

    def close(self) -> None:
        self._connection.close()


Database = SqliteDatabase | PostgresDatabase
Clock = Callable[[], datetime]


def timestamp(moment: datetime) -> str:
    """Stored timestamps: fixed width, UTC, so text order is time order on both backends."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class SqlStore:
    """A store of tables in the queue's database: its schema, an injectable clock, ordered keys."""

    schema: tuple[str, ...] = ()

    def __init__(self, database: Database, *, clock: Clock | None = None) -> None:
        self._db = database
        self._clock = clock or (lambda: datetime.now(UTC))
        self._sequence = 0
        #: Tells this store's keys from another process's written in the same microsecond.
        self._token = secrets.token_hex(4)
        with self._db.transaction() as tx:
            for statement in self.schema:
                tx.execute(statement)

    def _now(self) -> str:
        return timestamp(self._clock())

    def _ordered_key(self, now: str) -> str:
        """A key that sorts in write order (time, then a per-store counter, then the store's own
        random token, which keeps two processes' keys apart)."""
        self._sequence += 1
        return f"{now}|{self._sequence:08d}|{self._token}"


def open_database(url: str, *, must_exist: bool = False) -> Database:
    """The database a queue URL names (``sqlite:///...`` or ``postgresql://...``)."""
    location = parse_queue_url(url)
    if isinstance(location, SqliteLocation):
        return SqliteDatabase(location.path, must_exist=must_exist)
    if isinstance(location, InstanceLocation):
        raise QueueUrlError(
            f"{location.url}: this needs the database itself (sqlite:///... or postgresql://...)"
        )
    return PostgresDatabase(location.url)

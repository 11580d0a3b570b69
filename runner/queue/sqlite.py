"""The embedded ECC queue: one SQLite file in WAL mode, safe for several agent processes on one machine.

Every write runs inside ``BEGIN IMMEDIATE`` (one writer at a time, others wait up to
the busy timeout), so a claim's SELECT and UPDATE see and change the same rows.
"""

from __future__ import annotations

import builtins
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from midprobe.capabilities.errors import QueueError
from midprobe.runner.ecc.record import ECC_PAYLOAD_CAP, QUEUE_PROCESSING_TOPIC, utc_now
from midprobe.runner.queue.schema import ONE_RESULT_PREDICATE, OTHER_RESPONSE_PREDICATE, SQLITE_DIALECT
from midprobe.runner.queue.sqlbase import Row, SqlQueue, Transaction, UnreadableData

#: Stored timestamp format: fixed width, UTC, so text order is time order.
TIMESTAMP_FORMAT: Final = "%Y-%m-%d %H:%M:%S.%f"
_TIMESTAMP_LENGTH: Final = len("2000-01-01 00:00:00.000000")
MEMORY: Final = ":memory:"


def _message(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


class _SqliteTransaction:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def execute(self, sql: str, params: Sequence[object] = ()) -> builtins.list[Row]:
        try:
            cursor = self._connection.execute(sql, tuple(params))
            if cursor.description is None:
                return []
            return [tuple(row) for row in cursor.fetchall()]
        except sqlite3.OperationalError as error:
            if str(error).startswith("Could not decode"):  # stored text that is not UTF-8
                raise UnreadableData(_message(error)) from None
            raise


BOOT_ID_FILE: Final = "/proc/sys/kernel/random/boot_id"


def _boot_id() -> str:
    try:
        return Path(BOOT_ID_FILE).read_text(encoding="ascii").strip() or "boot"
    except OSError:
        return "boot"


def boot_clock() -> tuple[str, float]:
    """(boot id, seconds since boot): monotonic, shared by every process on the machine.

    Counts time spent suspended (``CLOCK_BOOTTIME``) and never steps with the wall clock;
    after a reboot the boot id changes, so every lease taken before it counts as expired.
    """
    return _BOOT_ID, time.clock_gettime(time.CLOCK_BOOTTIME)


_BOOT_ID: Final = _boot_id()


#: How often ``wait_for_work`` looks for commits by other connections.
WATCH_INTERVAL_SECONDS = 0.1


class SqliteQueue(SqlQueue):
    """The ECC queue in a SQLite file (or ``:memory:``, private to this object: for tests)."""

    dialect = SQLITE_DIALECT
    results_index_hint = " INDEXED BY ecc_queue_one_result"
    other_response_index_hint = " INDEXED BY ecc_queue_other_response_to"

    def __init__(
        self,
        path: str | Path,
        *,
        url: str | None = None,
        payload_cap: int = ECC_PAYLOAD_CAP,
        busy_timeout_seconds: float = 30.0,
        lease_clock: Callable[[], tuple[str, float]] = boot_clock,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """``lease_clock`` and ``clock`` (the wall clock of timestamps; default ``utc_now``) are for tests."""
        self.path = str(path)
        self._lease_clock_source = lease_clock
        self._clock = clock
        super().__init__(url=url or f"sqlite:///{self.path}", payload_cap=payload_cap)
        if self.path != MEMORY:
            parent = Path(self.path).expanduser().resolve().parent
            if not parent.is_dir():
                raise QueueError(f"queue {self.url}: directory {parent} does not exist")
        try:
            self._connection = sqlite3.connect(
                self.path,
                timeout=busy_timeout_seconds,
                isolation_level=None,  # we issue BEGIN IMMEDIATE / COMMIT ourselves
                check_same_thread=False,  # calls are serialised by self._lock
            )
        except sqlite3.Error as error:
            raise QueueError(f"queue {self.url}: cannot open: {_message(error)}") from None
        try:
            self._setup(busy_timeout_seconds)
            #: ``PRAGMA data_version`` when ``wait_for_work`` last looked (commits by others change it).
            self._seen_version = self._data_version()
        except BaseException:
            self._connection.close()
            raise

    def _setup(self, busy_timeout_seconds: float) -> None:
        try:
            connection = self._connection
            connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_seconds * 1000)}")
            if self.path != MEMORY:
                mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()
                if mode is None or str(mode[0]).lower() != "wal":
                    raise QueueError(f"queue {self.url}: cannot switch the database to WAL mode")
                connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as error:
            raise QueueError(f"queue {self.url}: cannot open: {_message(error)}") from None
        with self._write() as tx:
            self._ensure_schema(tx)

    @contextmanager
    def _write(self) -> Iterator[Transaction]:
        with self._lock:
            self._check_open()
            connection = self._connection
            try:
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as error:
                raise QueueError(f"queue {self.url}: {_message(error)}") from None
            try:
                yield _SqliteTransaction(connection)
                connection.execute("COMMIT")
            except BaseException as error:
                try:
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # the original error says more than a failed rollback
                if isinstance(error, sqlite3.Error):
                    raise QueueError(f"queue {self.url}: {_message(error)}") from None
                raise

    @contextmanager
    def _read(self) -> Iterator[Transaction]:
        with self._lock:
            self._check_open()
            try:
                yield _SqliteTransaction(self._connection)
            except sqlite3.Error as error:
                raise QueueError(f"queue {self.url}: {_message(error)}") from None

    def _now(self, tx: Transaction) -> datetime:
        return utc_now() if self._clock is None else self._clock()

    def _lease_clock(self, tx: Transaction, now: datetime) -> tuple[str, float]:
        return self._lease_clock_source()

    def _ts_param(self, moment: datetime) -> object:
        return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)

    def _ts_value(self, raw: object) -> datetime | None:
        if raw is None:
            return None
        text = str(raw)
        # fromisoformat is strptime's result ten times faster; the length and the separators
        # keep it to exactly TIMESTAMP_FORMAT (it would take other ISO 8601 shapes too).
        if len(text) == _TIMESTAMP_LENGTH and text[10] == " " and text[19] == ".":
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                pass
            else:
                if moment.tzinfo is None:
                    return moment.replace(tzinfo=UTC)
        raise QueueError(f"queue {self.url}: stored time {raw!r} is not in {TIMESTAMP_FORMAT}")

    def _notify_ready(self, tx: Transaction, agents: set[str]) -> None:
        """Nothing to send: the commit itself is what waiting agents see (``data_version``)."""

    def discard(self, output_sys_ids: Sequence[str]) -> None:
        """Delete these records (outputs with their answers and attachments, or answers read page by
        page) and the claim records already written: for a private queue whose user has read the
        answers (``runner/agent/embedded.py``), so a long scan does not keep every request in memory.
        Not part of the ECC queue protocol."""
        ids = list(output_sys_ids)
        if not ids:
            return
        marks = ", ".join("?" * len(ids))
        with self._write() as tx:
            for hint, among in (
                (self.results_index_hint, ONE_RESULT_PREDICATE),
                (self.other_response_index_hint, OTHER_RESPONSE_PREDICATE),
            ):
                tx.execute(f"DELETE FROM ecc_queue{hint} WHERE response_to IN ({marks}) AND {among}", ids)  # noqa: S608
            tx.execute(f"DELETE FROM ecc_queue WHERE sys_id IN ({marks})", ids)  # noqa: S608
            tx.execute(
                "DELETE FROM ecc_queue WHERE topic = ? AND state = 'processed'", [QUEUE_PROCESSING_TOPIC]
            )

    def drop_payloads(self, sys_ids: Sequence[str]) -> None:
        """Empty these answers' payloads (and attachments), keeping their rows: the pages of a result
        its private user sensed already still count towards the result's being whole, without
        holding what they said. Not part of the ECC queue protocol."""
        ids = list(sys_ids)
        if not ids:
            return
        marks = ", ".join("?" * len(ids))
        with self._write() as tx:
            tx.execute(f"UPDATE ecc_queue SET payload = '' WHERE sys_id IN ({marks})", ids)  # noqa: S608
            tx.execute(f"DELETE FROM ecc_attachment WHERE sys_id IN ({marks})", ids)  # noqa: S608

    def wait_for_work(self, agent: str, timeout: float) -> bool:
        """True as soon as another connection has committed since the last look, else False at ``timeout``.

        SQLite has no notifications; a commit by anyone else (a user enqueueing, an agent
        releasing work) is the sign to claim again. The version last seen is kept between
        calls (from the moment the queue was opened), so a commit that lands between two
        calls is not lost. The lock is held only for each look.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            current = self._data_version()
            if current != self._seen_version:
                self._seen_version = current
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(WATCH_INTERVAL_SECONDS, left))

    def _data_version(self) -> int:
        with self._read() as tx:
            return int(tx.execute("PRAGMA data_version")[0][0])

    def _close_connection(self) -> None:
        try:
            self._connection.close()
        except sqlite3.Error as error:
            raise QueueError(f"queue {self.url}: close failed: {_message(error)}") from None


__all__ = ["SqliteQueue", "boot_clock"]

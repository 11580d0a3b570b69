"""The discovery status record: state, per-phase counts, the outputs each phase put on the queue, a device log.

Kept in the queue's database beside the CMDB. Every output a discovery sends is written
here first (``plan``) with the ``sys_id`` it will have, then enqueued; a discovery resumed
after a crash enqueues what was planned but never reached the queue, and senses each answer
once (``sense`` marks the output done in the same transaction that reads its state).
"""

# ruff: noqa: S608  (f-strings only splice in constant column lists)

from __future__ import annotations

import contextlib
import functools
import json
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from midprobe.capabilities.errors import ConfigError
from midprobe.runner.cmdb.database import Executor, SqlStore

State = Literal["Starting", "Active", "Completed", "Cancelled"]
STATES: Final[tuple[State, ...]] = ("Starting", "Active", "Completed", "Cancelled")
#: The phases in order; a device's log says which ran and why one was skipped.
PHASES: Final = ("scanning", "classification", "identification", "exploration")
OutputState = Literal["planned", "queued", "completed", "error", "cancelled"]

SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS discovery_status (
        sys_id TEXT PRIMARY KEY, name TEXT NOT NULL, state TEXT NOT NULL, schedule TEXT NOT NULL,
        started TEXT NOT NULL, finished TEXT, max_run_time REAL, note TEXT)""",
    """CREATE TABLE IF NOT EXISTS discovery_output (
        sys_id TEXT PRIMARY KEY, status TEXT NOT NULL, phase TEXT NOT NULL, target TEXT NOT NULL,
        topic TEXT NOT NULL, agent TEXT NOT NULL, state TEXT NOT NULL, record TEXT NOT NULL,
        planned TEXT NOT NULL, done TEXT, UNIQUE (status, phase, target, topic))""",
    "CREATE INDEX IF NOT EXISTS discovery_output_status ON discovery_output (status, state)",
    "CREATE INDEX IF NOT EXISTS discovery_output_target ON discovery_output (status, target)",
    """CREATE TABLE IF NOT EXISTS discovery_log (
        seq TEXT PRIMARY KEY, status TEXT NOT NULL, device TEXT NOT NULL, phase TEXT NOT NULL,
        message TEXT NOT NULL, at TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS discovery_log_status ON discovery_log (status, device)",
    # How many pages of an output's result in pages were sensed before the whole result was in.
    """CREATE TABLE IF NOT EXISTS discovery_page (
        output TEXT PRIMARY KEY, sensed INTEGER NOT NULL)""",
    # The addresses in a discovery's ranges, and those each sweep or port scan decided so far.
    """CREATE TABLE IF NOT EXISTS discovery_scope (
        status TEXT PRIMARY KEY, addresses INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS discovery_decided (
        output TEXT PRIMARY KEY, status TEXT NOT NULL, decided INTEGER NOT NULL,
        alive INTEGER NOT NULL, incomplete INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS discovery_decided_status ON discovery_decided (status)",
)


@dataclass(frozen=True)
class PhaseCounts:
    started: int = 0
    completed: int = 0
    error: int = 0

    @property
    def pending(self) -> int:
        return self.started - self.completed - self.error


@dataclass(frozen=True)
class AddressCounts:
    """How far scanning got: the addresses in the ranges, those decided (swept silent, or port-scanned),
    those that answered, and those the kernel would not let every probe go to (not known to be down)."""

    total: int = 0
    decided: int = 0
    alive: int = 0
    incomplete: int = 0

    def describe(self) -> str:
        """``1,024 of 65,536 decided, 1,023 alive, 1 incomplete`` (``discover status``, the console)."""
        incomplete = f", {self.incomplete:,} incomplete" if self.incomplete else ""
        return f"{self.decided:,} of {self.total:,} decided, {self.alive:,} alive{incomplete}"


@dataclass(frozen=True)
class DiscoveryStatus:
    """A discovery as ``discover status`` shows it."""

    sys_id: str
    name: str
    state: State
    started: str
    finished: str | None
    max_run_time: float | None
    note: str | None
    phases: Mapping[str, PhaseCounts] = field(default_factory=dict)
    addresses: AddressCounts = field(default_factory=AddressCounts)

    @property
    def done(self) -> bool:
        return self.state in ("Completed", "Cancelled")

    def as_dict(self) -> dict[str, object]:
        return {
            "sys_id": self.sys_id,
            "name": self.name,
            "state": self.state,
            "started": self.started,
            "finished": self.finished,
            "max_run_time": self.max_run_time,
            "note": self.note,
            "phases": {phase: vars(counts) for phase, counts in self.phases.items()},
            "addresses": vars(self.addresses),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> DiscoveryStatus:
        """The status ``as_dict`` wrote (as an instance sends it); ``ConfigError`` if it is not one."""
        try:
            phases = data.get("phases") or {}
            assert isinstance(phases, dict)
            addresses = data.get("addresses") or {}  # an instance of before the counts sends none
            assert isinstance(addresses, dict)
            state = str(data["state"])
            if state not in STATES:
                raise ValueError(state)
            return cls(
                sys_id=str(data["sys_id"]),
                name=str(data["name"]),
                state=state,
                started=str(data["started"]),
                finished=None if data.get("finished") is None else str(data["finished"]),
                max_run_time=None if data.get("max_run_time") is None else float(str(data["max_run_time"])),
                note=None if data.get("note") is None else str(data["note"]),
                phases={str(phase): PhaseCounts(**counts) for phase, counts in phases.items()},
                addresses=AddressCounts(**{str(k): int(v) for k, v in addresses.items()}),
            )
        except (KeyError, TypeError, ValueError, AssertionError):
            raise ConfigError(
                "the instance sent a discovery status of another shape", field="status"
            ) from None


@dataclass(frozen=True)
class PlannedOutput:
    sys_id: str
    phase: str
    target: str
    topic: str
    agent: str
    state: OutputState
    #: The planned record as stored (JSON): read only when asked for (:attr:`record`), since a
    #: pass over thousands of waiting outputs looks at a few of them.
    stored: str

    @functools.cached_property
    def record(self) -> Mapping[str, object]:
        """The planned record: ``sys_id``, the ECC output ``record`` and the planner's ``meta``."""
        value: Mapping[str, object] = json.loads(self.stored)
        return value


class StatusStore(SqlStore):
    """Discovery status records in the queue's database.

    Inside :meth:`batched` (one pass of the orchestrator), log lines and forgotten devices are
    written together when the block ends, or before anything reads the log.
    """

    schema = SCHEMA
    #: Log lines (seq, status, device, phase, message, at) and devices to forget, while batched.
    _pending: list[tuple[str, str, str, str, str, str]] | None = None
    _forgotten: list[tuple[str, str]] | None = None

    @contextlib.contextmanager
    def batched(self) -> Iterator[None]:
        """Write the block's log lines (and forget its devices) in one transaction at its end."""
        if self._pending is not None:  # a block inside a block: the outer one writes
            yield
            return
        self._pending, self._forgotten = [], []
        try:
            yield
        finally:
            try:
                self._flush()
            finally:
                self._pending = self._forgotten = None

    def _flush(self) -> None:
        pending, forgotten = self._pending, self._forgotten
        if not pending and not forgotten:
            return
        self._pending, self._forgotten = [], []
        gone = set(forgotten or ())
        with self._db.transaction() as tx:
            for row in pending or ():
                if (row[1], row[2]) not in gone:
                    tx.execute(
                        "INSERT INTO discovery_log (seq, status, device, phase, message, at) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        row,
                    )
            for status, device in forgotten or ():
                tx.execute("DELETE FROM discovery_output WHERE status = ? AND target = ?", [status, device])
                tx.execute("DELETE FROM discovery_log WHERE status = ? AND device = ?", [status, device])

    def create(
        self, name: str, schedule: Mapping[str, object], max_run_time: float | None, *, addresses: int = 0
    ) -> str:
        """A new discovery, Starting, of ``addresses`` addresses (its ranges'); its sys_id."""
        sys_id = secrets.token_hex(16)
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO discovery_status (sys_id, name, state, schedule, started, max_run_time) "
                "VALUES (?, ?, 'Starting', ?, ?, ?)",
                [sys_id, name, json.dumps(schedule, default=str), self._now(), max_run_time],
            )
            tx.execute("INSERT INTO discovery_scope (status, addresses) VALUES (?, ?)", [sys_id, addresses])
        return sys_id

    def set_state(self, sys_id: str, state: State, note: str | None = None) -> None:
        finished = self._now() if state in ("Completed", "Cancelled") else None
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE discovery_status SET state = ?, finished = COALESCE(?, finished), "
                "note = COALESCE(?, note) WHERE sys_id = ?",
                [state, finished, note, sys_id],
            )

    def schedule_of(self, sys_id: str) -> dict[str, object]:
        with self._db.transaction() as tx:
            rows = tx.execute("SELECT schedule FROM discovery_status WHERE sys_id = ?", [sys_id])
        if not rows:
            raise ConfigError(f"no discovery {sys_id!r}", field="ID")
        loaded: dict[str, object] = json.loads(rows[0][0])
        return loaded

    def get(self, reference: str) -> DiscoveryStatus:
        """A discovery by sys_id or a unique sys_id prefix."""
        text = reference.strip().lower() if isinstance(reference, str) else ""
        if not text or not all(c in "0123456789abcdef" for c in text):
            raise ConfigError(f"{reference!r} is not a discovery id (hex sys_id or prefix)", field="ID")
        with self._db.transaction() as tx:
            rows = tx.execute(
                "SELECT sys_id, name, state, started, finished, max_run_time, note FROM discovery_status "
                "WHERE sys_id LIKE ? ORDER BY started",
                [text + "%"],
            )
            if not rows:
                raise ConfigError(f"no discovery {reference!r}", field="ID")
            if len(rows) > 1:
                raise ConfigError(
                    f"{reference!r} names {len(rows)} discoveries; give more of the id", field="ID"
                )
            counts = tx.execute(
                "SELECT phase, state, COUNT(*) FROM discovery_output WHERE status = ? GROUP BY phase, state",
                [rows[0][0]],
            )
            addresses = self._addresses(tx, str(rows[0][0]))
        return self._status(rows[0], counts, addresses)

    @staticmethod
    def _addresses(tx: Executor, status: str) -> AddressCounts:
        scope = tx.execute("SELECT addresses FROM discovery_scope WHERE status = ?", [status])
        sums = tx.execute(
            "SELECT COALESCE(SUM(decided), 0), COALESCE(SUM(alive), 0), COALESCE(SUM(incomplete), 0) "
            "FROM discovery_decided WHERE status = ?",
            [status],
        )
        decided, alive, incomplete = (int(str(value)) for value in sums[0])
        return AddressCounts(int(str(scope[0][0])) if scope else 0, decided, alive, incomplete)

    def addresses(self, status: str) -> AddressCounts:
        """The discovery's address counts alone (a caller following it as it goes reads them per pass)."""
        with self._db.transaction(write=False) as tx:
            return self._addresses(tx, status)

    def count_addresses(
        self, status: str, output: str, *, decided: int, alive: int = 0, incomplete: int = 0
    ) -> None:
        """What a sensed sweep or port-scan page of ``output`` decided: ``decided`` addresses in all
        so far (an output's count only grows), ``alive`` and ``incomplete`` more hosts."""
        with self._db.transaction() as tx:
            rows = tx.execute(
                "SELECT decided, alive, incomplete FROM discovery_decided WHERE output = ?", [output]
            )
            if rows:
                before = [int(str(value)) for value in rows[0]]
                tx.execute(
                    "UPDATE discovery_decided SET decided = ?, alive = ?, incomplete = ? WHERE output = ?",
                    [max(before[0], decided), before[1] + alive, before[2] + incomplete, output],
                )
            else:
                tx.execute(
                    "INSERT INTO discovery_decided (output, status, decided, alive, incomplete) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [output, status, decided, alive, incomplete],
                )

    @staticmethod
    def _status(
        row: tuple[object, ...], counts: list[tuple[object, ...]], addresses: AddressCounts
    ) -> DiscoveryStatus:
        tally: dict[str, dict[str, int]] = {p: {"started": 0, "completed": 0, "error": 0} for p in PHASES}
        for phase, state, count in counts:
            entry = tally.setdefault(str(phase), {"started": 0, "completed": 0, "error": 0})
            number = int(str(count))
            if state != "planned":
                entry["started"] += number
            if state in ("completed", "error"):
                entry[str(state)] += number
            elif state == "cancelled":
                entry["error"] += number
        return DiscoveryStatus(
            sys_id=str(row[0]),
            name=str(row[1]),
            state=row[2],  # type: ignore[arg-type]
            started=str(row[3]),
            finished=None if row[4] is None else str(row[4]),
            max_run_time=None if row[5] is None else float(str(row[5])),
            note=None if row[6] is None else str(row[6]),
            phases={phase: PhaseCounts(**numbers) for phase, numbers in tally.items()},
            addresses=addresses,
        )

    def running(self) -> list[str]:
        """The ids of the discoveries not yet Completed or Cancelled, oldest first."""
        with self._db.transaction(write=False) as tx:
            rows = tx.execute(
                "SELECT sys_id FROM discovery_status WHERE state IN ('Starting', 'Active') ORDER BY started"
            )
        return [str(row[0]) for row in rows]

    def list_all(self) -> list[DiscoveryStatus]:
        with self._db.transaction() as tx:
            rows = tx.execute(
                "SELECT sys_id, name, state, started, finished, max_run_time, note FROM discovery_status "
                "ORDER BY started DESC"
            )
            found = []
            for row in rows:
                counts = tx.execute(
                    "SELECT phase, state, COUNT(*) FROM discovery_output WHERE status = ? GROUP BY phase, state",
                    [row[0]],
                )
                found.append(self._status(row, counts, self._addresses(tx, str(row[0]))))
        return found

    # -- outputs -------------------------------------------------------------------------------

    def plan(
        self, status: str, phase: str, target: str, topic: str, agent: str, record: Mapping[str, object]
    ) -> str | None:
        """Write down an output before it is enqueued; None if this phase already ran for this target."""
        sys_id = str(record["sys_id"])
        with self._db.transaction() as tx:
            if tx.execute(
                "SELECT 1 FROM discovery_output WHERE status = ? AND phase = ? AND target = ? AND topic = ?",
                [status, phase, target, topic],
            ):
                return None
            tx.execute(
                "INSERT INTO discovery_output (sys_id, status, phase, target, topic, agent, state, record, planned) "
                "VALUES (?, ?, ?, ?, ?, ?, 'planned', ?, ?)",
                [sys_id, status, phase, target, topic, agent, json.dumps(record), self._now()],
            )
        return sys_id

    def mark(self, output: str, state: OutputState, *, only_from: tuple[OutputState, ...] = ()) -> bool:
        """Move an output to ``state``; with ``only_from``, only from those states (True if it moved)."""
        where, params = "sys_id = ?", [output]
        if only_from:
            where += f" AND state IN ({', '.join('?' * len(only_from))})"
            params += list(only_from)
        done = self._now() if state in ("completed", "error", "cancelled") else None
        with self._db.transaction() as tx:
            moved = tx.execute(
                f"UPDATE discovery_output SET state = ?, done = ? WHERE {where} RETURNING sys_id",
                [state, done, *params],
            )
        return bool(moved)

    def device_counts(self, status: str) -> tuple[int, int]:
        """``(devices, done)``: addresses that got an output after scanning, and those with none pending."""
        with self._db.transaction() as tx:
            rows = tx.execute(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN busy = 0 THEN 1 ELSE 0 END), 0) FROM ("
                "SELECT target, SUM(CASE WHEN state IN ('planned', 'queued') THEN 1 ELSE 0 END) AS busy "
                "FROM discovery_output WHERE status = ? AND phase != 'scanning' GROUP BY target) AS devices",
                [status],
            )
        return int(str(rows[0][0])), int(str(rows[0][1]))

    def pages_sensed(self, output: str) -> int:
        """How many pages of ``output``'s result were sensed as they came."""
        with self._db.transaction(write=False) as tx:
            rows = tx.execute("SELECT sensed FROM discovery_page WHERE output = ?", [output])
        return int(str(rows[0][0])) if rows else 0

    def claim_pages(self, output: str, before: int, after: int) -> bool:
        """Move ``output``'s sensed pages from ``before`` to ``after``; False when another pass did."""
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO discovery_page (output, sensed) VALUES (?, 0) ON CONFLICT (output) DO NOTHING",
                [output],
            )
            moved = tx.execute(
                "UPDATE discovery_page SET sensed = ? WHERE output = ? AND sensed = ? RETURNING output",
                [after, output, before],
            )
        return bool(moved)

    def waiting_for(self, status: str, target: str) -> bool:
        """Whether an output for ``target`` (a device's address) is planned or queued."""
        with self._db.transaction() as tx:
            rows = tx.execute(
                "SELECT 1 FROM discovery_output WHERE status = ? AND target = ? "
                "AND state IN ('planned', 'queued') LIMIT 1",
                [status, target],
            )
        return bool(rows)

    def forget_device(self, status: str, device: str) -> None:
        """Delete a finished device's outputs and log lines (a private one-off discovery, which
        reported the device already and keeps only what is under way)."""
        if self._forgotten is not None:
            self._forgotten.append((status, device))
            return
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM discovery_output WHERE status = ? AND target = ?", [status, device])
            tx.execute("DELETE FROM discovery_log WHERE status = ? AND device = ?", [status, device])

    def reassign(self, output: str, agent: str) -> None:
        """The output was moved to another MID (cluster failover)."""
        with self._db.transaction() as tx:
            tx.execute("UPDATE discovery_output SET agent = ? WHERE sys_id = ?", [agent, output])

    def outputs(self, status: str, *states: OutputState, target: str | None = None) -> list[PlannedOutput]:
        """The discovery's outputs (in those states; for that ``target`` only: a device's address)."""
        where, params = "status = ?", [status]
        if target is not None:
            where += " AND target = ?"
            params.append(target)
        if states:
            where += f" AND state IN ({', '.join('?' * len(states))})"
            params += list(states)
        with self._db.transaction() as tx:
            rows = tx.execute(
                f"SELECT sys_id, phase, target, topic, agent, state, record FROM discovery_output WHERE {where} "
                "ORDER BY planned, sys_id",
                params,
            )
        return [
            PlannedOutput(str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), r[5], str(r[6]))
            for r in rows
        ]

    # -- the per-device log ----------------------------------------------------------------------

    def log(self, status: str, device: str, phase: str, message: str) -> None:
        now = self._now()
        if self._pending is not None:
            self._pending.append((self._ordered_key(now), status, device, phase, message, now))
            return
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO discovery_log (seq, status, device, phase, message, at) VALUES (?, ?, ?, ?, ?, ?)",
                [self._ordered_key(now), status, device, phase, message, now],
            )

    def logged(self, status: str, device: str, message: str, *, like: bool = False) -> bool:
        """Whether the device's log has this very line (``like``: a line matching the SQL LIKE
        pattern ``message``)."""
        test = "LIKE" if like else "="
        self._flush()
        with self._db.transaction(write=False) as tx:
            rows = tx.execute(
                f"SELECT 1 FROM discovery_log WHERE status = ? AND device = ? AND message {test} ? LIMIT 1",
                [status, device, message],
            )
        return bool(rows)

    def device_log(self, status: str) -> list[dict[str, str]]:
        self._flush()
        with self._db.transaction() as tx:
            rows = tx.execute(
                "SELECT device, phase, message, at FROM discovery_log WHERE status = ? ORDER BY seq", [status]
            )
        return [dict(zip(("device", "phase", "message", "at"), map(str, r), strict=True)) for r in rows]


__all__ = [
    "PHASES",
    "STATES",
    "AddressCounts",
    "DiscoveryStatus",
    "PhaseCounts",
    "PlannedOutput",
    "StatusStore",
]

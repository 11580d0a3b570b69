"""The queue logic both SQL backends share; a backend supplies connections, transactions and clocks.

All SQL here is written with ``?`` placeholders; the PostgreSQL backend rewrites them.
"""

# ruff: noqa: S608  (f-strings only splice in constants from schema.py and "?" marks; values are parameters)

from __future__ import annotations

import builtins
import json
import math
import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Final, Protocol, Self, TypeVar

from midprobe.capabilities.errors import ConfigError, MidprobeError, PayloadError, QueueError
from midprobe.runner.ecc.payload import encode_queue_processing, payload_size, result_page
from midprobe.runner.ecc.record import (
    ALL_AGENTS,
    ECC_PAYLOAD_CAP,
    PRIORITIES,
    QUEUE_PROCESSING_TOPIC,
    QUEUE_SIDES,
    SEE_ATTACHMENT,
    STATES,
    EccRecord,
    EccState,
    QueueSide,
    check_sys_id,
    check_sys_id_prefix,
    new_sys_id,
    normalize_agent_name,
)
from midprobe.runner.queue.base import (
    AgentNameInUse,
    AgentRegistration,
    CredentialAffinity,
    Lease,
    PoolClaim,
    check_agent_status,
    claim_each,
)
from midprobe.runner.queue.lifecycle import (
    ISSUE_VERSION,
    SETTING_ACCEPTED_MAJOR,
    SETTING_AUTO_VALIDATE,
    SETTING_MID_VERSION,
    SETTINGS,
    AdminState,
    AgentIssue,
    AgentUpgrade,
    IssueSource,
    IssueState,
    check_admin_state,
    check_issue_source,
    check_issue_state,
    check_upgrade_state,
    check_version,
    credentials_refusal,
    major_version,
    midprobe_version,
    version_refusal,
    work_refusal,
)
from midprobe.runner.queue.schema import (
    AGENT_COLUMNS,
    AGENT_SELECT,
    BROADCAST_PREDICATE,
    INSERT_EXTRA_COLUMNS,
    ONE_RESULT_COLUMNS,
    ONE_RESULT_PREDICATE,
    OTHER_RESPONSE_PREDICATE,
    RECORD_COLUMNS,
    RECORD_SELECT,
    SCHEMA_VERSION,
    Dialect,
    migrations,
    schema_statements,
)

_CHUNK: Final = 500  # ids per IN (...) list: well under both backends' parameter limits
Row = tuple[Any, ...]
T = TypeVar("T")


#: Agents that heartbeated within this many seconds count as live for ``mid.server.*`` copies.
BROADCAST_LIVE_SECONDS: Final = 120.0


def eligible_for_broadcast(since: object) -> tuple[str, tuple[object, ...]]:
    """Which registered agents get a copy of an output addressed to ``mid.server.*``: SQL over ``ecc_agent``.

    ServiceNow's "Probe - All MIDs" rule copies such an output to every Up, validated MID. Here:
    validated, status ``Up`` and a heartbeat at or after ``since`` (the queue's clock minus
    ``BROADCAST_LIVE_SECONDS``), so a crashed agent that never said ``Down`` gets none. A paused
    or draining MID gets its copy and runs it once resumed. The one place that rule is written.
    Returns the WHERE condition and its parameters.
    """
    return "validated AND status = 'Up' AND last_heartbeat >= ?", (since,)


class UnreadableData(QueueError):
    """A stored value the database driver cannot hand back (e.g. text that is not UTF-8)."""


#: Reason written into ``error_string`` of an output set aside because it cannot be read.
DAMAGED_PREFIX: Final = "midprobe: damaged record set aside by the queue"


class Transaction(Protocol):
    """What the shared logic needs from a backend inside a transaction (or an autocommit read)."""

    def execute(self, sql: str, params: Sequence[object] = ()) -> builtins.list[Row]:
        """Run one statement; the rows it returns (``[]`` for statements without rows)."""
        ...


#: Rows per multi-row INSERT (15 values each: well under both backends' parameter limits).
_ROWS_PER_INSERT: Final = 200


def _chunks(items: Sequence[T], size: int = _CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _check_priorities(priorities: Sequence[int] | None) -> tuple[int, ...]:
    """The priority filter of a claim: ``None`` (every priority) or a non-empty set of 0, 1, 2."""
    if priorities is None:
        return ()
    wanted = tuple(sorted(set(priorities)))
    if not wanted or any(isinstance(p, bool) or p not in PRIORITIES for p in wanted):
        raise ConfigError(f"{list(priorities)!r} is not a set of priorities (0, 1, 2)", field="priorities")
    return wanted


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _check_ids(sys_ids: Sequence[str]) -> builtins.list[str]:
    if isinstance(sys_ids, str):
        raise ConfigError("expected a list of sys_ids, got one string", field="sys_ids")
    unique: dict[str, None] = {}
    for sys_id in sys_ids:
        unique[check_sys_id(sys_id)] = None
    return builtins.list(unique)


def _check_lease(lease_seconds: float, field: str = "lease_seconds") -> float:
    if (
        isinstance(lease_seconds, bool)
        or not isinstance(lease_seconds, int | float)
        or not math.isfinite(lease_seconds)
        or lease_seconds <= 0
    ):
        raise ConfigError(f"{lease_seconds!r} is not a positive number of seconds", field=field)
    return float(lease_seconds)


def _claiming_agent(agent: str) -> str:
    name = normalize_agent_name(agent)
    if name == ALL_AGENTS:
        raise ConfigError(
            "mid.server.* addresses every agent; an agent claims under its own name", field="agent"
        )
    return name


def _check_instance(instance: str | None) -> str:
    """The process token of a claim or registration ("" = none given)."""
    if instance is None:
        return ""
    if not isinstance(instance, str) or not instance.strip():
        raise ConfigError("must be a non-empty string", field="instance")
    return instance


def _text_field(value: str, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("must be a non-empty string", field=field)
    return value.strip()


def _known_setting(name: str) -> str:
    if name not in SETTINGS:
        raise ConfigError(f"{name!r} is not a setting ({', '.join(SETTINGS)})", field="setting")
    return name


def _answer(output_sys_id: str, result: EccRecord) -> EccRecord:
    """``result`` as stored to answer ``output_sys_id``, or ``ConfigError`` when it cannot answer it."""
    check_sys_id(output_sys_id, field_name="output_sys_id")
    if not isinstance(result, EccRecord):
        raise ConfigError(f"expected an EccRecord, got {type(result).__name__}", field="result")
    if result.queue != "input":
        raise ConfigError("a result must be an input record (queue='input')", field="queue")
    if result.topic == QUEUE_PROCESSING_TOPIC:
        raise ConfigError("a queue.processing record is not a result", field="topic")
    if result.response_to not in (None, output_sys_id):
        raise ConfigError(
            f"the result answers {result.response_to}, not {output_sys_id}", field="response_to"
        )
    if (result.response_to, result.state, result.processed) == (output_sys_id, "ready", None):
        return result  # as new_input_record makes it: no copy to validate again
    return result.with_changes(response_to=output_sys_id, state="ready", processed=None)


def _page(result: EccRecord) -> tuple[int, bool]:
    """The page a result is (``(1, True)`` in one piece), or ``ConfigError`` for a malformed marker."""
    try:
        return result_page(result.payload)
    except PayloadError as error:
        raise ConfigError(str(error), field="payload") from None


class SqlQueue(ABC):
    """``EccQueue`` over SQL: SQLite one connection per queue object, calls serialised by a lock;
    PostgreSQL a pool of ``connections`` (see ``PostgresQueue``)."""

    #: Appended to the claim's SELECT (PostgreSQL: ``FOR UPDATE SKIP LOCKED``).
    claim_lock_clause: str = ""
    #: Appended to a SELECT that must lock the row it reads (PostgreSQL: ``FOR UPDATE``).
    row_lock_clause: str = ""
    #: After ``FROM ecc_queue`` in a look-up of answers by ``response_to`` (SQLite: ``INDEXED BY``
    #: the one-result index; its planner would walk every input by ``queue`` instead).
    results_index_hint: str = ""
    #: The same for the other records with a ``response_to`` (``OTHER_RESPONSE_PREDICATE``).
    other_response_index_hint: str = ""
    #: Column types and the arrival order of this backend's database.
    dialect: Dialect

    def __init__(self, *, url: str, payload_cap: int = ECC_PAYLOAD_CAP) -> None:
        self.url = url
        self.payload_cap = payload_cap
        self._lock = threading.RLock()
        self._closed = False

    # -- what a backend provides -------------------------------------------------------------------

    @abstractmethod
    def _write(self) -> AbstractContextManager[Transaction]:
        """A write transaction (exclusive enough that claim's SELECT-then-UPDATE is atomic)."""

    @abstractmethod
    def _read(self) -> AbstractContextManager[Transaction]:
        """A consistent read."""

    @abstractmethod
    def _now(self, tx: Transaction) -> datetime:
        """The queue's clock (UTC): the one all leases and heartbeats are measured on."""

    @abstractmethod
    def _lease_clock(self, tx: Transaction, now: datetime) -> tuple[str, float]:
        """The clock leases run on: (epoch, seconds). Deadlines only compare within one epoch.

        Never the agent's wall clock: SQLite uses the machine's boot-time monotonic clock
        (epoch = the boot id), PostgreSQL the database clock (``now`` read from it).
        """

    @abstractmethod
    def _ts_param(self, moment: datetime) -> object:
        """A timestamp as the database stores it."""

    @abstractmethod
    def _ts_value(self, raw: object) -> datetime | None:
        """A stored timestamp back as an aware UTC datetime."""

    @abstractmethod
    def _close_connection(self) -> None:
        """Close the backend connection."""

    @abstractmethod
    def wait_for_work(self, agent: str, timeout: float) -> bool:
        """Block up to ``timeout`` seconds for a sign that work for ``agent`` may be ready."""

    @abstractmethod
    def _notify_ready(self, tx: Transaction, agents: set[str]) -> None:
        """Tell waiting agents that outputs addressed to ``agents`` became ready (at commit)."""

    # -- helpers -------------------------------------------------------------------------------

    def _now_sql(self, tx: Transaction) -> tuple[str, tuple[object, ...]]:
        """SQL for "now" on the queue's clock and its parameters (a backend may read it in the statement)."""
        return "?", (self._ts_param(self._now(tx)),)

    def _ensure_schema(self, tx: Transaction) -> None:
        """Create the tables (first open) or bring an older schema up to ``SCHEMA_VERSION``."""
        version_table, *statements = schema_statements(self.dialect)
        tx.execute(version_table)
        versions = tx.execute("SELECT version FROM midprobe_schema")
        if versions:
            version = int(versions[0][0])
            upgrades = migrations(self.dialect)
            while version < SCHEMA_VERSION and version in upgrades:
                for statement in upgrades[version]:
                    tx.execute(statement)
                version += 1
                tx.execute("UPDATE midprobe_schema SET version = ?", (version,))
            if version != SCHEMA_VERSION:
                raise QueueError(
                    f"queue {self.url}: schema version {version}, this midprobe expects {SCHEMA_VERSION}"
                )
        for statement in statements:  # after the migrations: they may have dropped an index to remake
            tx.execute(statement)
        if not versions:
            tx.execute("INSERT INTO midprobe_schema (version) VALUES (?)", (SCHEMA_VERSION,))
        # The instance accepts MIDs of the major version that made (or upgraded) its database.
        tx.execute(
            "INSERT INTO midprobe_setting (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
            (SETTING_ACCEPTED_MAJOR, major_version(midprobe_version())),
        )

    def _check_open(self) -> None:
        if self._closed:
            raise QueueError(f"queue {self.url} is closed")

    def _record(self, row: Row) -> EccRecord:
        values = dict(zip(RECORD_COLUMNS, row, strict=True))
        try:
            values["sys_created_on"] = self._ts_value(values["sys_created_on"])
            values["processed"] = self._ts_value(values["processed"])
            values["priority"] = int(values["priority"])
            return EccRecord(**values)
        except (ConfigError, QueueError, ValueError, TypeError) as error:
            reason = str(error).removeprefix(f"queue {self.url}: ")
            raise QueueError(
                f"queue {self.url}: record {values.get('sys_id')} is damaged: {reason}"
            ) from None

    def _insert_records(
        self,
        tx: Transaction,
        records: Sequence[EccRecord],
        *,
        unless_answered: bool = False,
        pages: dict[str, tuple[int, bool]] | None = None,
        copy_of: dict[str, str] | None = None,
    ) -> set[str]:
        """Insert ``records`` with multi-row INSERTs (payloads over the cap go to ``ecc_attachment``).

        Returns the sys_ids inserted; with ``unless_answered`` a result for a page of an output
        that already has one is skipped (the unique index ``ecc_queue_one_result``). ``pages``
        gives a result's (page, last) by sys_id (default: one piece), ``copy_of`` a copy's original.
        """
        conflict = (
            f" ON CONFLICT ({ONE_RESULT_COLUMNS}) WHERE {ONE_RESULT_PREDICATE} DO NOTHING"
            if unless_answered
            else ""
        )
        pages, copy_of = pages or {}, copy_of or {}
        row_marks = f"({_marks(len(RECORD_COLUMNS) + len(INSERT_EXTRA_COLUMNS))})"
        inserted: set[str] = set()
        aside: builtins.list[tuple[str, str, int]] = []
        for chunk in _chunks(records, _ROWS_PER_INSERT):
            values: builtins.list[object] = []
            for record in chunk:
                payload = record.payload
                size = payload_size(payload)
                if size > self.payload_cap:
                    aside.append((record.sys_id, payload, size))
                    payload = SEE_ATTACHMENT
                values += (
                    record.sys_id,
                    record.agent,
                    record.topic,
                    record.name,
                    record.source,
                    record.queue,
                    record.state,
                    payload,
                    record.response_to,
                    record.error_string,
                    record.priority,
                    record.sequence,
                    record.agent_correlator,
                    self._ts_param(record.sys_created_on),
                    self._ts_param(record.processed) if record.processed else None,
                )
                number, last = pages.get(record.sys_id, (1, True))
                values += (number, int(last), copy_of.get(record.sys_id))
            rows = tx.execute(
                f"INSERT INTO ecc_queue ({RECORD_SELECT}, {', '.join(INSERT_EXTRA_COLUMNS)})"
                f" VALUES {', '.join([row_marks] * len(chunk))}"
                f"{conflict} RETURNING sys_id",
                values,
            )
            inserted.update(str(row[0]) for row in rows)
        for sys_id, payload, size in aside:
            if sys_id in inserted:
                tx.execute(
                    "INSERT INTO ecc_attachment (sys_id, payload, size_bytes) VALUES (?, ?, ?)",
                    (sys_id, payload, size),
                )
        return inserted

    def _existing(self, tx: Transaction, sys_ids: Sequence[str]) -> set[str]:
        """Which of ``sys_ids`` name a record already (one statement per 500 ids)."""
        found: set[str] = set()
        for chunk in _chunks(sys_ids):
            rows = tx.execute(f"SELECT sys_id FROM ecc_queue WHERE sys_id IN ({_marks(len(chunk))})", chunk)
            found.update(str(row[0]) for row in rows)
        return found

    def _records_by_id(
        self, tx: Transaction, ids: Sequence[str]
    ) -> tuple[builtins.list[EccRecord], builtins.list[tuple[str, str]]]:
        """The records ``ids`` in the order given, and (sys_id, reason) for each that cannot be read."""
        records: builtins.list[EccRecord] = []
        damaged: builtins.list[tuple[str, str]] = []
        for chunk in _chunks(ids):
            try:
                rows = tx.execute(
                    f"SELECT {RECORD_SELECT} FROM ecc_queue WHERE sys_id IN ({_marks(len(chunk))})", chunk
                )
            except UnreadableData:  # one bad value spoils the batch: read the rows one by one
                rows = []
                for sys_id in chunk:
                    try:
                        rows += tx.execute(
                            f"SELECT {RECORD_SELECT} FROM ecc_queue WHERE sys_id = ?", (sys_id,)
                        )
                    except UnreadableData as error:
                        damaged.append((sys_id, str(error).removeprefix(f"queue {self.url}: ")))
            self._read_rows(rows, records, damaged)
        position = {sys_id: index for index, sys_id in enumerate(ids)}
        records.sort(key=lambda record: position[record.sys_id])
        return records, damaged

    def _read_rows(
        self,
        rows: Sequence[Row],
        records: builtins.list[EccRecord],
        damaged: builtins.list[tuple[str, str]],
    ) -> None:
        """Append each of ``rows`` to ``records`` as a record, or (sys_id, reason) to ``damaged``."""
        for row in rows:
            try:
                records.append(self._record(row))
            except QueueError as error:
                damaged.append((str(row[0]), str(error).removeprefix(f"queue {self.url}: ")))

    def _set_aside(self, tx: Transaction, damaged: Sequence[tuple[str, str]], now: datetime) -> None:
        """Mark outputs that cannot be read ``error`` with the reason, so claiming goes on past them."""
        for sys_id, reason in damaged:
            tx.execute(
                "UPDATE ecc_queue SET state = 'error', error_string = ?, processed = ?, lease_owner = NULL,"
                " lease_expires = NULL, lease_instance = NULL, lease_epoch = NULL, lease_deadline = NULL"
                " WHERE sys_id = ?",
                (f"{DAMAGED_PREFIX}: {reason}", self._ts_param(now), sys_id),
            )

    # -- records -------------------------------------------------------------------------------

    def enqueue(self, record: EccRecord) -> str:
        return self.enqueue_many([record])[0]

    def enqueue_many(self, records: Sequence[EccRecord]) -> builtins.list[str]:
        for record in records:
            if not isinstance(record, EccRecord):
                raise ConfigError(f"expected an EccRecord, got {type(record).__name__}")
        if not records:
            return []
        ids = [record.sys_id for record in records]
        counts = Counter(ids)
        repeated = next((sys_id for sys_id in ids if counts[sys_id] > 1), None)
        with self._write() as tx:
            taken = self._existing(tx, ids)
            clash = next((sys_id for sys_id in ids if sys_id in taken), repeated)
            if clash is not None:
                raise QueueError(f"queue {self.url}: a record with sys_id {clash} already exists")
            self._insert_records(tx, records)
            ready = {r.agent for r in records if r.queue == "output" and r.state == "ready"}
            if ALL_AGENTS in ready:
                ready |= self._broadcast(tx, self._now(tx))
            if ready:
                self._notify_ready(tx, ready)
        return [record.sys_id for record in records]

    def _broadcast(self, tx: Transaction, now: datetime) -> set[str]:
        """ServiceNow's "Probe - All MIDs" rule: copy each ``ready`` output addressed to ``mid.server.*``.

        Every agent ``eligible_for_broadcast`` gets its own copy (a new ``sys_id``, addressed to
        it, every other field as the original's; ``copy_of`` = the original), and the original
        becomes ``processed``. With no eligible agent the original waits, ``ready``, and the
        next enqueue or claim copies it. Returns the agents that got copies.
        """
        targets: builtins.list[str] | None = None  # read once, and only when there is work to copy
        while True:
            rows = tx.execute(
                f"SELECT sys_id FROM ecc_queue WHERE {BROADCAST_PREDICATE} AND state = 'ready'"
                f" ORDER BY {self.dialect.arrival} LIMIT ?{self.claim_lock_clause}",
                (_CHUNK,),
            )
            ids = [str(row[0]) for row in rows]
            if not ids:
                return set(targets or ())
            if targets is None:
                condition, params = eligible_for_broadcast(
                    self._ts_param(now - timedelta(seconds=BROADCAST_LIVE_SECONDS))
                )
                found = tx.execute(f"SELECT name FROM ecc_agent WHERE {condition} ORDER BY name", params)
                targets = [str(row[0]) for row in found]
            if not targets:
                return set()
            originals, damaged = self._records_by_id(tx, ids)
            self._set_aside(tx, damaged, now)
            copies: builtins.list[EccRecord] = []
            links: dict[str, str] = {}
            for original in originals:
                payload = original.payload
                if original.payload_is_attachment:
                    stored = tx.execute(
                        "SELECT payload FROM ecc_attachment WHERE sys_id = ?", (original.sys_id,)
                    )
                    payload = str(stored[0][0]) if stored else payload
                for target in targets:
                    copy = original.with_changes(
                        sys_id=new_sys_id(), agent=target, payload=payload, sys_created_on=now
                    )
                    copies.append(copy)
                    links[copy.sys_id] = original.sys_id
            self._insert_records(tx, copies, copy_of=links)
            for chunk in _chunks([original.sys_id for original in originals]):
                tx.execute(
                    f"UPDATE ecc_queue SET state = 'processed', processed = ? WHERE sys_id IN ({_marks(len(chunk))})",
                    (self._ts_param(now), *chunk),
                )
            if len(ids) < _CHUNK:
                return set(targets)

    def claim(
        self,
        agent: str,
        limit: int,
        lease_seconds: float,
        *,
        include_own_processing: bool = False,
        priorities: Sequence[int] | None = None,
        instance: str | None = None,
    ) -> builtins.list[EccRecord]:
        name = _claiming_agent(agent)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"{limit!r} is not a positive number of records", field="limit")
        lease = _check_lease(lease_seconds)
        wanted = _check_priorities(priorities)
        holder = _check_instance(instance)
        priority_clause = f" AND priority IN ({_marks(len(wanted))})" if wanted else ""
        # Held by this very process (same name and instance): never claimable by it, expired or not.
        mine = " AND NOT (lease_owner = ? AND COALESCE(lease_instance, '') = ?)" if holder else ""
        own = (
            " OR (lease_owner = ? AND COALESCE(lease_instance, '') <> ?)"
            if include_own_processing and holder
            else " OR lease_owner = ?"
            if include_own_processing
            else ""
        )
        own_params: tuple[object, ...] = ()
        if include_own_processing:
            own_params = (name, holder) if holder else (name,)
        claimed: builtins.list[EccRecord] = []
        # A look without the write lock first: with no output of these priorities ready or
        # processing for this agent, nothing can be eligible (the common answer for an idle
        # pool), and the claim costs one read instead of a write transaction.
        with self._read() as tx:
            if not tx.execute(
                "SELECT 1 FROM ecc_queue WHERE queue = 'output' AND state IN ('ready', 'processing')"
                f" AND agent IN (?, ?){priority_clause} LIMIT 1",
                (name, ALL_AGENTS, *wanted),
            ):
                return []
            if self._claim_refusal(tx, name) is not None:
                return []
        with self._write() as tx:
            now = self._now(tx)
            # Outputs for mid.server.* that found no agent at enqueue; the other agents are told.
            if others := self._broadcast(tx, now) - {name}:
                self._notify_ready(tx, others)
            epoch, clock = self._lease_clock(tx, now)
            expires = self._ts_param(now + timedelta(seconds=lease))
            order: dict[str, tuple[int, int]] = {}  # sys_id -> (priority, arrival): the claim order
            while len(claimed) < limit:
                # Past a damaged batch, look again; the records already taken stay out (they may
                # still be eligible when re-taking this name's processing work without an instance).
                taken = f" AND sys_id NOT IN ({_marks(len(claimed))})" if claimed else ""
                # Addressed to this agent only: work for mid.server.* reaches it as its own copy.
                common = (
                    f" AND agent = ?{priority_clause}{taken}"
                    f" ORDER BY priority, {self.dialect.arrival} LIMIT ?{self.claim_lock_clause}"
                )
                common_params = (
                    name,
                    *wanted,
                    *(record.sys_id for record in claimed),
                    limit - len(claimed),
                )
                # Two walks of the claim index (queue, state, priority, arrival), in one statement
                # (one round trip) and merged here: ready outputs, and processing ones whose lease
                # lapsed (or, at start-up, this name's own).
                rows = tx.execute(
                    f"WITH ready AS (SELECT sys_id, priority, {self.dialect.arrival} AS arrived FROM ecc_queue"
                    f" WHERE queue = 'output' AND state = 'ready'{common}),"
                    f" lapsed AS (SELECT sys_id, priority, {self.dialect.arrival} AS arrived FROM ecc_queue"
                    " WHERE queue = 'output' AND state = 'processing' AND (("
                    "   (lease_deadline IS NULL OR COALESCE(lease_epoch, '') <> ? OR lease_deadline <= ?)"
                    f"{mine}){own}){common})"
                    " SELECT sys_id, priority, arrived FROM ready UNION ALL SELECT sys_id, priority, arrived FROM lapsed",
                    (
                        *common_params,
                        epoch,
                        clock,
                        *((name, holder) if holder else ()),
                        *own_params,
                        *common_params,
                    ),
                )
                rows.sort(key=lambda row: (int(row[1]), int(row[2])))
                del rows[limit - len(claimed) :]
                order.update((str(row[0]), (int(row[1]), int(row[2]))) for row in rows)
                ids = [str(row[0]) for row in rows]
                if not ids:
                    break
                records: builtins.list[EccRecord] = []
                damaged: builtins.list[tuple[str, str]] = []
                for chunk in _chunks(ids):
                    # The queue.processing rule: processing, and the processed time stamped now; the
                    # records come back with the update (one round trip), read one by one if one is damaged.
                    try:
                        rows = tx.execute(
                            "UPDATE ecc_queue SET state = 'processing', processed = ?, lease_owner = ?,"
                            " lease_expires = ?, lease_instance = ?, lease_epoch = ?, lease_deadline = ?"
                            f" WHERE sys_id IN ({_marks(len(chunk))}) RETURNING {RECORD_SELECT}",
                            (
                                self._ts_param(now),
                                name,
                                expires,
                                holder or None,
                                epoch,
                                clock + lease,
                                *chunk,
                            ),
                        )
                    except UnreadableData:  # the update is made; a value cannot be handed back
                        got, bad = self._records_by_id(tx, chunk)
                        records += got
                        damaged += bad
                        continue
                    self._read_rows(rows, records, damaged)
                self._set_aside(tx, damaged, now)
                claimed += records
                if not damaged:
                    break  # a whole batch read back: either the limit is reached or nothing else is eligible
            if not claimed:
                return []
            claimed.sort(key=lambda record: order[record.sys_id])
            self._insert_records(
                tx,
                [
                    EccRecord(
                        agent=name,
                        topic=QUEUE_PROCESSING_TOPIC,
                        queue="input",
                        name=QUEUE_PROCESSING_TOPIC,
                        source=name,
                        state="processed",
                        payload=encode_queue_processing([record.sys_id for record in claimed]),
                        priority=min(record.priority for record in claimed),
                        sys_created_on=now,
                        processed=now,
                    )
                ],
            )
        return claimed

    def claim_pools(
        self, agent: str, claims: Sequence[PoolClaim], lease_seconds: float, *, instance: str | None = None
    ) -> builtins.list[builtins.list[EccRecord] | QueueError]:
        return claim_each(self, agent, claims, lease_seconds, instance=instance)

    def renew(
        self, agent: str, sys_ids: Sequence[str], lease_seconds: float, *, instance: str | None = None
    ) -> builtins.list[str]:
        name = _claiming_agent(agent)
        ids = _check_ids(sys_ids)
        lease = _check_lease(lease_seconds)
        holder = _check_instance(instance)
        if not ids:
            return []
        mine = " AND lease_instance = ?" if holder else ""
        renewed: set[str] = set()
        with self._write() as tx:
            now = self._now(tx)
            epoch, clock = self._lease_clock(tx, now)
            expires = self._ts_param(now + timedelta(seconds=lease))
            for chunk in _chunks(ids):
                rows = tx.execute(
                    "UPDATE ecc_queue SET lease_expires = ?, lease_epoch = ?, lease_deadline = ?"
                    f" WHERE queue = 'output' AND state = 'processing' AND lease_owner = ?{mine}"
                    f" AND sys_id IN ({_marks(len(chunk))}) RETURNING sys_id",
                    (expires, epoch, clock + lease, name, *((holder,) if holder else ()), *chunk),
                )
                renewed.update(row[0] for row in rows)
        return [sys_id for sys_id in ids if sys_id in renewed]

    def release(self, agent: str, sys_ids: Sequence[str]) -> builtins.list[str]:
        name = _claiming_agent(agent)
        ids = _check_ids(sys_ids)
        if not ids:
            return []
        released: set[str] = set()
        with self._write() as tx:
            for chunk in _chunks(ids):
                rows = tx.execute(
                    "UPDATE ecc_queue SET state = 'ready', processed = NULL, lease_owner = NULL,"
                    " lease_expires = NULL, lease_instance = NULL, lease_epoch = NULL, lease_deadline = NULL"
                    " WHERE queue = 'output' AND state = 'processing' AND lease_owner = ?"
                    f" AND sys_id IN ({_marks(len(chunk))}) RETURNING sys_id, agent",
                    (name, *chunk),
                )
                released.update(row[0] for row in rows)
                addressed = {str(row[1]) for row in rows}
                if addressed:
                    self._notify_ready(tx, addressed)
        return [sys_id for sys_id in ids if sys_id in released]

    def readdress(self, sys_id: str, from_agent: str, to_agent: str) -> bool:
        check_sys_id(sys_id)
        old, new = _claiming_agent(from_agent), _claiming_agent(to_agent)
        with self._write() as tx:
            rows = tx.execute(
                "UPDATE ecc_queue SET agent = ? WHERE sys_id = ? AND agent = ? AND queue = 'output'"
                " AND state = 'ready' AND copy_of IS NULL RETURNING sys_id",
                (new, sys_id, old),
            )
            if rows:
                self._notify_ready(tx, {new})
        return bool(rows)

    def complete(self, output_sys_id: str, result: EccRecord) -> bool:
        outcome = self.complete_many([(output_sys_id, result)])[0]
        if isinstance(outcome, MidprobeError):
            raise outcome
        return outcome

    def complete_many(self, answers: Sequence[tuple[str, EccRecord]]) -> builtins.list[bool | MidprobeError]:
        outcomes: builtins.list[bool | MidprobeError] = [False] * len(answers)
        # (index, output sys_id, the answer as stored, its (page, last)), in the order given
        valid: builtins.list[tuple[int, str, EccRecord, tuple[int, bool]]] = []
        for index, (output_sys_id, result) in enumerate(answers):
            try:
                answer = _answer(output_sys_id, result)
                valid.append((index, output_sys_id, answer, _page(answer)))
            except ConfigError as refused:
                outcomes[index] = refused
        if not valid:
            return outcomes
        outputs = builtins.list(dict.fromkeys(output_sys_id for _, output_sys_id, _, _ in valid))
        with self._write() as tx:
            # The checks, a statement each per 500 ids: the outputs exist and are outputs (locked,
            # in one order for every writer), which pages are answered already, which answer ids are taken.
            found: dict[str, object] = {}
            answered: set[tuple[str, int]] = set()
            for chunk in _chunks(outputs):
                marks = _marks(len(chunk))
                rows = tx.execute(
                    f"SELECT sys_id, queue FROM ecc_queue WHERE sys_id IN ({marks})"
                    f" ORDER BY sys_id{self.row_lock_clause}",
                    chunk,
                )
                found.update((str(row[0]), row[1]) for row in rows)
                # An explicit list of response_to values: the index is used whatever the planner's statistics say.
                rows = tx.execute(
                    f"SELECT response_to, result_page FROM ecc_queue{self.results_index_hint}"
                    f" WHERE response_to IN ({marks})"
                    f" AND {ONE_RESULT_PREDICATE}",
                    chunk,
                )
                answered.update((str(row[0]), int(row[1])) for row in rows)
            taken = self._existing(tx, [answer.sys_id for _, _, answer, _ in valid])
            # (output sys_id, page) -> the first answer for that page of that output
            writing: dict[tuple[str, int], tuple[int, EccRecord, bool]] = {}
            for index, output_sys_id, answer, (number, last) in valid:
                if output_sys_id not in found:
                    outcomes[index] = QueueError(f"queue {self.url}: no record {output_sys_id} to complete")
                    continue
                if found[output_sys_id] != "output":
                    outcomes[index] = QueueError(
                        f"queue {self.url}: record {output_sys_id} is an input, not an output"
                    )
                elif (output_sys_id, number) in answered or (output_sys_id, number) in writing:
                    outcomes[index] = False  # the first result (for this page) wins
                elif answer.sys_id in taken:
                    outcomes[index] = QueueError(
                        f"queue {self.url}: a record with sys_id {answer.sys_id} already exists"
                    )
                else:
                    taken.add(answer.sys_id)
                    writing[output_sys_id, number] = (index, answer, last)
            stored = self._insert_records(
                tx,
                [answer for _, answer, _ in writing.values()],
                unless_answered=True,
                pages={answer.sys_id: (number, last) for (_, number), (_, answer, last) in writing.items()},
            )
            done: dict[str, builtins.list[str]] = {"processed": [], "error": []}
            paged: builtins.list[str] = []  # outputs that got a page of a multi-page result
            for (output_sys_id, number), (index, answer, last) in writing.items():
                if answer.sys_id in stored:
                    outcomes[index] = True
                    if (number, last) == (1, True):  # in one piece: the output is done
                        done["error" if answer.error_string else "processed"].append(output_sys_id)
                    else:
                        paged.append(output_sys_id)
            for output_sys_id, state in self._complete_pages(tx, builtins.list(dict.fromkeys(paged))).items():
                done[state].append(output_sys_id)
            now_sql, now_params = self._now_sql(tx)
            for state, ids in done.items():
                for chunk in _chunks(ids):
                    # processed keeps the time its claim stamped (an output answered unclaimed: now).
                    tx.execute(
                        f"UPDATE ecc_queue SET state = ?, processed = COALESCE(processed, {now_sql}),"
                        " lease_owner = NULL, lease_expires = NULL, lease_instance = NULL, lease_epoch = NULL,"
                        f" lease_deadline = NULL WHERE sys_id IN ({_marks(len(chunk))})",
                        (state, *now_params, *chunk),
                    )
        return outcomes

    def _complete_pages(self, tx: Transaction, outputs: Sequence[str]) -> dict[str, str]:
        """The final state of each output in ``outputs`` whose multi-page result is now whole.

        Whole: the page marked last is stored, and every page before it (pages may arrive in
        any order, e.g. resent from an agent's spool). The state is ``error`` when a page
        holds an ``error_string``, else ``processed``; outputs not whole yet are left out.
        """
        pages: dict[str, dict[int, tuple[bool, bool]]] = {}  # output -> page -> (last, error)
        for chunk in _chunks(outputs):
            rows = tx.execute(
                "SELECT response_to, result_page, result_last, error_string"
                f" FROM ecc_queue{self.results_index_hint} WHERE response_to IN ({_marks(len(chunk))}) AND {ONE_RESULT_PREDICATE}",
                chunk,
            )
            for output, number, last, error in rows:
                pages.setdefault(str(output), {})[int(number)] = (bool(last), bool(error))
        whole: dict[str, str] = {}
        for output, stored in pages.items():
            ends = [number for number, (last, _) in stored.items() if last]
            if ends and all(number in stored for number in range(1, min(ends) + 1)):
                failed = any(stored[number][1] for number in range(1, min(ends) + 1))
                whole[output] = "error" if failed else "processed"
        return whole

    def get(self, sys_id: str) -> EccRecord | None:
        check_sys_id(sys_id)
        with self._read() as tx:
            rows = tx.execute(f"SELECT {RECORD_SELECT} FROM ecc_queue WHERE sys_id = ?", (sys_id,))
        return self._record(rows[0]) if rows else None

    def answered_among(self, output_sys_ids: Sequence[str]) -> set[str]:
        ids = _check_ids(output_sys_ids)
        found: set[str] = set()
        with self._read() as tx:
            for chunk in _chunks(ids):
                rows = tx.execute(
                    f"SELECT DISTINCT response_to FROM ecc_queue{self.results_index_hint}"
                    f" WHERE response_to IN ({_marks(len(chunk))}) AND {ONE_RESULT_PREDICATE}",
                    chunk,
                )
                found.update(str(row[0]) for row in rows)
        return found

    def agents_of(self, sys_ids: Sequence[str]) -> dict[str, str]:
        ids = _check_ids(sys_ids)
        found: dict[str, str] = {}
        with self._read() as tx:
            for chunk in _chunks(ids):
                rows = tx.execute(
                    f"SELECT sys_id, agent FROM ecc_queue WHERE sys_id IN ({_marks(len(chunk))})", chunk
                )
                found.update((str(row[0]), str(row[1])) for row in rows)
        return found

    def get_attachment(self, sys_id: str) -> str | None:
        check_sys_id(sys_id)
        with self._read() as tx:
            rows = tx.execute("SELECT payload FROM ecc_attachment WHERE sys_id = ?", (sys_id,))
        return str(rows[0][0]) if rows else None

    def read_payload(self, record: EccRecord) -> str:
        if record.payload != SEE_ATTACHMENT:
            return record.payload
        attachment = self.get_attachment(record.sys_id)
        return record.payload if attachment is None else attachment

    def get_lease(self, sys_id: str) -> Lease | None:
        check_sys_id(sys_id)
        with self._read() as tx:
            rows = tx.execute(
                "SELECT lease_owner, lease_expires FROM ecc_queue"
                " WHERE sys_id = ? AND state = 'processing' AND lease_owner IS NOT NULL",
                (sys_id,),
            )
        if not rows:
            return None
        owner, expires = rows[0]
        moment = self._ts_value(expires)
        if moment is None:
            return None
        return Lease(sys_id=sys_id, owner=str(owner), expires_at=moment)

    def results_of(self, output_sys_id: str) -> builtins.list[EccRecord]:
        check_sys_id(output_sys_id, field_name="output_sys_id")
        with self._read() as tx:
            rows = tx.execute(
                f"SELECT {RECORD_SELECT} FROM ecc_queue{self.results_index_hint}"
                f" WHERE response_to = ? AND {ONE_RESULT_PREDICATE}"
                " ORDER BY result_page, sequence, sys_id",
                (output_sys_id,),
            )
        return [self._record(row) for row in rows]

    def copies_of(self, sys_id: str) -> builtins.list[EccRecord]:
        check_sys_id(sys_id)
        with self._read() as tx:
            rows = tx.execute(
                f"SELECT {RECORD_SELECT} FROM ecc_queue WHERE copy_of = ? ORDER BY agent", (sys_id,)
            )
        return [self._record(row) for row in rows]

    def send_input(self, record: EccRecord) -> bool:
        if not isinstance(record, EccRecord):
            raise ConfigError(f"expected an EccRecord, got {type(record).__name__}", field="record")
        if record.queue != "input" or record.response_to is not None:
            raise ConfigError("must be an input that answers no output (response_to empty)", field="queue")
        if record.topic == QUEUE_PROCESSING_TOPIC:
            raise ConfigError("the queue writes the queue.processing claims itself", field="topic")
        with self._write() as tx:
            if self._existing(tx, [record.sys_id]):
                return False  # a resend: stored once
            self._insert_records(tx, [record])
        return True

    def _list(
        self,
        queue_side: QueueSide | None,
        state: EccState | None,
        agent: str | None,
        topic: str | None,
        response_to: str | None,
        limit: int,
        exclude_topic: str | None = None,
        sys_id_prefix: str | None = None,
    ) -> builtins.list[EccRecord]:
        clauses: builtins.list[str] = []
        params: builtins.list[object] = []
        if queue_side is not None:
            if queue_side not in QUEUE_SIDES:
                raise ConfigError(f"{queue_side!r} is not a queue (output or input)", field="queue")
            clauses.append("queue = ?")
            params.append(queue_side)
        if state is not None:
            if state not in STATES:
                raise ConfigError(f"{state!r} is not a state ({', '.join(STATES)})", field="state")
            clauses.append("state = ?")
            params.append(state)
        if agent is not None:
            clauses.append("agent = ?")
            params.append(normalize_agent_name(agent))
        if topic is not None:
            clauses.append("topic = ?")
            params.append(topic)
        if exclude_topic is not None:
            clauses.append("topic <> ?")
            params.append(exclude_topic)
        if sys_id_prefix is not None:
            # Hex only, so the pattern holds no LIKE wildcard.
            clauses.append("sys_id LIKE ?")
            params.append(check_sys_id_prefix(sys_id_prefix) + "%")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"{limit!r} is not a positive number of records", field="limit")
        if response_to is None:
            where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
            sql = f"SELECT {RECORD_SELECT} FROM ecc_queue{where} ORDER BY sequence, sys_id LIMIT ?"
            values = (*params, limit)
        else:
            # A record with a response_to is in one of two partial indexes (the results, and the
            # rest): one walk of each, merged in listing order.
            answers = check_sys_id(response_to, field_name="response_to")
            more = "".join(f" AND {clause}" for clause in clauses)
            sql = (
                f"SELECT {RECORD_SELECT} FROM ecc_queue{self.results_index_hint}"
                f" WHERE response_to = ? AND {ONE_RESULT_PREDICATE}{more}"
                f" UNION ALL SELECT {RECORD_SELECT} FROM ecc_queue{self.other_response_index_hint}"
                f" WHERE response_to = ? AND {OTHER_RESPONSE_PREDICATE}{more}"
                " ORDER BY sequence, sys_id LIMIT ?"
            )
            values = (answers, *params, answers, *params, limit)
        with self._read() as tx:
            rows = tx.execute(sql, values)
        return [self._record(row) for row in rows]

    # -- agents ---------------------------------------------------------------------------------

    def _setting(self, tx: Transaction, name: str) -> str:
        rows = tx.execute("SELECT value FROM midprobe_setting WHERE name = ?", (name,))
        return str(rows[0][0]) if rows else ""

    def _agent_row(self, tx: Transaction, name: str, lock: bool = False) -> AgentRegistration | None:
        rows = tx.execute(
            f"SELECT {AGENT_SELECT} FROM ecc_agent WHERE name = ?{self.row_lock_clause if lock else ''}",
            (name,),
        )
        return self._agent(rows[0]) if rows else None

    def _claim_refusal(self, tx: Transaction, name: str) -> str | None:
        """Why ``name`` may claim nothing now (the lifecycle rule of :func:`work_refusal`)."""
        agent = self._agent_row(tx, name)
        if agent is None:
            # Only a queue that trusts every agent (auto_validate) serves a name never registered.
            return None if self._setting(tx, SETTING_AUTO_VALIDATE) == "true" else "not registered"
        return work_refusal(agent, self._setting(tx, SETTING_ACCEPTED_MAJOR))

    def _agent(self, row: Row) -> AgentRegistration:
        values = dict(zip(AGENT_COLUMNS, row, strict=True))
        try:
            return AgentRegistration(
                name=str(values["name"]),
                status=str(values["status"]),
                validated=bool(values["validated"]),
                applications=tuple(json.loads(values["applications"])),
                ip_ranges=tuple(json.loads(values["ip_ranges"])),
                excluded_ip_ranges=tuple(json.loads(values["excluded_ip_ranges"])),
                capabilities=tuple((str(n), str(v)) for n, v in json.loads(values["capabilities"])),
                nmap_installed=bool(values["nmap_installed"]),
                host=str(values["host"]),
                pid=int(values["pid"]),
                started_at=self._ts_value(values["started_at"]),
                last_heartbeat=self._ts_value(values["last_heartbeat"]),
                public_key=str(values["public_key"]),
                version=str(values["version"]),
                pinned_version=str(values["pinned_version"]),
                admin_state=str(values["admin_state"]),
                rekey_requested=bool(values["rekey_requested"]),
            )
        except (ConfigError, ValueError, TypeError) as error:
            raise QueueError(f"queue {self.url}: agent {values.get('name')} is damaged: {error}") from None

    def register_agent(
        self,
        registration: AgentRegistration,
        *,
        instance: str | None = None,
        live_within_seconds: float | None = None,
    ) -> None:
        if not isinstance(registration, AgentRegistration):
            raise ConfigError(f"expected an AgentRegistration, got {type(registration).__name__}")
        holder = _check_instance(instance)
        window = (
            None if live_within_seconds is None else _check_lease(live_within_seconds, "live_within_seconds")
        )
        with self._write() as tx:
            now = self._now(tx)
            if holder and window is not None:
                rows = tx.execute(
                    f"SELECT instance, status, last_heartbeat, host, pid FROM ecc_agent WHERE name = ?{self.row_lock_clause}",
                    (registration.name,),
                )
                if rows:
                    other, status, beat, host, pid = rows[0]
                    last = self._ts_value(beat)
                    live = last is not None and last >= now - timedelta(seconds=window)
                    if other and other != holder and status != "Down" and live:
                        raise AgentNameInUse(
                            f"agent name {registration.short_name} is in use by a live agent"
                            f" (host {host or '?'}, pid {pid}, last heartbeat {last:%Y-%m-%d %H:%M:%S} UTC);"
                            " stop it or choose another --name"
                        )
            auto = self._setting(tx, SETTING_AUTO_VALIDATE) == "true"
            values: builtins.list[object] = [
                registration.name,
                registration.status,
                auto,  # a new name starts unvalidated unless the queue trusts every agent
                json.dumps(list(registration.applications)),
                json.dumps(list(registration.ip_ranges)),
                json.dumps(list(registration.excluded_ip_ranges)),
                json.dumps([list(pair) for pair in registration.capabilities]),
                registration.nmap_installed,
                registration.host,
                registration.pid,
                self._ts_param(registration.started_at) if registration.started_at else None,
                self._ts_param(now),
                registration.public_key,
                registration.version,
                "",
                "",
                0,
                holder,
            ]
            # The instance's columns (validated, pinned_version, admin_state) stay as they are; a new
            # key (a rekey, a reinstall) drops what was sealed to the old one and ends a rekey request.
            kept = {"validated", "pinned_version", "admin_state", "rekey_requested", "public_key"}
            updates = ", ".join(
                f"{column} = excluded.{column}"
                for column in (*AGENT_COLUMNS[1:], "instance")
                if column not in kept
            )
            new_key = "ecc_agent.public_key <> excluded.public_key"
            tx.execute(
                f"INSERT INTO ecc_agent ({AGENT_SELECT}, instance) VALUES ({_marks(len(values))})"
                f" ON CONFLICT (name) DO UPDATE SET {updates},"
                f" sealed_credentials = CASE WHEN {new_key} THEN '' ELSE ecc_agent.sealed_credentials END,"
                f" rekey_requested = CASE WHEN {new_key} THEN 0 ELSE ecc_agent.rekey_requested END,"
                " public_key = excluded.public_key",
                values,
            )
            stored = self._agent_row(tx, registration.name)
            assert stored is not None
            self._version_issue(tx, stored, now)

    def _update_agent(self, name: str, column: str, value: object | None, instance: str | None) -> None:
        agent = normalize_agent_name(name)
        holder = _check_instance(instance)
        with self._write() as tx:
            new_value = self._ts_param(self._now(tx)) if value is None else value
            rows = tx.execute(
                f"UPDATE ecc_agent SET {column} = CASE WHEN ? IN ('', instance) THEN ? ELSE {column} END"
                " WHERE name = ? RETURNING instance",
                (holder, new_value, agent),
            )
        if not rows:
            raise QueueError(f"queue {self.url}: agent {agent} is not registered")
        if holder and rows[0][0] != holder:
            raise AgentNameInUse(
                f"agent name {agent.removeprefix('mid.server.')} was taken over by another process"
            )

    def heartbeat_agent(self, name: str, *, instance: str | None = None) -> None:
        self._update_agent(name, "last_heartbeat", None, instance)

    def set_agent_status(self, name: str, status: str, *, instance: str | None = None) -> None:
        self._update_agent(name, "status", check_agent_status(status), instance)

    def get_agent(self, name: str) -> AgentRegistration | None:
        agent = normalize_agent_name(name)
        with self._read() as tx:
            rows = tx.execute(f"SELECT {AGENT_SELECT} FROM ecc_agent WHERE name = ?", (agent,))
        return self._agent(rows[0]) if rows else None

    def list_agents(self, live_within_seconds: float | None = None) -> builtins.list[AgentRegistration]:
        with self._read() as tx:
            if live_within_seconds is None:
                rows = tx.execute(f"SELECT {AGENT_SELECT} FROM ecc_agent ORDER BY name")
            else:
                window = _check_lease(live_within_seconds, "live_within_seconds")
                since = self._now(tx) - timedelta(seconds=window)
                rows = tx.execute(
                    f"SELECT {AGENT_SELECT} FROM ecc_agent WHERE last_heartbeat >= ? ORDER BY name",
                    (self._ts_param(since),),
                )
        return [self._agent(row) for row in rows]

    # -- the MID lifecycle ----------------------------------------------------------------------

    def update_agent(
        self,
        name: str,
        *,
        validated: bool | None = None,
        admin_state: AdminState | None = None,
        pinned_version: str | None = None,
        rekey: bool | None = None,
    ) -> AgentRegistration:
        agent = normalize_agent_name(name)
        changes: dict[str, object] = {}
        if validated is not None:
            changes["validated"] = bool(validated)
            if not validated:  # as ServiceNow's Invalidate: no credentials, and a new key pair
                changes["sealed_credentials"] = ""
                changes["rekey_requested"] = 1
        if admin_state is not None:
            changes["admin_state"] = check_admin_state(admin_state)
        if pinned_version is not None:
            if pinned_version:
                major_version(pinned_version)
            changes["pinned_version"] = pinned_version
        if rekey:
            changes["rekey_requested"] = 1
            changes["sealed_credentials"] = ""
        with self._write() as tx:
            if changes:
                rows = tx.execute(
                    f"UPDATE ecc_agent SET {', '.join(f'{column} = ?' for column in changes)}"
                    " WHERE name = ? RETURNING name",
                    (*changes.values(), agent),
                )
                if not rows:
                    raise QueueError(f"queue {self.url}: agent {agent} is not registered")
            found = self._agent_row(tx, agent)
            if found is None:
                raise QueueError(f"queue {self.url}: agent {agent} is not registered")
            if pinned_version is not None:
                self._version_issue(tx, found, self._now(tx))
            if changes:
                self._notify_ready(tx, {agent})
        return found

    def store_sealed_credentials(self, name: str, public_key: str, sealed: str) -> bool:
        agent = normalize_agent_name(name)
        if not public_key or not sealed:
            raise ConfigError("needs a public key and a sealed text", field="sealed")
        with self._write() as tx:
            found = self._agent_row(tx, agent, lock=True)
            if found is None or found.public_key != public_key:
                return False
            if credentials_refusal(found, self._setting(tx, SETTING_ACCEPTED_MAJOR)) is not None:
                return False
            tx.execute(
                "UPDATE ecc_agent SET sealed_credentials = ? WHERE name = ? AND public_key = ?",
                (sealed, agent, public_key),
            )
        return True

    def get_sealed_credentials(self, name: str) -> str | None:
        agent = normalize_agent_name(name)
        with self._read() as tx:
            found = self._agent_row(tx, agent)
            if found is None or credentials_refusal(found, self._setting(tx, SETTING_ACCEPTED_MAJOR)):
                return None
            rows = tx.execute("SELECT sealed_credentials FROM ecc_agent WHERE name = ?", (agent,))
        sealed = str(rows[0][0]) if rows else ""
        return sealed or None

    def get_discovery_credentials(self, name: str, output_sys_id: str) -> str | None:
        return None  # kept by the instance only, sealed to its key: a database queue has none to give

    _ISSUE_SELECT: Final = (
        "sys_id, agent, kind, source, message, state, count, sys_created_on, sys_updated_on"
    )

    def _issue(self, row: Row) -> AgentIssue:
        created, updated = self._ts_value(row[7]), self._ts_value(row[8])
        assert created is not None
        assert updated is not None
        return AgentIssue(
            sys_id=str(row[0]),
            agent=str(row[1]),
            kind=str(row[2]),
            source=check_issue_source(str(row[3])),
            message=str(row[4]),
            state=check_issue_state(str(row[5])),
            count=int(row[6]),
            created=created,
            updated=updated,
        )

    def _version_issue(self, tx: Transaction, agent: AgentRegistration, now: datetime) -> None:
        """The instance's ``version_incompatible`` issue for ``agent``: raised while its version is refused."""
        refusal = version_refusal(
            agent.version, agent.pinned_version, self._setting(tx, SETTING_ACCEPTED_MAJOR)
        )
        if refusal is not None and agent.version:
            self._raise_issue(tx, agent.name, ISSUE_VERSION, f"refused work: {refusal}", "instance", now)
        else:
            self._clear_issue(tx, agent.name, ISSUE_VERSION, now)

    def _raise_issue(
        self, tx: Transaction, agent: str, kind: str, message: str, source: IssueSource, now: datetime
    ) -> str:
        rows = tx.execute(
            "UPDATE ecc_agent_issue SET count = count + 1, message = ?, source = ?, sys_updated_on = ?"
            " WHERE agent = ? AND kind = ? AND state <> 'Resolved' RETURNING sys_id",
            (message, source, self._ts_param(now), agent, kind),
        )
        if rows:
            return str(rows[0][0])
        sys_id = new_sys_id()
        tx.execute(
            f"INSERT INTO ecc_agent_issue ({self._ISSUE_SELECT}) VALUES (?, ?, ?, ?, ?, 'New', 1, ?, ?)",
            (sys_id, agent, kind, source, message, self._ts_param(now), self._ts_param(now)),
        )
        return sys_id

    def _clear_issue(self, tx: Transaction, agent: str, kind: str, now: datetime) -> bool:
        rows = tx.execute(
            "UPDATE ecc_agent_issue SET state = 'Resolved', sys_updated_on = ?"
            " WHERE agent = ? AND kind = ? AND state <> 'Resolved' RETURNING sys_id",
            (self._ts_param(now), agent, kind),
        )
        return bool(rows)

    def raise_issue(self, agent: str, kind: str, message: str, *, source: IssueSource = "mid") -> AgentIssue:
        name = _claiming_agent(agent)
        what = _text_field(kind, "kind")
        said = _text_field(message, "message")
        origin = check_issue_source(source)
        with self._write() as tx:
            sys_id = self._raise_issue(tx, name, what, said, origin, self._now(tx))
            rows = tx.execute(f"SELECT {self._ISSUE_SELECT} FROM ecc_agent_issue WHERE sys_id = ?", (sys_id,))
        return self._issue(rows[0])

    def clear_issue(self, agent: str, kind: str) -> bool:
        name = _claiming_agent(agent)
        with self._write() as tx:
            return self._clear_issue(tx, name, _text_field(kind, "kind"), self._now(tx))

    def list_issues(
        self, agent: str | None = None, *, include_resolved: bool = False
    ) -> builtins.list[AgentIssue]:
        clauses, params = [], []
        if agent is not None:
            clauses.append("agent = ?")
            params.append(normalize_agent_name(agent))
        if not include_resolved:
            clauses.append("state <> 'Resolved'")
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._read() as tx:
            rows = tx.execute(
                f"SELECT {self._ISSUE_SELECT} FROM ecc_agent_issue{where}"
                " ORDER BY sys_updated_on DESC, sys_id",
                params,
            )
        return [self._issue(row) for row in rows]

    def set_issue_state(self, sys_id: str, state: IssueState) -> AgentIssue:
        check_sys_id(sys_id)
        wanted = check_issue_state(state)
        with self._write() as tx:
            rows = tx.execute(f"SELECT {self._ISSUE_SELECT} FROM ecc_agent_issue WHERE sys_id = ?", (sys_id,))
            if not rows:
                raise QueueError(f"queue {self.url}: no MID issue {sys_id}")
            current = self._issue(rows[0])
            if current.state != wanted:
                if wanted != "Resolved" and current.state == "Resolved":
                    raise ConfigError(f"issue {sys_id} is resolved already", field="state")
                tx.execute(
                    "UPDATE ecc_agent_issue SET state = ?, sys_updated_on = ? WHERE sys_id = ?",
                    (wanted, self._ts_param(self._now(tx)), sys_id),
                )
            rows = tx.execute(f"SELECT {self._ISSUE_SELECT} FROM ecc_agent_issue WHERE sys_id = ?", (sys_id,))
        return self._issue(rows[0])

    def get_setting(self, name: str) -> str:
        with self._read() as tx:
            return self._setting(tx, _known_setting(name))

    def set_setting(self, name: str, value: str) -> None:
        known = _known_setting(name)
        if known == SETTING_AUTO_VALIDATE and value not in ("true", "false"):
            raise ConfigError(f"{value!r} is not true or false", field=known)
        if known == SETTING_ACCEPTED_MAJOR:
            value = major_version(value)
        if known == SETTING_MID_VERSION and value:
            value = check_version(value, known)
        with self._write() as tx:
            tx.execute(
                "INSERT INTO midprobe_setting (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (known, value),
            )

    # -- upgrades -------------------------------------------------------------------------------

    _UPGRADE_SELECT: Final = "sys_id, agent, from_version, to_version, state, reason, started, ended"

    def _upgrade(self, row: Row) -> AgentUpgrade:
        started = self._ts_value(row[6])
        assert started is not None
        return AgentUpgrade(
            sys_id=str(row[0]),
            agent=str(row[1]),
            from_version=str(row[2]),
            to_version=str(row[3]),
            state=check_upgrade_state(str(row[4])),
            reason=str(row[5]),
            started=started,
            ended=self._ts_value(row[7]),
        )

    def _upgrade_row(self, tx: Transaction, sys_id: str) -> AgentUpgrade:
        rows = tx.execute(f"SELECT {self._UPGRADE_SELECT} FROM ecc_agent_upgrade WHERE sys_id = ?", (sys_id,))
        if not rows:
            raise QueueError(f"queue {self.url}: no MID upgrade {sys_id}")
        return self._upgrade(rows[0])

    def request_upgrade(self, agent: str, version: str) -> AgentUpgrade:
        name = _claiming_agent(agent)
        wanted = check_version(version)
        with self._write() as tx:
            found = self._agent_row(tx, name)
            if found is None:
                raise QueueError(f"queue {self.url}: agent {name} is not registered")
            now = self._ts_param(self._now(tx))
            rows = tx.execute(
                "UPDATE ecc_agent_upgrade SET to_version = ?, from_version = ?, started = ?"
                " WHERE agent = ? AND state = 'Requested' RETURNING sys_id",
                (wanted, found.version, now, name),
            )
            sys_id = str(rows[0][0]) if rows else new_sys_id()
            if not rows:
                tx.execute(
                    f"INSERT INTO ecc_agent_upgrade ({self._UPGRADE_SELECT})"
                    " VALUES (?, ?, ?, ?, 'Requested', '', ?, NULL)",
                    (sys_id, name, found.version, wanted, now),
                )
            return self._upgrade_row(tx, sys_id)

    def pending_upgrade(self, agent: str) -> AgentUpgrade | None:
        name = _claiming_agent(agent)
        with self._read() as tx:
            rows = tx.execute(
                f"SELECT {self._UPGRADE_SELECT} FROM ecc_agent_upgrade"
                " WHERE agent = ? AND state = 'Requested' ORDER BY started DESC, sys_id",
                (name,),
            )
        return self._upgrade(rows[0]) if rows else None

    def start_upgrade(
        self, agent: str, from_version: str, to_version: str, *, sys_id: str | None = None
    ) -> AgentUpgrade:
        name = _claiming_agent(agent)
        wanted = check_version(to_version, "to_version")
        with self._write() as tx:
            now = self._ts_param(self._now(tx))
            if sys_id is None:
                sys_id = new_sys_id()
                tx.execute(
                    f"INSERT INTO ecc_agent_upgrade ({self._UPGRADE_SELECT})"
                    " VALUES (?, ?, ?, ?, 'Upgrading', '', ?, NULL)",
                    (sys_id, name, from_version, wanted, now),
                )
            else:
                found = self._upgrade_row(tx, check_sys_id(sys_id))
                if found.agent != name or found.state != "Requested":
                    raise ConfigError(
                        f"upgrade {sys_id} is not a request of {name} waiting to start", field="sys_id"
                    )
                tx.execute(
                    "UPDATE ecc_agent_upgrade SET state = 'Upgrading', from_version = ?, to_version = ?,"
                    " started = ? WHERE sys_id = ?",
                    (from_version, wanted, now, sys_id),
                )
            return self._upgrade_row(tx, sys_id)

    def end_upgrade(self, sys_id: str, *, succeeded: bool, reason: str = "") -> AgentUpgrade:
        check_sys_id(sys_id)
        with self._write() as tx:
            found = self._upgrade_row(tx, sys_id)
            if found.state in ("Succeeded", "Failed"):
                raise ConfigError(f"upgrade {sys_id} has ended already ({found.state})", field="sys_id")
            tx.execute(
                "UPDATE ecc_agent_upgrade SET state = ?, reason = ?, ended = ? WHERE sys_id = ?",
                ("Succeeded" if succeeded else "Failed", reason, self._ts_param(self._now(tx)), sys_id),
            )
            return self._upgrade_row(tx, sys_id)

    def list_upgrades(self, agent: str | None = None) -> builtins.list[AgentUpgrade]:
        where, params = ("", ()) if agent is None else (" WHERE agent = ?", (normalize_agent_name(agent),))
        with self._read() as tx:
            rows = tx.execute(
                f"SELECT {self._UPGRADE_SELECT} FROM ecc_agent_upgrade{where} ORDER BY started DESC, sys_id",
                params,
            )
        return [self._upgrade(row) for row in rows]

    # -- credential affinity --------------------------------------------------------------------

    def get_affinity(self, address: str, protocol: str) -> CredentialAffinity | None:
        where, how = _text_field(address, "address"), _text_field(protocol, "protocol")
        with self._read() as tx:
            rows = tx.execute(
                "SELECT credential_id, updated_at FROM credential_affinity WHERE address = ? AND protocol = ?",
                (where, how),
            )
        if not rows:
            return None
        updated = self._ts_value(rows[0][1])
        assert updated is not None
        return CredentialAffinity(
            address=where, protocol=how, credential_id=str(rows[0][0]), updated_at=updated
        )

    def set_affinity(self, address: str, protocol: str, credential_id: str) -> None:
        where, how = _text_field(address, "address"), _text_field(protocol, "protocol")
        credential = _text_field(credential_id, "credential_id")
        with self._write() as tx:
            tx.execute(
                "INSERT INTO credential_affinity (address, protocol, credential_id, updated_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (address, protocol) DO UPDATE"
                " SET credential_id = excluded.credential_id, updated_at = excluded.updated_at",
                (where, how, credential, self._ts_param(self._now(tx))),
            )

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._close_connection()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def list(
        self,
        queue_side: QueueSide | None = None,
        state: EccState | None = None,
        agent: str | None = None,
        topic: str | None = None,
        response_to: str | None = None,
        limit: int = 1000,
        *,
        exclude_topic: str | None = None,
        sys_id_prefix: str | None = None,
    ) -> builtins.list[EccRecord]:
        return self._list(queue_side, state, agent, topic, response_to, limit, exclude_topic, sys_id_prefix)


__all__ = [
    "BROADCAST_LIVE_SECONDS",
    "DAMAGED_PREFIX",
    "Row",
    "SqlQueue",
    "Transaction",
    "UnreadableData",
    "eligible_for_broadcast",
]

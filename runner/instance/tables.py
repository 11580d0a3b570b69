"""The tables the Table API serves, as views over the ECC queue's public interface.

``ecc_queue`` is the queue's records field for field; ``ecc_agent`` is its agent registry. Every
value is shown as ServiceNow shows it: a string (``""`` when empty, times ``YYYY-MM-DD HH:MM:SS``
UTC). Writes go through the queue's own operations (``enqueue``, ``complete``, ``release``,
``readdress``), one per request, so a refused request writes nothing and an accepted one is one
queue transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol

from midprobe.capabilities.errors import ConfigError
from midprobe.runner.ecc.record import (
    ECC_FIELDS,
    QUEUE_PROCESSING_TOPIC,
    QUEUE_SIDES,
    STATES,
    EccRecord,
    check_request_text,
    is_sys_id,
    normalize_agent_name,
)
from midprobe.runner.instance.errors import TableApiError, bad_request, forbidden, not_found
from midprobe.runner.instance.query import EncodedQuery, FieldKind, Row
from midprobe.runner.queue.base import AgentRegistration, EccQueue

DEFAULT_SCAN_CAP: Final = 10_000
"""Records one listing may read from the queue before its query, order and page are applied."""


def display_time(moment: datetime | None) -> str:
    """A time as ServiceNow shows it: ``YYYY-MM-DD HH:MM:SS`` in UTC; ``""`` for none."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment is not None else ""


@dataclass(frozen=True)
class Page:
    """One page of a listing; ``total`` counts every match when the instance counted them, else ``None``."""

    rows: tuple[Row, ...]
    total: int | None


class Table(Protocol):
    """A table the API lists and reads (``GET /api/now/table/NAME`` and ``.../NAME/{sys_id}``)."""

    name: str
    fields: Mapping[str, FieldKind]

    def select(self, query: EncodedQuery, offset: int, limit: int) -> Page: ...

    def get(self, sys_id: str) -> Row: ...


def _page(rows: Sequence[Row], query: EncodedQuery, offset: int, limit: int) -> Page:
    matching = query.sort([row for row in rows if query.matches(row)])
    return Page(tuple(matching[offset : offset + limit]), len(matching))


def _too_broad(scan_cap: int) -> TableApiError:
    return bad_request(
        "Query too broad",
        f"it reaches past the first {scan_cap} records the instance reads for one listing; narrow it "
        "with queue=, state=, agent=, topic= or response_to= conditions, or page with a smaller sysparm_offset",
    )


# -- ecc_queue -------------------------------------------------------------------------------------------------

_QUEUE_KINDS: Final[dict[str, FieldKind]] = {
    "priority": "integer",
    "sys_created_on": "datetime",
    "processed": "datetime",
}
#: The record's fields (``ECC_FIELDS``), all of them text but these.
ECC_QUEUE_FIELDS: Final[dict[str, FieldKind]] = {
    name: _QUEUE_KINDS.get(name, "string") for name in ECC_FIELDS
}
#: Fields a POST may set; the rest belong to the queue.
INSERTABLE: Final = frozenset(ECC_FIELDS) - {"sequence", "sys_created_on", "processed"}
#: Fields a PATCH may change, each with the queue operation that does it.
UPDATABLE: Final = frozenset({"agent", "state"})
#: Fields the queue itself filters on: field -> the keyword of ``EccQueue.list``.
_PUSHED_DOWN: Final = {
    "queue": "queue_side",
    "state": "state",
    "agent": "agent",
    "topic": "topic",
    "response_to": "response_to",
}
#: Fields a request echoes back and listings show: no control characters in them.
_PLAIN_TEXT: Final = ("topic", "name", "source", "agent_correlator")


def record_row(record: EccRecord) -> dict[str, str]:
    """An ECC record as the Table API shows it."""
    row = {name: "" if value is None else str(value) for name, value in record.as_dict().items()}
    row["sys_created_on"] = display_time(record.sys_created_on)
    row["processed"] = display_time(record.processed)
    return row


def _pushable(field: str, value: str) -> bool:
    """Whether ``field=value`` can match a stored record at all (else the listing is empty)."""
    if field == "queue":
        return value in QUEUE_SIDES
    if field == "state":
        return value in STATES
    if field == "response_to":
        return is_sys_id(value)
    if field == "agent":
        try:
            return normalize_agent_name(value) == value
        except ConfigError:
            return False
    return value != ""


def _fully_pushed_down(query: EncodedQuery) -> bool:
    """True when the queue's own filters and order give exactly this query's rows, in its order."""
    if query.ordering or len(query.groups) > 1:
        return False
    return all(
        len(alternatives) == 1 and alternatives[0].operator == "=" and alternatives[0].field in _PUSHED_DOWN
        for group in query.groups
        for alternatives in group
    ) and len(query.required_equalities()) == len(query.fields())


def _text(body: Mapping[str, object], field: str) -> str:
    value = body[field]
    if not isinstance(value, str):
        raise bad_request("Invalid field value", f"{field} must be a string, not {type(value).__name__}")
    return value


def _priority(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value in ("0", "1", "2"):
        return int(value)
    raise bad_request("Invalid field value", "priority must be 0, 1 or 2 (interactive, expedited, standard)")


def record_from_body(body: Mapping[str, object]) -> EccRecord:
    """The new record a POST body describes (pure); ``TableApiError`` 400 naming a bad field."""
    unknown = sorted(set(body) - set(ECC_QUEUE_FIELDS))
    if unknown:
        raise bad_request("Invalid field", f"ecc_queue has no field {', '.join(unknown)}")
    read_only = sorted(set(body) - INSERTABLE)
    if read_only:
        raise bad_request("Invalid field", f"{', '.join(read_only)} is set by the queue, not by a request")
    missing = [field for field in ("agent", "topic", "queue") if field not in body]
    if missing:
        raise bad_request("Missing field", f"a new ecc_queue record needs {', '.join(missing)}")
    values: dict[str, object] = {}
    for field in sorted(body):
        values[field] = _priority(body[field]) if field == "priority" else _text(body, field)
    if values.get("state", "ready") != "ready":
        raise bad_request("Invalid field value", "a new record is ready; the queue moves it on from there")
    if values.get("response_to") == "":
        del values["response_to"]
    if values["topic"] == QUEUE_PROCESSING_TOPIC:
        raise bad_request(
            "Invalid field value",
            "queue.processing records are written by the queue when an agent claims work",
        )
    try:
        for field in _PLAIN_TEXT:
            if field in values:
                check_request_text(str(values[field]), field_name=field)
        record = EccRecord(**values)  # type: ignore[arg-type]
    except ConfigError as error:
        raise bad_request("Invalid field value", str(error)) from None
    if record.is_output and record.response_to is not None:
        raise bad_request("Invalid field value", "response_to: only an input answers an output")
    return record


class EccQueueTable:
    """``ecc_queue`` over an :class:`EccQueue`."""

    name = "ecc_queue"
    fields: Mapping[str, FieldKind] = ECC_QUEUE_FIELDS

    def __init__(self, queue: EccQueue, *, scan_cap: int = DEFAULT_SCAN_CAP) -> None:
        self._queue = queue
        self._scan_cap = scan_cap

    def select(self, query: EncodedQuery, offset: int, limit: int) -> Page:
        equal = query.required_equalities()
        if "sys_id" in equal:
            record = self._queue.get(equal["sys_id"]) if is_sys_id(equal["sys_id"]) else None
            return _page([record_row(record)] if record else [], query, offset, limit)
        filters: dict[str, str] = {}
        for field, keyword in _PUSHED_DOWN.items():
            if field in equal:
                if not _pushable(field, equal[field]):
                    return Page((), 0)
                filters[keyword] = equal[field]
        if _fully_pushed_down(query):
            window = offset + limit
            fetch = min(window, self._scan_cap)
            records = self._queue.list(**filters, limit=fetch + 1)  # type: ignore[arg-type]
            if len(records) > fetch and window > fetch:
                raise _too_broad(self._scan_cap)
            rows = [record_row(record) for record in records[offset:window]]
            return Page(tuple(rows), len(records) if len(records) <= fetch else None)
        records = self._queue.list(**filters, limit=self._scan_cap + 1)  # type: ignore[arg-type]
        if len(records) > self._scan_cap:
            raise _too_broad(self._scan_cap)
        return _page([record_row(record) for record in records], query, offset, limit)

    def get(self, sys_id: str) -> Row:
        record = self._queue.get(sys_id) if is_sys_id(sys_id) else None
        if record is None:
            raise not_found()
        return record_row(record)

    def insert(self, body: Mapping[str, object], *, may_write_outputs: bool) -> Row:
        """Store the record ``body`` describes: an output is enqueued, an answer completes its output."""
        record = record_from_body(body)
        if record.is_output and not may_write_outputs:
            raise forbidden("Insert")
        if self._queue.get(record.sys_id) is not None:
            raise TableApiError(
                409, "Record already exists", f"ecc_queue already holds sys_id {record.sys_id}"
            )
        if record.response_to is None:
            self._queue.enqueue(record)
        else:
            output = self._queue.get(record.response_to)
            if output is None or not output.is_output:
                raise bad_request("Invalid field value", f"response_to: no output {record.response_to}")
            if not self._queue.complete(record.response_to, record):
                raise TableApiError(
                    409,
                    "Output already answered",
                    f"output {record.response_to} has a result already; the first one is kept",
                )
        return self.get(record.sys_id)

    def update(self, sys_id: str, body: Mapping[str, object]) -> Row:
        """Change ``agent`` (a ready output moves to another agent) or ``state`` (a claimed output back to ready)."""
        current = self.get(sys_id)
        unknown = sorted(set(body) - set(ECC_QUEUE_FIELDS))
        if unknown:
            raise bad_request("Invalid field", f"ecc_queue has no field {', '.join(unknown)}")
        changes = {field: _text(body, field) for field in sorted(body) if body[field] != current[field]}
        fixed = sorted(set(changes) - UPDATABLE)
        if fixed:
            raise bad_request(
                "Invalid field", f"{', '.join(fixed)} cannot be changed here (a PATCH changes agent or state)"
            )
        if len(changes) > 1:
            raise bad_request("Invalid update", "change agent or state, one per request")
        if "agent" in changes:
            self._readdress(current, changes["agent"])
        elif "state" in changes:
            self._release(current, changes["state"])
        return self.get(sys_id)

    def _readdress(self, current: Row, agent: str) -> None:
        try:
            target = normalize_agent_name(agent)
        except ConfigError as error:
            raise bad_request("Invalid field value", str(error)) from None
        if current["queue"] != "output" or current["state"] != "ready":
            raise TableApiError(409, "Invalid update", "only a ready output moves to another agent")
        if target != current["agent"] and not self._queue.readdress(
            current["sys_id"], current["agent"], target
        ):
            raise TableApiError(409, "Invalid update", "the output was claimed or answered meanwhile")

    def _release(self, current: Row, state: str) -> None:
        if state != "ready" or current["queue"] != "output" or current["state"] != "processing":
            raise TableApiError(
                409, "Invalid update", "the only state change is a processing output back to ready"
            )
        lease = self._queue.get_lease(current["sys_id"])
        if lease is None or not self._queue.release(lease.owner, [current["sys_id"]]):
            raise TableApiError(409, "Invalid update", "the output was answered or released meanwhile")


# -- ecc_agent -------------------------------------------------------------------------------------------------

ECC_AGENT_FIELDS: Final[dict[str, FieldKind]] = {
    "sys_id": "string",
    "name": "string",
    "status": "string",
    "validated": "boolean",
    "host_name": "string",
    "started": "datetime",
    "last_refreshed": "datetime",
    "version": "string",
    "pinned_version": "string",
    "admin_state": "string",
}


def agent_sys_id(name: str) -> str:
    """The ``sys_id`` of an agent's ``ecc_agent`` row: the registry keys agents by name, so it comes from the name."""
    return hashlib.sha256(f"ecc_agent:{normalize_agent_name(name)}".encode()).hexdigest()[:32]


def agent_row(agent: AgentRegistration) -> dict[str, str]:
    """An agent registration as the ``ecc_agent`` table shows it (``name`` without ``mid.server.``)."""
    return {
        "sys_id": agent_sys_id(agent.name),
        "name": agent.short_name,
        "status": agent.status,
        "validated": "true" if agent.validated else "false",
        "host_name": agent.host,
        "started": display_time(agent.started_at),
        "last_refreshed": display_time(agent.last_heartbeat),
        "version": agent.version,
        "pinned_version": agent.pinned_version,
        "admin_state": agent.admin_state,
    }


class AgentTable:
    """``ecc_agent`` over the queue's agent registry (a small table: every listing reads all of it)."""

    name = "ecc_agent"
    fields: Mapping[str, FieldKind] = ECC_AGENT_FIELDS

    def __init__(self, queue: EccQueue) -> None:
        self._queue = queue

    def select(self, query: EncodedQuery, offset: int, limit: int) -> Page:
        return _page([agent_row(agent) for agent in self._queue.list_agents()], query, offset, limit)

    def get(self, sys_id: str) -> Row:
        for agent in self._queue.list_agents():
            if agent_sys_id(agent.name) == sys_id:
                return agent_row(agent)
        raise not_found()


# -- tables read whole ------------------------------------------------------------------------------------------


class SnapshotTable:
    """A small read-only table read whole for each request (the CMDB's and the MID tables).

    ``rows(equal)`` gives every row in the table's order; ``equal`` holds the query's required
    ``field=value`` conditions, which it may use to read less (the query is applied anyway).
    """

    def __init__(
        self,
        name: str,
        fields: Mapping[str, FieldKind],
        rows: Callable[[Mapping[str, str]], Sequence[Row]],
    ) -> None:
        self.name = name
        self.fields = fields
        self._rows = rows

    def select(self, query: EncodedQuery, offset: int, limit: int) -> Page:
        return _page(self._rows(query.required_equalities()), query, offset, limit)

    def get(self, sys_id: str) -> Row:
        for row in self._rows({"sys_id": sys_id}):
            if row["sys_id"] == sys_id:
                return row
        raise not_found()


def derived_sys_id(*parts: str) -> str:
    """A stable ``sys_id`` for a row the store keys by other columns (made from them)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


__all__ = [
    "DEFAULT_SCAN_CAP",
    "ECC_AGENT_FIELDS",
    "ECC_QUEUE_FIELDS",
    "AgentTable",
    "EccQueueTable",
    "Page",
    "SnapshotTable",
    "Table",
    "agent_row",
    "agent_sys_id",
    "derived_sys_id",
    "display_time",
    "record_from_body",
    "record_row",
]

"""The ECC queue record (one row of ``ecc_queue``) and the helpers that make its identifiers.

Field names and meanings are ServiceNow's (docs/ecc-reference.md section 1); the queue stores
exactly these fields plus its own lease bookkeeping, which is not part of a record.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Final, Literal, get_args

from midprobe.capabilities.errors import ConfigError

QueueSide = Literal["output", "input"]
"""``output``: work for an agent; ``input``: a result (or a claim) from an agent."""

EccState = Literal["ready", "processing", "processed", "error"]
"""``ready`` -> ``processing`` -> ``processed``, or ``error``."""

QUEUE_SIDES: Final[tuple[QueueSide, ...]] = get_args(QueueSide)
STATES: Final[tuple[EccState, ...]] = get_args(EccState)

PRIORITY_INTERACTIVE: Final = 0
PRIORITY_EXPEDITED: Final = 1
PRIORITY_STANDARD: Final = 2
PRIORITIES: Final[tuple[int, ...]] = (PRIORITY_INTERACTIVE, PRIORITY_EXPEDITED, PRIORITY_STANDARD)

AGENT_PREFIX: Final = "mid.server."
ALL_AGENTS: Final = "mid.server.*"
"""An output addressed to every agent: any agent may claim it."""

QUEUE_PROCESSING_TOPIC: Final = "queue.processing"
"""Topic of the input an agent writes to claim outputs (the MID protocol)."""

SEE_ATTACHMENT: Final = "<see_attachment/>"
"""What the ``payload`` field holds when the payload is over the size cap and stored aside."""

ECC_PAYLOAD_CAP: Final = 20_000_000
"""Bytes (UTF-8) an ECC payload may hold before it is stored aside as an attachment."""

DISCOVERY_RESULT_CAP: Final = 5_000_000
"""Bytes a discovery result may hold before the runner stores it aside (the runner's rule)."""

_SYS_ID = re.compile(r"[0-9a-f]{32}")
_SYS_ID_PREFIX = re.compile(r"[0-9a-f]{1,32}")
_SEQUENCE = re.compile(r"[0-9a-f]{1,64}")
# A MID name: letters, digits, '.', '_', '-' (no spaces, nothing a shell or a URL must quote).
_AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# Code points no stored text may hold: lone surrogates (not encodable as UTF-8).
_SURROGATE = re.compile("[\ud800-\udfff]")
# What a request field may not hold: control characters (C0, DEL, C1: terminal escape
# sequences start with them), surrogates and the two non-characters XML cannot carry.
_NOT_FIELD_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


#: Every field of a record, in the order listings and JSON show them.
ECC_FIELDS: Final[tuple[str, ...]] = (
    "sys_id",
    "agent",
    "queue",
    "state",
    "topic",
    "name",
    "source",
    "payload",
    "response_to",
    "error_string",
    "priority",
    "sequence",
    "agent_correlator",
    "sys_created_on",
    "processed",
)


def new_sys_id() -> str:
    """A fresh ``sys_id``: 32 lowercase hex characters (128 random bits, ``secrets.token_hex(16)``
    without importing ``secrets``: its hmac and hashlib cost a scan's start-up)."""
    return os.urandom(16).hex()


def is_sys_id(value: str) -> bool:
    """True when ``value`` is 32 lowercase hex characters."""
    return _SYS_ID.fullmatch(value) is not None


def check_sys_id(value: str, *, field_name: str = "sys_id") -> str:
    """Return ``value`` if it is a valid ``sys_id``, else raise ``ConfigError`` naming the field."""
    if not isinstance(value, str) or not is_sys_id(value):
        raise ConfigError(f"{value!r} is not a sys_id (32 lowercase hex characters)", field=field_name)
    return value


def check_sys_id_prefix(value: str, *, field_name: str = "sys_id") -> str:
    """Return ``value`` if it can begin a ``sys_id`` (1 to 32 lowercase hex characters), else ``ConfigError``."""
    if not isinstance(value, str) or _SYS_ID_PREFIX.fullmatch(value) is None:
        raise ConfigError(
            f"{value!r} is not a sys_id or the start of one (lowercase hex characters)", field=field_name
        )
    return value


def check_request_text(value: str, *, field_name: str) -> str:
    """Return ``value`` if a request field may hold it, else ``ConfigError`` naming the field.

    A request's fields are echoed in its result and shown by ``ecc list``: control
    characters (escape sequences among them) and lone surrogates are refused.
    """
    bad = _NOT_FIELD_TEXT.search(value)
    if bad is not None:
        raise ConfigError(
            f"holds character U+{ord(bad.group()):04X} (control characters and surrogates are not allowed)",
            field=field_name,
        )
    return value


def normalize_agent_name(name: str) -> str:
    """``NAME``, ``mid.server.NAME`` -> ``mid.server.NAME``; ``*`` or ``mid.server.*`` -> ``mid.server.*``.

    NAME is letters, digits, ``.``, ``_`` and ``-`` (at most 100, starting with a letter
    or digit). Anything else raises ``ConfigError`` naming the ``agent`` field.
    """
    if not isinstance(name, str):
        raise ConfigError(f"{name!r} is not an agent name", field="agent")
    return _normalized_agent_name(name)


@functools.lru_cache(maxsize=1024)
def _normalized_agent_name(name: str) -> str:
    """:func:`normalize_agent_name` of a string (remembered: a queue sees a few agents' names again
    and again; a bad one raises each time)."""
    stripped = name.strip()
    bare = stripped[len(AGENT_PREFIX) :] if stripped.startswith(AGENT_PREFIX) else stripped
    if bare == "*":
        return ALL_AGENTS
    if _AGENT_NAME.fullmatch(bare) is None:
        raise ConfigError(
            f"{name!r} is not an agent name (NAME or mid.server.NAME; NAME is letters, digits, '.', '_', '-')",
            field="agent",
        )
    return AGENT_PREFIX + bare


def agent_short_name(agent: str) -> str:
    """``mid.server.NAME`` -> ``NAME`` (the MID name as ServiceNow shows it)."""
    full = normalize_agent_name(agent)
    return full[len(AGENT_PREFIX) :]


class _SequenceClock:
    """Hands out ``sequence`` values: 12 hex digits of epoch milliseconds + 6 hex digits of counter.

    Within one process the values strictly increase (the counter breaks ties inside a
    millisecond, and a clock that steps back is held at the last value). Across
    processes they order by time; ties between processes are broken by ``sys_id``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0

    def next(self) -> str:
        now_ms = time.time_ns() // 1_000_000
        with self._lock:
            if now_ms > self._last_ms:
                self._last_ms = now_ms
                self._counter = 0
            else:
                self._counter += 1
                if self._counter > 0xFFFFFF:  # 16 M records in one millisecond: borrow the next one
                    self._last_ms += 1
                    self._counter = 0
            return f"{self._last_ms:012x}{self._counter:06x}"


_SEQUENCES = _SequenceClock()


def new_sequence() -> str:
    """The next ``sequence``: hex epoch milliseconds plus a counter (18 hex characters)."""
    return _SEQUENCES.next()


def utc_now() -> datetime:
    """The current time, timezone-aware UTC, microsecond precision (what both backends store)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class EccRecord:
    """One ECC queue record, field for field as ServiceNow names them.

    ``agent`` is normalised on construction (``NAME`` -> ``mid.server.NAME``);
    every other field is validated and a bad one raises ``ConfigError`` naming it.
    ``payload`` is the XML text (``<see_attachment/>`` when the queue stored it aside:
    read it with ``EccQueue.read_payload``). ``response_to`` is ``None`` unless this is
    an input answering an output. ``processed`` is ``None`` until the record is done.
    """

    agent: str
    topic: str
    queue: QueueSide
    name: str = ""
    source: str = ""
    state: EccState = "ready"
    payload: str = ""
    response_to: str | None = None
    error_string: str = ""
    priority: int = PRIORITY_STANDARD
    agent_correlator: str = ""
    sys_id: str = field(default_factory=new_sys_id)
    sequence: str = field(default_factory=new_sequence)
    sys_created_on: datetime = field(default_factory=utc_now)
    processed: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "agent", normalize_agent_name(self.agent))
        check_sys_id(self.sys_id)
        if self.response_to is not None:
            check_sys_id(self.response_to, field_name="response_to")
        if not isinstance(self.topic, str) or not self.topic.strip():
            raise ConfigError("topic must not be empty", field="topic")
        if self.queue not in QUEUE_SIDES:
            raise ConfigError(f"{self.queue!r} is not a queue (output or input)", field="queue")
        if self.state not in STATES:
            raise ConfigError(f"{self.state!r} is not a state ({', '.join(STATES)})", field="state")
        if isinstance(self.priority, bool) or self.priority not in PRIORITIES:
            raise ConfigError(
                f"{self.priority!r} is not a priority (0 interactive, 1 expedited, 2 standard)",
                field="priority",
            )
        if not isinstance(self.sequence, str) or _SEQUENCE.fullmatch(self.sequence) is None:
            raise ConfigError(f"{self.sequence!r} is not a sequence (lowercase hex)", field="sequence")
        for name in ("sys_created_on", "processed"):
            value = getattr(self, name)
            if value is None and name == "processed":
                continue
            if not isinstance(value, datetime) or value.tzinfo is None:
                raise ConfigError(f"{value!r} is not a timezone-aware datetime", field=name)
            if value.tzinfo is not UTC:
                object.__setattr__(self, name, value.astimezone(UTC))
        for name in ("topic", "name", "source", "payload", "error_string", "agent_correlator"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise ConfigError(f"{value!r} is not a string", field=name)
            if value.isascii():  # most values, the payloads too: no surrogate, and no search of them
                continue
            surrogate = _SURROGATE.search(value)
            if surrogate is not None:
                raise ConfigError(
                    f"holds lone surrogate U+{ord(surrogate.group()):04X}, which cannot be stored", field=name
                )

    @property
    def is_output(self) -> bool:
        return self.queue == "output"

    @property
    def is_input(self) -> bool:
        return self.queue == "input"

    @property
    def payload_is_attachment(self) -> bool:
        """True when the payload was stored aside and the field only holds ``<see_attachment/>``."""
        return self.payload == SEE_ATTACHMENT

    def with_changes(self, **changes: object) -> EccRecord:
        """A copy with some fields replaced (validated again)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, str | int | None]:
        """The record keyed by ECC field names (in ``ECC_FIELDS`` order); times ISO 8601 UTC (``--json``)."""
        # Every field is a str, int, datetime or None: no deep copy (dataclasses.asdict) is needed.
        data: dict[str, str | int | None] = {name: getattr(self, name) for name in ECC_FIELDS}
        data["sys_created_on"] = self.sys_created_on.isoformat()
        data["processed"] = self.processed.isoformat() if self.processed else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> EccRecord:
        """The inverse of :meth:`as_dict` (raises ``ConfigError`` naming a bad or missing field)."""
        values = dict(data)
        for name in ("sys_created_on", "processed"):
            raw = values.get(name)
            if isinstance(raw, str):
                try:
                    values[name] = datetime.fromisoformat(raw)
                except ValueError:
                    raise ConfigError(f"{raw!r} is not an ISO 8601 time", field=name) from None
        try:
            return cls(**values)  # type: ignore[arg-type]
        except TypeError as error:
            raise ConfigError(f"not an ECC record: {error}") from None


__all__ = [
    "AGENT_PREFIX",
    "ALL_AGENTS",
    "DISCOVERY_RESULT_CAP",
    "ECC_FIELDS",
    "ECC_PAYLOAD_CAP",
    "PRIORITIES",
    "PRIORITY_EXPEDITED",
    "PRIORITY_INTERACTIVE",
    "PRIORITY_STANDARD",
    "QUEUE_PROCESSING_TOPIC",
    "QUEUE_SIDES",
    "SEE_ATTACHMENT",
    "STATES",
    "EccRecord",
    "EccState",
    "QueueSide",
    "agent_short_name",
    "check_request_text",
    "check_sys_id",
    "check_sys_id_prefix",
    "is_sys_id",
    "new_sequence",
    "new_sys_id",
    "normalize_agent_name",
    "utc_now",
]

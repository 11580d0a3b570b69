"""What the console's pages show, built from the stores' records (pure: no I/O, no HTML).

The templates only lay these out; every value here is plain text, escaped by the templates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final
from urllib.parse import urlencode

from midprobe.capabilities.errors import ConfigError
from midprobe.capabilities.numbers import NumberRange, read_number
from midprobe.runner.cmdb.model import ConfigurationItem, Relation
from midprobe.runner.discovery.status import AddressCounts, DiscoveryStatus
from midprobe.runner.ecc.record import (
    QUEUE_PROCESSING_TOPIC,
    QUEUE_SIDES,
    STATES,
    check_request_text,
    normalize_agent_name,
)
from midprobe.runner.instance.tables import display_time
from midprobe.runner.queue.base import AgentRegistration
from midprobe.runner.queue.lifecycle import CONSOLE_MID_ACTIONS, MID_ACTIONS, AgentIssue

ECC_PAGE_SIZE: Final = 100
"""ECC records one page of the queue view lists."""
_OFFSETS: Final = NumberRange(0, 10**9, integer=True)

#: MID fields that not every registration carries (the MID lifecycle adds them): attribute -> label.
#: A field the registration has is shown on the MID's page; one it lacks is left out.
OPTIONAL_MID_FIELDS: Final = (
    ("version", "Version"),
    ("pinned_version", "Pinned version"),
    ("admin_state", "Admin state"),
)


_FILTER_PARAMETERS: Final = ("queue", "agent", "topic", "state", "claims", "offset")


def _quoted(value: str) -> str:
    """A value for an encoded query (``^`` stands doubled)."""
    return value.replace("^", "^^")


@dataclass(frozen=True)
class EccFilter:
    """The ECC queue view's filter: ``""`` matches any value; claims (``queue.processing``) are hidden
    unless ``claims``."""

    queue: str = ""
    agent: str = ""
    topic: str = ""
    state: str = ""
    claims: bool = False
    offset: int = 0

    @classmethod
    def read(cls, parameters: Iterable[tuple[str, str]]) -> EccFilter:
        """The filter a query string gives; ``ConfigError`` naming the parameter that is wrong."""
        found: dict[str, str] = {}
        for name, value in parameters:
            if name not in _FILTER_PARAMETERS:
                raise ConfigError(f"the queue view takes no parameter {name!r}", field=name)
            if name in found:
                raise ConfigError("is given more than once", field=name)
            found[name] = value.strip()
        queue, state = found.get("queue", ""), found.get("state", "")
        if queue and queue not in QUEUE_SIDES:
            raise ConfigError(f"{queue!r} is not a queue ({', '.join(QUEUE_SIDES)})", field="queue")
        if state and state not in STATES:
            raise ConfigError(f"{state!r} is not a state ({', '.join(STATES)})", field="state")
        agent = normalize_agent_name(found["agent"]) if found.get("agent") else ""
        topic = check_request_text(found.get("topic", ""), field_name="topic")
        claims = found.get("claims", "")
        if claims not in ("", "on"):
            raise ConfigError("is 'on' or left out", field="claims")
        offset = int(read_number(found["offset"], _OFFSETS, field="offset")) if found.get("offset") else 0
        return cls(queue, agent, topic, state, claims == "on", offset)

    def encoded_query(self) -> str:
        """The Table API query of this filter, newest record first."""
        terms = [f"{name}={_quoted(value)}" for name, value in self._conditions() if value]
        if not self.claims and self.topic != QUEUE_PROCESSING_TOPIC:
            terms.append(f"topic!={QUEUE_PROCESSING_TOPIC}")
        return "^".join([*terms, "ORDERBYDESCsys_created_on"])

    def _conditions(self) -> tuple[tuple[str, str], ...]:
        return (("queue", self.queue), ("agent", self.agent), ("topic", self.topic), ("state", self.state))

    def query_string(self, offset: int) -> str:
        """This filter's URL query at another page."""
        pairs = [(name, value) for name, value in self._conditions() if value]
        pairs += [("claims", "on")] if self.claims else []
        pairs += [("offset", str(offset))] if offset else []
        return urlencode(pairs)


def age(moment: datetime | None, now: datetime) -> str:
    """How long ago ``moment`` was, in the largest whole unit (``"12 s ago"``); ``""`` for none."""
    if moment is None:
        return ""
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


@dataclass(frozen=True)
class IssueView:
    """One MID issue as the MID's page lists it (``actions``: the states an operator may move it to)."""

    sys_id: str
    kind: str
    source: str
    message: str
    state: str
    count: int
    created: str
    updated: str

    @property
    def actions(self) -> tuple[tuple[str, str], ...]:
        """(state, button label) pairs: a New issue may be acknowledged, an open one resolved."""
        offered = (("Acknowledged", "Acknowledge"),) if self.state == "New" else ()
        return (*offered, ("Resolved", "Resolve")) if self.state != "Resolved" else offered


def issue_view(issue: AgentIssue) -> IssueView:
    return IssueView(
        sys_id=issue.sys_id,
        kind=issue.kind,
        source=issue.source,
        message=issue.message,
        state=issue.state,
        count=issue.count,
        created=display_time(issue.created),
        updated=display_time(issue.updated),
    )


@dataclass(frozen=True)
class MidView:
    """One MID Server as the console shows it."""

    name: str
    status: str
    validated: bool
    host: str
    pid: int
    started: str
    last_heartbeat: str
    heartbeat_age: str
    capabilities: tuple[str, ...]
    applications: tuple[str, ...]
    ip_ranges: tuple[str, ...]
    excluded_ip_ranges: tuple[str, ...]
    details: tuple[tuple[str, str], ...]
    issues: tuple[IssueView, ...]
    actions: tuple[tuple[str, str], ...]
    """(verb, button label) of the MID actions that would change it (Validate, Pause, ...)."""

    def detail(self, label: str) -> str:
        """The value of the optional field ``label`` (``""`` when this MID lacks it)."""
        return dict(self.details).get(label, "")

    @property
    def open_issues(self) -> int:
        return sum(1 for issue in self.issues if issue.state != "Resolved")


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return display_time(value)
    return "" if value is None else str(value)


def mid_view(agent: AgentRegistration, now: datetime, issues: Iterable[AgentIssue] = ()) -> MidView:
    """``agent`` for the console; ``issues`` are its MID issues (the queue's ``list_issues``)."""
    capabilities = tuple(
        name if value in ("", "*") else f"{name}={value}" for name, value in agent.capabilities
    )
    details = tuple(
        (label, _shown(getattr(agent, attribute)))
        for attribute, label in OPTIONAL_MID_FIELDS
        if getattr(agent, attribute, "")
    )
    return MidView(
        name=agent.short_name,
        status=agent.status,
        validated=agent.validated,
        host=agent.host,
        pid=agent.pid,
        started=display_time(agent.started_at),
        last_heartbeat=display_time(agent.last_heartbeat),
        heartbeat_age=age(agent.last_heartbeat, now),
        capabilities=capabilities,
        applications=agent.applications,
        ip_ranges=agent.ip_ranges,
        excluded_ip_ranges=agent.excluded_ip_ranges,
        details=details,
        issues=tuple(issue_view(issue) for issue in issues),
        actions=tuple(
            (verb, verb.capitalize()) for verb in CONSOLE_MID_ACTIONS if MID_ACTIONS[verb].offered(agent)
        ),
    )


def optional_labels(mids: Iterable[MidView]) -> list[str]:
    """The optional fields (``OPTIONAL_MID_FIELDS``' labels) that at least one of ``mids`` has, in order."""
    present = {label for mid in mids for label, _ in mid.details}
    return [label for _, label in OPTIONAL_MID_FIELDS if label in present]


@dataclass(frozen=True)
class PhaseView:
    name: str
    started: int
    completed: int
    error: int
    pending: int

    @property
    def percent(self) -> int:
        """Share of the phase's outputs answered (completed or failed), in whole percent."""
        return 100 if not self.started else (self.completed + self.error) * 100 // self.started


@dataclass(frozen=True)
class DiscoveryView:
    """A discovery's status with its progress: phases, devices and (when asked) log and CIs."""

    sys_id: str
    name: str
    state: str
    started: str
    finished: str
    note: str
    done: bool
    phases: tuple[PhaseView, ...]
    devices: int
    devices_done: int
    addresses: AddressCounts = field(default_factory=AddressCounts)
    log: tuple[Mapping[str, str], ...] = ()
    cis: tuple[ConfigurationItem, ...] = ()

    @property
    def addresses_text(self) -> str:
        """``1,024 of 65,536 decided, 1,023 alive, 1 incomplete`` (empty: the ranges were not counted)."""
        return self.addresses.describe() if self.addresses.total else ""


def discovery_view(
    status: DiscoveryStatus,
    devices: tuple[int, int],
    log: Sequence[Mapping[str, str]] = (),
    cis: Sequence[ConfigurationItem] = (),
) -> DiscoveryView:
    return DiscoveryView(
        sys_id=status.sys_id,
        name=status.name,
        state=status.state,
        started=status.started[:19],
        finished=(status.finished or "")[:19],
        note=status.note or "",
        done=status.done,
        phases=tuple(
            PhaseView(name, counts.started, counts.completed, counts.error, counts.pending)
            for name, counts in status.phases.items()
        ),
        devices=devices[0],
        devices_done=devices[1],
        addresses=status.addresses,
        log=tuple(log),
        cis=tuple(cis),
    )


@dataclass(frozen=True)
class RelationView:
    """A relation seen from one CI: the word on its side, and the CI at the other end."""

    word: str
    other: str
    other_name: str
    discovery: str
    last_seen: str


def relation_views(
    ci: str, relations: Iterable[Relation], names: Mapping[str, str]
) -> tuple[RelationView, ...]:
    """``ci``'s relations, each named by the word on ``ci``'s side (``Runs on`` when it is the parent)."""
    views = []
    for relation in relations:
        parent_word, _, child_word = relation.type.partition("::")
        is_parent = relation.parent == ci
        other = relation.child if is_parent else relation.parent
        views.append(
            RelationView(
                parent_word if is_parent else child_word,
                other,
                names.get(other, other),
                relation.discovery or "",
                relation.last_seen[:19],
            )
        )
    return tuple(sorted(views, key=lambda view: (view.word, view.other_name.casefold())))


__all__ = [
    "ECC_PAGE_SIZE",
    "OPTIONAL_MID_FIELDS",
    "DiscoveryView",
    "EccFilter",
    "IssueView",
    "MidView",
    "PhaseView",
    "RelationView",
    "age",
    "discovery_view",
    "issue_view",
    "mid_view",
    "optional_labels",
    "relation_views",
]

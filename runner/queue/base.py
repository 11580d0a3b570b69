"""The one interface every ECC queue backend (SQLite, PostgreSQL, HTTPS) implements, and its small records.

The agent, the CLI and ``midprobe select --queue`` only ever see :class:`EccQueue`;
``open_queue(url)`` in ``url.py`` picks the backend.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from midprobe.capabilities.errors import ConfigError, MidprobeError, QueueError
from midprobe.runner.ecc.record import EccRecord, EccState, QueueSide, normalize_agent_name
from midprobe.runner.queue.lifecycle import (
    AdminState,
    AgentIssue,
    AgentUpgrade,
    IssueSource,
    IssueState,
    check_admin_state,
    midprobe_version,
)

AGENT_STATUSES: tuple[str, ...] = (
    "Up",
    "Down",
    "Paused",
    "Upgrading",
    "Upgrade Failed",
    "Draining",
    "Drained",
    "Drain Failed",
    "Degraded",
)
"""MID server statuses as ServiceNow names them (docs/ecc-reference.md section 3)."""


@dataclass(frozen=True)
class AgentRegistration:
    """What an agent tells the queue about itself so MID selection can choose among live agents.

    ``name`` is normalised to ``mid.server.NAME``. ``applications`` holds application
    names (``ALL`` = every application); ``ip_ranges`` / ``excluded_ip_ranges`` hold
    range strings as ServiceNow writes them (``ALL``, a single IP, ``a-b``, ``a/n``);
    ``capabilities`` holds (name, value) pairs, value ``""`` for blank and ``*`` for any
    (``Nmap`` is present only when ``nmap_installed``). ``last_heartbeat`` is filled in by
    the queue when it reads registrations back; the value given to ``register_agent``
    is ignored (registration counts as a heartbeat).

    The instance owns ``validated``, ``pinned_version``, ``admin_state`` and ``rekey_requested``
    (``midprobe mid validate``, ``pause``, ...): ``register_agent`` keeps what is stored and only
    reads them back; a new name starts unvalidated unless the queue auto-validates. The agent
    gives ``public_key`` (its X25519 key, base64; the instance seals credentials to it) and
    ``version`` (its midprobe version).
    """

    name: str
    status: str = "Up"
    validated: bool = False
    applications: tuple[str, ...] = ("ALL",)
    ip_ranges: tuple[str, ...] = ("ALL",)
    excluded_ip_ranges: tuple[str, ...] = ()
    capabilities: tuple[tuple[str, str], ...] = ()
    nmap_installed: bool = False
    host: str = ""
    pid: int = 0
    started_at: datetime | None = None
    last_heartbeat: datetime | None = None
    public_key: str = ""
    #: The agent's midprobe version (default: this one's).
    version: str = field(default_factory=midprobe_version)
    pinned_version: str = ""
    admin_state: str = ""
    rekey_requested: bool = False

    def __post_init__(self) -> None:
        check_admin_state(self.admin_state)
        object.__setattr__(self, "name", normalize_agent_name(self.name))
        if self.name.endswith(".*"):
            raise ConfigError("an agent cannot register as mid.server.*", field="name")
        check_agent_status(self.status)
        object.__setattr__(self, "applications", tuple(self.applications))
        object.__setattr__(self, "ip_ranges", tuple(self.ip_ranges))
        object.__setattr__(self, "excluded_ip_ranges", tuple(self.excluded_ip_ranges))
        object.__setattr__(
            self, "capabilities", tuple((str(name), str(value)) for name, value in self.capabilities)
        )
        for when in ("started_at", "last_heartbeat"):
            value = getattr(self, when)
            if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
                raise ConfigError(f"{value!r} is not a timezone-aware datetime", field=when)

    @property
    def short_name(self) -> str:
        """The MID name without the ``mid.server.`` prefix."""
        return self.name.removeprefix("mid.server.")


def check_agent_status(status: str) -> str:
    """Return ``status`` if ServiceNow knows it, else raise ``ConfigError`` listing the valid ones."""
    if status not in AGENT_STATUSES:
        raise ConfigError(f"{status!r} is not an agent status ({', '.join(AGENT_STATUSES)})", field="status")
    return status


class AgentNameInUse(QueueError):
    """Another live process already runs an agent under this name (``register_agent``)."""


@dataclass(frozen=True)
class Lease:
    """Who holds a ``processing`` output and until when (queue bookkeeping, not an ECC field)."""

    sys_id: str
    owner: str
    expires_at: datetime


@dataclass(frozen=True)
class PoolClaim:
    """One priority pool's part of a claim round: up to ``limit`` outputs of ``priority``."""

    priority: int
    limit: int
    #: Also re-take what an earlier process of this agent name held (the pool's first claim after a start).
    include_own_processing: bool = False


def claim_each(
    queue: EccQueue, agent: str, claims: Sequence[PoolClaim], lease_seconds: float, *, instance: str | None
) -> builtins.list[builtins.list[EccRecord] | QueueError]:
    """:meth:`EccQueue.claim_pools` as one ``claim`` per pool, in order (the database queues' way)."""
    done: builtins.list[builtins.list[EccRecord] | QueueError] = []
    for pool in claims:
        try:
            done.append(
                queue.claim(
                    agent,
                    pool.limit,
                    lease_seconds,
                    include_own_processing=pool.include_own_processing,
                    priorities=(pool.priority,),
                    instance=instance,
                )
            )
        except QueueError as error:
            done.append(error)
            break
    return done


@dataclass(frozen=True)
class CredentialAffinity:
    """The credential that last worked for an address over a protocol (docs/ecc-reference.md section 5)."""

    address: str
    protocol: str
    credential_id: str
    updated_at: datetime = field(compare=False)


@runtime_checkable
class EccQueue(Protocol):
    """An ECC queue: output records (work for agents) and input records (results and claims).

    Every method is synchronous and may be called from ``asyncio.to_thread``: one queue
    object is safe to share between threads (calls are serialised on one connection).
    Several queue objects, in one or many processes (SQLite) or on many machines
    (PostgreSQL), may work on the same queue at once. Backend failures raise
    ``QueueError`` with a one-line message (a PostgreSQL password is never shown);
    bad arguments raise ``ConfigError``.

    Payload size cap: a payload over ``payload_cap`` bytes (UTF-8; default
    ``ECC_PAYLOAD_CAP`` = 20,000,000) is stored aside in ``ecc_attachment`` and the
    record's ``payload`` field holds ``<see_attachment/>``; ``read_payload`` returns the
    full text either way. Nothing is ever cut.
    """

    #: The queue URL with any password replaced by ``***`` (safe to log and print).
    url: str
    #: Payloads over this many UTF-8 bytes are stored aside as attachments.
    payload_cap: int

    # -- records -------------------------------------------------------------------------------

    def enqueue(self, record: EccRecord) -> str:
        """Insert ``record`` as given (any queue side, any state) and return its ``sys_id``.

        Users and the CLI enqueue outputs (state ``ready``); agents write results with
        :meth:`complete`, not with this. A ``sys_id`` already present raises ``QueueError``.
        """
        ...

    def enqueue_many(self, records: Sequence[EccRecord]) -> builtins.list[str]:
        """:meth:`enqueue` for many records in one transaction (all or none); returns their sys_ids."""
        ...

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
        """Atomically take up to ``limit`` outputs for ``agent`` and lease them for ``lease_seconds``.

        ``priorities`` limits the claim to outputs of those priorities (the agent claims
        for each of its priority pools only what that pool can start).

        ``agent`` is ``NAME`` or ``mid.server.NAME``. An output addressed to ``mid.server.*``
        is never claimed itself: ServiceNow's "Probe - All MIDs" rule copies it, when it is
        enqueued (or, if no agent was eligible then, at the next claim), to every agent that
        ``sqlbase.eligible_for_broadcast`` admits (Up, heartbeat within
        ``BROADCAST_LIVE_SECONDS``), each copy addressed to its agent (``copies_of``), and the
        original becomes ``processed``. Eligible are outputs addressed to this agent that are:

        - in state ``ready``; or
        - in state ``processing`` with an expired lease, whoever held it (the holder
          stopped heartbeating: the record counts as ``ready`` again); or
        - when ``include_own_processing`` is true, in state ``processing`` with a lease
          held by this same agent name, expired or not (the MID re-runs at start-up the
          work it had taken before it stopped).

        They are taken lowest ``priority`` number first, then in the order the database
        received them (not by ``sequence``, which the enqueuer's clock sets), and returned in
        that order with state ``processing``. In the same
        transaction the queue records the claim as the MID does: one input record
        (agent = this agent, topic and name ``queue.processing``, source = this agent,
        state ``processed``) whose payload is
        ``<queue.processing output_message_count="N"><sys_id state="processing">ID</sys_id>...``
        and applies the instance's rule (the outputs become ``processing``, lease owner =
        this agent, lease expiry = now + ``lease_seconds`` on the queue's clock; the
        database clock for PostgreSQL; ``processed`` = now, as ServiceNow stamps it at the
        claim). Nothing eligible: returns ``[]`` and writes nothing.

        ``instance`` is a token unique to the claiming process (the agent makes one at
        start). It is stored with the lease, and an output leased to this same ``agent``
        and ``instance`` is never eligible, expired or not: a process never re-takes work it
        is running. ``include_own_processing`` then takes back only what an earlier process
        of this name (another instance) held.

        Leases run on a clock that no wall-clock step moves: the machine's boot-time
        monotonic clock for SQLite (a reboot expires every lease), the database clock for
        PostgreSQL. The timestamps written (``processed``, ``sys_created_on`` of the claim
        input) come from the database clock on PostgreSQL.

        An eligible output that cannot be read back (a value the driver cannot decode, or
        a field that fails validation) is set aside in the same transaction: state
        ``error`` with ``error_string`` starting ``midprobe: damaged record set aside``, and
        the claim goes on with the next ones. One damaged row never stops claiming.

        Two agents (or two threads, processes, machines) claiming at the same time never
        get the same record. ``limit`` < 1 or ``lease_seconds`` <= 0 raises ``ConfigError``.
        """
        ...

    def claim_pools(
        self, agent: str, claims: Sequence[PoolClaim], lease_seconds: float, *, instance: str | None = None
    ) -> builtins.list[builtins.list[EccRecord] | QueueError]:
        """One :meth:`claim` per pool in ``claims``, in order (the agent's claim round: interactive first).

        Each outcome is what that pool's claim returned, or the ``QueueError`` that failed it;
        a failed claim is the last outcome (the pools after it are not asked), and what the
        pools before it claimed is returned with it, to be run. The HTTPS queue makes the
        whole round one request. An outage before the first claim may raise ``QueueError``.
        """
        ...

    def renew(
        self, agent: str, sys_ids: Sequence[str], lease_seconds: float, *, instance: str | None = None
    ) -> builtins.list[str]:
        """Extend to now + ``lease_seconds`` the leases this agent still holds on ``sys_ids``.

        With ``instance``, only leases taken by that same process are renewed.

        Returns the sys_ids renewed. An id missing from the result is no longer this
        agent's (it was completed, released, or reclaimed by another agent after the
        lease expired): the agent should stop caring about it, its result may already
        exist (``complete`` will then return ``False``).
        """
        ...

    def release(self, agent: str, sys_ids: Sequence[str]) -> builtins.list[str]:
        """Put back to ``ready`` the outputs in ``sys_ids`` still ``processing`` under this agent's lease.

        The SIGTERM path for work not finished. Returns the sys_ids released; others
        (not held by this agent, or already done) are left untouched.
        """
        ...

    def readdress(self, sys_id: str, from_agent: str, to_agent: str) -> bool:
        """Move a ``ready`` output addressed to ``from_agent`` over to ``to_agent`` (cluster failover).

        True if it moved; an output already claimed, answered, or addressed elsewhere stays as it is.
        """
        ...

    def complete(self, output_sys_id: str, result: EccRecord) -> bool:
        """Answer an output with ``result``, exactly once.

        ``result`` must be an input record (``queue == "input"``); it is inserted with
        ``response_to = output_sys_id`` and state ``ready`` (as ServiceNow inputs are),
        keeping its ``error_string``. In the same transaction the output becomes
        ``processed`` (or ``error`` when ``result.error_string`` is set), keeps the ``processed``
        time its claim stamped (stamped now if it was never claimed), and loses its lease.
        Completion does not check the lease: the first result for an output wins, whoever wrote it.

        A multi-page result (payload root ``page="N" last_page="true|false"``) is stored one
        page per call; the output stays ``processing`` (lease kept) until the page marked last
        and every page before it are stored, then becomes ``processed`` (``error`` if a page
        has an ``error_string``). The first result for each page wins; a malformed page marker
        raises ``ConfigError``.

        Returns ``True`` when this call stored the result, ``False`` when a result for
        that output already existed (then nothing changes: a unique index on
        ``response_to`` of non-``queue.processing`` inputs guarantees one result per
        output and page). A missing output, or an ``output_sys_id`` that names an input, raises
        ``QueueError``; a ``result`` that is not an input, or whose ``response_to`` names
        another output, raises ``ConfigError``.
        """
        ...

    def complete_many(self, answers: Sequence[tuple[str, EccRecord]]) -> builtins.list[bool | MidprobeError]:
        """:meth:`complete` for many ``(output_sys_id, result)`` pairs in one transaction.

        The agent writes its results this way: a few statements for the whole batch, not
        a transaction per result. The outcome of each pair, in order, is what
        :meth:`complete` would have returned or raised for it: ``True``, ``False``
        (already answered, or answered by an earlier pair of this batch), or the
        ``ConfigError`` / ``QueueError`` refusing it; a pair refused never stops the
        others. Only a failure of the queue itself (an outage) raises ``QueueError``,
        and then nothing of the batch is stored.
        """
        ...

    def results_of(self, output_sys_id: str) -> builtins.list[EccRecord]:
        """Every input answering ``output_sys_id`` (claims aside), page 1 first: what a sensor reads.

        A result in one piece is one record; a multi-page result is one record per page
        stored so far (the output is ``processed`` once its last page and all before it are).
        """
        ...

    def answered_among(self, output_sys_ids: Sequence[str]) -> set[str]:
        """Those of ``output_sys_ids`` that have at least one answer (a page, or the whole result).

        A few statements for the lot, nothing of the answers read: the orchestrator's pass asks
        this of every output it waits for, then reads the answers of these only.
        """
        ...

    def copies_of(self, sys_id: str) -> builtins.list[EccRecord]:
        """The copies an output addressed to ``mid.server.*`` was made into, one per agent, by agent name."""
        ...

    def send_input(self, record: EccRecord) -> bool:
        """Store an input the agent sends of its own accord (``queue.stats``), answering no output.

        ``record`` must be an input without ``response_to`` and not a ``queue.processing`` claim
        (``ConfigError``). Returns ``False`` when a record with its ``sys_id`` exists already (a
        resend is stored once).
        """
        ...

    def wait_for_work(self, agent: str, timeout: float) -> bool:
        """Block up to ``timeout`` seconds for a sign that outputs for ``agent`` may be ready.

        The MID polls "at once when notified": PostgreSQL sends a NOTIFY when outputs are
        enqueued or released (only those addressed to ``agent`` or ``mid.server.*`` count);
        SQLite, which has no notifications, reports any commit by another connection.
        Returns False when the time is up with no sign. Safe to call from one thread while
        other threads use the queue.
        """
        ...

    def get(self, sys_id: str) -> EccRecord | None:
        """The record with this ``sys_id``, or ``None``."""
        ...

    def agents_of(self, sys_ids: Sequence[str]) -> dict[str, str]:
        """The agent each record of ``sys_ids`` is addressed to, by sys_id (one not found is left out).

        A few statements for the lot, nothing else of the records read: the instance checks
        this way that a batch of answers answers work of the MIDs its user may act as.
        """
        ...

    def read_payload(self, record: EccRecord) -> str:
        """The full payload of ``record``: the field itself, or the attachment if it was stored aside."""
        ...

    def get_attachment(self, sys_id: str) -> str | None:
        """The payload stored aside for record ``sys_id``, or ``None`` if it has none."""
        ...

    def get_lease(self, sys_id: str) -> Lease | None:
        """The lease on a ``processing`` output, or ``None`` when it is not leased."""
        ...

    # -- agents ---------------------------------------------------------------------------------

    def register_agent(
        self,
        registration: AgentRegistration,
        *,
        instance: str | None = None,
        live_within_seconds: float | None = None,
    ) -> None:
        """Create or replace the registration of ``registration.name``; counts as a heartbeat.

        With ``instance`` (the process token) and ``live_within_seconds``, the name is
        refused with ``AgentNameInUse`` (a ``QueueError``) while another instance holds it
        and is alive: its status is not ``Down`` and it heartbeated within that window. A
        name whose holder crashed (no heartbeat for that long) or stopped is taken over.
        """
        ...

    def heartbeat_agent(self, name: str, *, instance: str | None = None) -> None:
        """Record that agent ``name`` is alive now; an unregistered name raises ``QueueError``.

        With ``instance``, only while that process holds the name; otherwise nothing changes
        and ``AgentNameInUse`` says the name was taken over (the agent should stop).
        """
        ...

    def set_agent_status(self, name: str, status: str, *, instance: str | None = None) -> None:
        """Set the status (``Up``, ``Down``, ``Paused``, ...); an unregistered name raises ``QueueError``.

        With ``instance``, as for :meth:`heartbeat_agent` (a process that lost its name never
        marks the new holder ``Down``).
        """
        ...

    def get_agent(self, name: str) -> AgentRegistration | None:
        """The registration of agent ``name`` (``NAME`` or ``mid.server.NAME``), or ``None``."""
        ...

    def list_agents(self, live_within_seconds: float | None = None) -> builtins.list[AgentRegistration]:
        """Registered agents by name; with ``live_within_seconds``, only those that heartbeated that recently.

        Liveness only looks at heartbeats; filter on ``status`` / ``validated`` yourself.
        """
        ...

    # -- the MID lifecycle (docs/agent.md) -------------------------------------------------------

    def update_agent(
        self,
        name: str,
        *,
        validated: bool | None = None,
        admin_state: AdminState | None = None,
        pinned_version: str | None = None,
        rekey: bool | None = None,
    ) -> AgentRegistration:
        """The operator's changes to a MID (``mid validate``, ``invalidate``, ``pause``, ``drain``, ``rekey``).

        Invalidating also drops its sealed credentials and asks for a new key pair (as ServiceNow's
        Invalidate does); ``rekey`` asks the MID for a new key pair and drops the credentials sealed to
        the old one. Returns the registration as changed; an unregistered name raises ``QueueError``.
        """
        ...

    def store_sealed_credentials(self, name: str, public_key: str, sealed: str) -> bool:
        """Keep ``sealed`` (credentials sealed to ``public_key``) for agent ``name``.

        Stored only while ``public_key`` is still the agent's key and it may receive credentials
        (validated, of an accepted version); returns whether it was stored.
        """
        ...

    def get_sealed_credentials(self, name: str) -> str | None:
        """The credentials sealed to agent ``name``'s current key, or ``None`` while it may have none."""
        ...

    def get_discovery_credentials(self, name: str, output_sys_id: str) -> str | None:
        """The credentials of the discovery whose output ``output_sys_id`` agent ``name`` holds, sealed to its key.

        ``None`` when the discovery brings none, or the agent may have none. Only an instance
        keeps a discovery's credentials (sealed to its own key): a database queue has none to give.
        """
        ...

    def raise_issue(self, agent: str, kind: str, message: str, *, source: IssueSource = "mid") -> AgentIssue:
        """Open an issue of ``kind`` for ``agent``, or count again the one open (message updated)."""
        ...

    def clear_issue(self, agent: str, kind: str) -> bool:
        """Resolve the open issue of ``kind`` for ``agent`` (the MID saw it go away); True if there was one."""
        ...

    def list_issues(
        self, agent: str | None = None, *, include_resolved: bool = False
    ) -> builtins.list[AgentIssue]:
        """Issues (of one agent, or all), newest first; Resolved ones only with ``include_resolved``."""
        ...

    def set_issue_state(self, sys_id: str, state: IssueState) -> AgentIssue:
        """Acknowledge or resolve an issue; an unknown ``sys_id`` raises ``QueueError``."""
        ...

    def get_setting(self, name: str) -> str:
        """An instance setting (``accepted_mid_major``, ``auto_validate``); ``""`` when unset."""
        ...

    def set_setting(self, name: str, value: str) -> None:
        """Change an instance setting."""
        ...

    # -- upgrades (docs/agent.md, "Upgrades") ---------------------------------------------------------------------

    def request_upgrade(self, agent: str, version: str) -> AgentUpgrade:
        """Ask MID ``agent`` to upgrade to ``version`` (one request waits per MID: a new one replaces it)."""
        ...

    def pending_upgrade(self, agent: str) -> AgentUpgrade | None:
        """The upgrade asked of ``agent`` that it has not started, if any."""
        ...

    def start_upgrade(
        self, agent: str, from_version: str, to_version: str, *, sys_id: str | None = None
    ) -> AgentUpgrade:
        """The MID begins an upgrade: the request ``sys_id`` (or a new row, for its own check) is Upgrading."""
        ...

    def end_upgrade(self, sys_id: str, *, succeeded: bool, reason: str = "") -> AgentUpgrade:
        """The upgrade ``sys_id`` Succeeded or Failed (``reason``: why)."""
        ...

    def list_upgrades(self, agent: str | None = None) -> builtins.list[AgentUpgrade]:
        """The upgrade history (of one MID, or all), newest first."""
        ...

    # -- credential affinity (docs/ecc-reference.md section 5) ---------------------------------------------------

    def get_affinity(self, address: str, protocol: str) -> CredentialAffinity | None:
        """The credential that last worked for ``address`` over ``protocol`` (e.g. ``ssh``, ``snmp``)."""
        ...

    def set_affinity(self, address: str, protocol: str, credential_id: str) -> None:
        """Remember that ``credential_id`` worked for ``address`` over ``protocol`` (replaces the old one)."""
        ...

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection; further calls raise ``QueueError``. Closing twice is harmless."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    # ``list`` comes last: inside the class body it shadows the builtin for later annotations.
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
        """Records matching every filter given, ordered by ``sequence`` (then ``sys_id``), at most ``limit``.

        ``agent`` takes ``NAME`` or ``mid.server.NAME`` and matches exactly (an output
        addressed to ``mid.server.*`` is listed under ``agent="*"``). ``exclude_topic`` leaves
        out the records of one topic (``ecc list`` hides the claims); ``sys_id_prefix`` keeps the
        records whose ``sys_id`` starts with it (lowercase hex, at most 32 characters).
        """
        ...


__all__ = [
    "AGENT_STATUSES",
    "AgentNameInUse",
    "AgentRegistration",
    "CredentialAffinity",
    "EccQueue",
    "Lease",
    "PoolClaim",
    "check_agent_status",
    "claim_each",
]

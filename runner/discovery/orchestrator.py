"""The orchestrator: starts a discovery and chains its phases through the ECC queue.

``start`` splits the schedule's ranges into Shazzam batches and puts one Shazzam output per
batch on the queue, each addressed to a MID that selection allows (application
``Discovery``, the batch's addresses, the capabilities the topic needs, Up or Degraded); with
the schedule's ``host_discovery``, a ``HostSweep`` per batch (and address family) goes first,
and its result plans the Shazzam of the addresses that answered (all of them when the sweep
could not decide some). ``advance`` then senses each answer (see :mod:`.sensors`): a Shazzam result plans
classification for every host that answered, by port priority; a classification that found
no class tries the next classifier; one that found a class plans identification, a
``MultiProbe`` of the class's identity probes (with the credential classification found),
whose findings (serial number, interface MACs, host name, addresses) identify and reconcile
the device into the CMDB; then exploration, the class's exploration probe, whose findings
(interfaces, addresses, model, firmware, CPUs, memory, LLDP and CDP neighbours) update the CI and
relate it to its neighbours. Every record carries the discovery's status id in ``agent_correlator``.

Nothing is lost to a crash: each output is written to the status store with its ``sys_id``
before it is enqueued, and ``advance`` enqueues whatever was planned but never reached the
queue; an answer is sensed once (the output moves from ``queued`` to done in one statement).
Max run time cancels what is still waiting by answering it with an error input, which the
queue's one-answer rule makes final even for work an agent already holds.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import ipaddress
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from midprobe.capabilities.clusters import DISCOVERY_STATUSES, MidCluster, cluster_named
from midprobe.capabilities.errors import ConfigError, MidprobeError, PayloadError
from midprobe.capabilities.model import Capability, MidServer
from midprobe.capabilities.selection import MidSelector, SelectionPolicy, SelectionRequest
from midprobe.probes.classify import Classification, Classifier, default_classifier
from midprobe.probes.targets import as_blocks
from midprobe.runner.agent.identity import (
    RESOLVE_DNS,
    definitions_from_registrations,
    mid_server_from_registration,
)
from midprobe.runner.cmdb.model import CI_CLASSES, DiscoveredDevice
from midprobe.runner.cmdb.store import CmdbStore
from midprobe.runner.discovery.probe_requests import (
    ENRICHMENT_TOPICS,
    enrichment_requests,
    ptr_resolver,
    shazzam_parameters,
    sweep_parameters,
)
from midprobe.runner.discovery.readers import (
    addresses_decided,
    enrichment_summary,
    read_sweep,
    snmp_agent_absent,
)
from midprobe.runner.discovery.relations import lookups
from midprobe.runner.discovery.schedule import Schedule
from midprobe.runner.discovery.sensors import (
    EXPLORATION_PROBES,
    IDENTITY_PROBES,
    READERS,
    Findings,
    ScannedHost,
    classification_order,
    connection_hints,
    device_from_json,
    device_name,
    device_to_json,
    read_findings,
    read_shazzam,
    with_findings,
)
from midprobe.runner.discovery.status import PlannedOutput, StatusStore
from midprobe.runner.discovery.verdict import COMBINED_MIN_CONFIDENCE, READ_TOPICS, DeviceReadings
from midprobe.runner.ecc.builders import TIMEOUT_PARAMETER, new_input_record, new_output_record
from midprobe.runner.ecc.pages import merge_pages
from midprobe.runner.ecc.payload import (
    ProbeRequest,
    ResultsPayload,
    decode_input_payload,
    encode_multiprobe_payload,
    result_page,
)
from midprobe.runner.ecc.record import EccRecord
from midprobe.runner.queue.base import EccQueue
from midprobe.runner.queue.lifecycle import SETTING_ACCEPTED_MAJOR

if TYPE_CHECKING:  # the resolver package is loaded only by a discovery that looks names up
    from midprobe.probes.dns.resolver import ResolverConfig

APPLICATION: Final = "Discovery"
#: Agents that heartbeated within this many seconds count as live for selection.
LIVE_WITHIN_SECONDS: Final = 120.0
#: Capabilities each discovery topic needs on its MID.
REQUIRED_CAPABILITIES: Final[Mapping[str, tuple[str, ...]]] = {
    "HostSweep": (),
    "Shazzam": (),
    "SSHClassify": (),
    "SNMPClassify": (),
    "NmapHostScan": ("Nmap",),
    "BannerSniff": (),
    "DNSNameResolver": (),
    "NmapServiceScan": ("Nmap",),
    "NmapOSScan": ("Nmap",),
}
#: The longest one host's nmap enrichment may take (seconds).
NMAP_TIMEOUT_SECONDS: Final = 300.0
#: The identification phase's topic: one request running the class's identity probe set.
IDENTIFICATION_TOPIC: Final = "MultiProbe"
#: The topics run per batch of addresses (their output's target is the batch's CIDR blocks).
BATCH_TOPICS: Final = ("HostSweep", "Shazzam")
#: The log line of a device whose classifiers all found no class.
UNCLASSIFIED: Final = "no classifier left: the device stays unclassified"
#: What the log line of a classification that found a class holds (``SSHClassify classified it ...``).
CLASSIFIED: Final = " classified it "
#: Shazzam's port scan alone, without its banner readers (``probes/shazzam.py`` ``SCANNER_NAME``).
PORT_SCAN_ONLY: Final = "GenericTCP"
PHASE_OF_TOPIC: Final = {
    "HostSweep": "scanning",
    "Shazzam": "scanning",
    "SSHClassify": "classification",
    "SNMPClassify": "classification",
    "NmapHostScan": "classification",
    **dict.fromkeys(ENRICHMENT_TOPICS.values(), "classification"),
    IDENTIFICATION_TOPIC: "identification",
    **dict.fromkeys(EXPLORATION_PROBES.values(), "exploration"),
}


class Forgetting(Protocol):
    """A private queue that lets go of what was sensed (``runner/queue/sqlite.py`` ``SqliteQueue``)."""

    def discard(self, output_sys_ids: Sequence[str]) -> None:
        """Delete these outputs with their answers."""

    def drop_payloads(self, sys_ids: Sequence[str]) -> None:
        """Keep these answers' rows (their pages count) without their payloads."""


class NoSuitableMid(MidprobeError):
    """No live MID may run this phase for these addresses."""


@dataclass(frozen=True)
class DeviceDone:
    """A device nothing more runs for, with everything its answers said (told to ``on_device_done``)."""

    status_id: str
    ip: str
    #: The host as its port scan found it, and the engine that scanned it (``None``: the port scan
    #: was sensed by another process, before a restart).
    host: ScannedHost | None
    engine: str
    #: What its classification and enrichment answers said, read as one.
    readings: DeviceReadings
    #: The combined verdict, when the schedule's enrichment asked for one (else ``None``).
    verdict: Classification | None
    #: ``(topic, error)`` for each of its requests that failed.
    errors: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Sensed:
    """An answer (or new pages of one) about to be sensed (told to ``on_sensed``)."""

    status_id: str
    output: PlannedOutput
    payload: ResultsPayload
    #: The error it carries ('' when the probe ran).
    error: str
    #: Its result is whole (a result in one piece, or its last page is in).
    whole: bool
    #: Pages of its result sensed with these (1 for a result in one piece).
    pages: int


@dataclass(frozen=True)
class Progress:
    """What one ``advance`` call did."""

    enqueued: int = 0
    sensed: int = 0
    cancelled: int = 0
    done: bool = False


class Orchestrator:
    """The instance's half of discovery over one queue, its status store and its CMDB."""

    def __init__(
        self,
        queue: EccQueue,
        status: StatusStore,
        cmdb: CmdbStore,
        *,
        clusters: Sequence[MidCluster] = (),
        policy: SelectionPolicy | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        on_device_done: Callable[[DeviceDone], None] | None = None,
        on_sensed: Callable[[Sensed], None] | None = None,
        classifier: Classifier | None = None,
        resolver: ResolverConfig | None = None,
        forget: Forgetting | None = None,
    ) -> None:
        self.queue = queue
        self.status = status
        self.cmdb = cmdb
        self.clusters = tuple(clusters)
        #: The capabilities file's [selection] and [[application]] rules (default MIDs, the ladder).
        self.policy = policy
        self._monotonic = monotonic
        self._rng = rng or random.Random()
        self._started_at: dict[str, float] = {}
        self._view: tuple[MidSelector, list[MidServer]] | None = None
        #: Outputs this orchestrator planned per MID: ``auto`` spreads work over the suitable MIDs.
        self._assigned: collections.Counter[str] = collections.Counter()
        #: Told once nothing more is planned or waiting for a device (its last phase's answer was
        #: sensed), with what its answers said: a caller reporting per device reports then.
        self.on_device_done = on_device_done
        #: Told of each answer (or new pages) as a pass is about to sense it.
        self.on_sensed = on_sensed
        #: The rules of the combined verdict (``probes/classify``'s by default).
        self.classifier = classifier if classifier is not None else default_classifier()
        #: Where ``names`` enrichment asks for PTR names (``None``: the schedule's ``dns_servers``).
        self.resolver = resolver
        #: The queue itself when it is private: what was sensed goes (a batch's pages lose their
        #: payloads as they are sensed, and its records go once it is whole; a device's records and
        #: status rows once it is done), so a long one-off discovery keeps only what is under way.
        #: ``None``: everything is kept.
        self._forget = forget
        #: Discoveries whose batches a caller adds (:meth:`add_batch`) until it closes them.
        self._fed: set[str] = set()
        #: Each device's host as its port scan found it and the engine, until it is done (this
        #: process's passes only: what :class:`DeviceDone` tells).
        self._hosts: dict[tuple[str, str], tuple[ScannedHost, str]] = {}

    # -- MID selection ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _one_view(self) -> Iterator[None]:
        """Within one pass, every selection reads the agent registry once (not twice per device), and
        the device log is written once."""
        if self._view is not None:  # a pass inside a pass (start ends with one) shares the outer view
            yield
            return
        try:
            with self.status.batched():  # and its log lines are written together at its end
                yield
        finally:
            self._view = None

    def _mids(self) -> tuple[MidSelector, list[MidServer]]:
        if self._view is None:
            self._view = self._read_mids()
        return self._view

    def _read_mids(self) -> tuple[MidSelector, list[MidServer]]:
        registered = self.queue.list_agents()
        live = {agent.name for agent in self.queue.list_agents(live_within_seconds=LIVE_WITHIN_SECONDS)}
        accepted = self.queue.get_setting(SETTING_ACCEPTED_MAJOR)
        mids = [
            mid_server_from_registration(agent, live=agent.name in live, accepted_major=accepted)
            for agent in registered
        ]
        return MidSelector(definitions_from_registrations(registered), policy=self.policy), mids

    def _cluster(self, schedule: Schedule) -> MidCluster | None:
        if schedule.mid_choice != "cluster":
            return None
        assert schedule.mid is not None
        try:
            return cluster_named(self.clusters, schedule.mid)
        except ConfigError as error:
            raise NoSuitableMid(f"{error.message} (give the capabilities file that defines it)") from None

    def choose_mid(
        self,
        schedule: Schedule,
        topic: str,
        addresses: Sequence[str],
        *,
        among: Sequence[MidServer] | None = None,
    ) -> str:
        """The MID to run ``topic`` for ``addresses`` (every address must be in its ranges; a host
        name asks for a MID whose ``Resolve DNS`` capability covers it).

        ``auto``: the suitable MID this orchestrator gave the fewest outputs so far (ties by name),
        so several suitable MIDs share a discovery's work; a named MID: that one; a cluster:
        Failover takes the suitable member of lowest order, Load Balance one of the suitable
        members at random.
        """
        selector, mids = self._mids()
        cluster = self._cluster(schedule)
        candidates = list(among) if among is not None else mids
        if cluster is not None:
            candidates = [mid for mid in candidates if mid.name in cluster.member_names]
            if not candidates:
                raise NoSuitableMid(f"no member of cluster {cluster.name!r} may take {topic} here")
        elif schedule.mid_choice == "named":
            candidates = [mid for mid in candidates if mid.name == schedule.mid]
            if not candidates:
                raise NoSuitableMid(f"the schedule's MID {schedule.mid!r} has never registered")
        wanted = tuple(Capability(name, "") for name in REQUIRED_CAPABILITIES.get(topic, ()))
        chosen: set[str] | None = None
        for address in addresses:
            if _is_address(address):
                request = SelectionRequest(wanted, APPLICATION, ipaddress.ip_address(address))
            else:
                request = SelectionRequest((*wanted, Capability(RESOLVE_DNS, address)), APPLICATION)
            result = selector.select(candidates, request)
            names = {name for name in result.names if _discovery_status_ok(candidates, name)}
            chosen = names if chosen is None else chosen & names
            if not chosen:
                reasons = (
                    "; ".join(f"{mid}: {why}" for mid, why in result.rejected.items()) or "no MID registered"
                )
                raise NoSuitableMid(f"no MID may run {topic} for {address} ({reasons})")
        assert chosen
        if cluster is not None:
            picked = cluster.pick(chosen, rng=self._rng)
            assert picked is not None
            return picked
        return min(chosen, key=lambda name: (self._assigned[name], name))

    def nmap_available(self, schedule: Schedule, address: str) -> bool:
        try:
            self.choose_mid(schedule, "NmapHostScan", [address])
        except NoSuitableMid:
            return False
        return True

    # -- starting ----------------------------------------------------------------------------------

    def start(
        self,
        schedule: Schedule,
        *,
        on_created: Callable[[str], None] | None = None,
        fed: bool = False,
        addresses: int | None = None,
    ) -> str:
        """Create the discovery's status and enqueue its Shazzam batches; returns the status id.

        ``on_created`` gets the status id before anything is planned or enqueued (the instance
        stores what the discovery needs there, so no agent sees its work first). ``fed``: no
        batch is planned here; the caller adds them (:meth:`add_batch`) as it goes, and the
        discovery cannot complete before the caller says it added the last (:meth:`close_feed`);
        ``addresses``: how many its ranges hold, when the caller counted them already.
        """
        with self._one_view():
            return self._start(schedule, on_created, fed, addresses)

    def _start(
        self,
        schedule: Schedule,
        on_created: Callable[[str], None] | None,
        fed: bool,
        addresses: int | None,
    ) -> str:
        summary = dataclasses.asdict(schedule)
        if addresses is None:
            addresses = schedule.targets.count() + len(schedule.host_names)
        status_id = self.status.create(schedule.name, summary, schedule.max_run_time, addresses=addresses)
        self._started_at[status_id] = self._monotonic()
        if on_created is not None:
            on_created(status_id)
        if fed:
            self._fed.add(status_id)
            self.status.set_state(status_id, "Active")
            return status_id
        for name in schedule.host_names:  # each on its own, on a MID that resolves its domain
            self._plan_batch(status_id, schedule, "Shazzam", (name,), f"host {name}")
        for index, blocks in enumerate(schedule.batches()):
            label = f"batch {index + 1}"
            if not schedule.host_discovery:
                self._plan_batch(status_id, schedule, "Shazzam", blocks, label)
                continue
            for version in (4, 6):  # one sweep per address family (ARP/ICMP, ICMPv6 after ND)
                family = tuple(b for b in blocks if ipaddress.ip_network(b, strict=False).version == version)
                if family:
                    self._plan_batch(status_id, schedule, "HostSweep", family, label)
        self.status.set_state(status_id, "Active")
        self.advance(status_id)
        return status_id

    def add_batch(self, status_id: str, topic: str, blocks: Sequence[str], label: str) -> None:
        """Plan one batch of a fed discovery (:meth:`start`): the ``HostSweep`` (which plans the
        port scan of the addresses that answer it) or the ``Shazzam`` of ``blocks`` (CIDR blocks,
        or one host name), on a MID that may take them; the next pass enqueues it."""
        if topic not in BATCH_TOPICS:
            raise ConfigError(f"a batch is {' or '.join(BATCH_TOPICS)}, not {topic}", field="topic")
        with self._one_view():
            schedule = _schedule_from(self.status.schedule_of(status_id))
            self._plan_batch(status_id, schedule, topic, blocks, label)

    def close_feed(self, status_id: str) -> None:
        """The caller of a fed discovery added its last batch: it completes once its work is done."""
        self._fed.discard(status_id)

    def _plan_batch(
        self, status_id: str, schedule: Schedule, topic: str, blocks: Sequence[str], label: str
    ) -> None:
        """Plan the ``HostSweep`` or ``Shazzam`` of one batch's ``blocks`` on a MID that may take them."""
        try:
            agent = self.choose_mid(schedule, topic, _selected_by(blocks))
        except NoSuitableMid as error:
            self.status.log(status_id, " ".join(blocks), "scanning", f"{label} not scanned: {error}")
            return
        if topic == "HostSweep":
            parameters = sweep_parameters(
                blocks,
                wait_ms=schedule.connect_wait,
                retries=schedule.retries,
                rate=schedule.rate,
                max_addresses=schedule.batch_size,
            )
        else:
            parameters = shazzam_parameters(
                schedule.ports,
                engine=schedule.engine,
                connect_wait_ms=schedule.connect_wait,
                retries=schedule.retries,
                rate=schedule.rate,
                scanners=None if schedule.shazzam_readers else PORT_SCAN_ONLY,
                page_wait_ms=schedule.page_wait,
                page_items=schedule.page_items if schedule.page_wait is not None else None,
            )
            if schedule.page_wait is not None and schedule.page_items is not None:
                # The port scan decides at most a page of hosts ahead of the pages it gave.
                parameters["queue_size"] = str(schedule.page_items)
        self._plan(
            status_id,
            schedule,
            topic,
            " ".join(blocks),
            agent,
            list(parameters.items()),
            meta={"label": label},
        )

    def _plan(
        self,
        status_id: str,
        schedule: Schedule,
        topic: str,
        source: str,
        agent: str,
        parameters: list[tuple[str, str]],
        *,
        meta: Mapping[str, object],
        probes: Sequence[str] = (),
    ) -> str | None:
        """Write down one output (``probes``: a MultiProbe of these topics sharing ``parameters``)."""
        if schedule.credential_tags and topic not in BATCH_TOPICS:
            parameters = [*parameters, ("credential_tag", schedule.credential_tags[0])]
        if schedule.probe_timeout is not None and topic not in BATCH_TOPICS:
            timeout_ms = str(max(1, round(schedule.probe_timeout * 1000)))
            parameters = [*parameters, (TIMEOUT_PARAMETER, timeout_ms)]
        record = new_output_record(
            agent=agent,
            topic=topic,
            source=source,
            parameters=() if probes else parameters,
            agent_correlator=status_id,
        )
        if probes:
            record = record.with_changes(
                payload=encode_multiprobe_payload([ProbeRequest(name) for name in probes], parameters)
            )
        planned = {"sys_id": record.sys_id, "record": record.as_dict(), "meta": dict(meta)}
        self._assigned[agent] += 1
        return self.status.plan(status_id, PHASE_OF_TOPIC[topic], source, topic, agent, planned)

    # -- advancing ---------------------------------------------------------------------------------

    def advance(self, status_id: str) -> Progress:
        """Enqueue what was planned, sense what was answered, enforce max run time; one pass."""
        with self._one_view():
            return self._advance(status_id)

    def _advance(self, status_id: str) -> Progress:
        state = self.status.get(status_id)
        if state.done:
            return Progress(done=True)
        schedule = _schedule_from(self.status.schedule_of(status_id))
        enqueued = self._enqueue_planned(status_id)
        if schedule.mid_choice == "cluster":
            self._fail_over(status_id, schedule)
        sensed = 0
        waiting = self.status.outputs(status_id, "queued")
        # One look for the lot: only outputs that have an answer (or a new page) are read.
        answered = self.queue.answered_among([output.sys_id for output in waiting]) if waiting else set()
        for output in waiting:
            if output.sys_id not in answered:
                continue
            read = self.queue.results_of(output.sys_id)  # one, or the pages of a multi-page result
            if not read:
                continue
            whole, answers = self._whole(output.sys_id, read)
            paged = output.topic == "Shazzam" and schedule.page_wait is not None
            if paged and not whole:
                # A port scan asked for pages as it goes: each page's hosts go on at once.
                sensed += self._sense_pages(status_id, schedule, output, answers)
                continue
            if whole and self.status.mark(output.sys_id, "completed", only_from=("queued",)):
                sensed += 1
                # Pages already sensed as they came are not sensed again.
                rest = answers[self.status.pages_sensed(output.sys_id) if paged else 0 :]
                if rest:
                    self._sense(status_id, schedule, output, rest, whole=True, pages=len(answers))
                if output.topic not in BATCH_TOPICS:
                    self._device_done(status_id, schedule, output.target, output.phase)
                elif self._forget is not None:
                    self._forget.discard([output.sys_id])
        cancelled = 0
        if self._over_time(status_id, state.max_run_time):
            cancelled = self.cancel(status_id, reason="max run time reached")
            return Progress(enqueued, sensed, cancelled, done=True)
        if status_id not in self._fed and not self.status.outputs(status_id, "planned", "queued"):
            self.status.set_state(status_id, "Completed")
            return Progress(enqueued, sensed, cancelled, done=True)
        return Progress(enqueued, sensed, cancelled, done=False)

    def _sense_pages(
        self, status_id: str, schedule: Schedule, output: PlannedOutput, answers: Sequence[EccRecord]
    ) -> int:
        """Sense the pages of a result not yet whole that no pass sensed before (1 if there were)."""
        before = self.status.pages_sensed(output.sys_id)
        if len(answers) <= before or not self.status.claim_pages(output.sys_id, before, len(answers)):
            return 0
        new = answers[before:]
        self._sense(status_id, schedule, output, new, whole=False, pages=len(answers))
        if self._forget is not None:  # the queue keeps the pages (they count), not what they said
            self._forget.drop_payloads([answer.sys_id for answer in new])
        return 1

    def _whole(self, output_sys_id: str, answers: Sequence[EccRecord]) -> tuple[bool, Sequence[EccRecord]]:
        """Whether every page of the output's result is in (a result in one piece, or a closed
        output), with its answers: for a closed output read again, since its last pages may have
        come after ``answers`` were read (an agent answers while a pass runs)."""
        # (A page whose payload was dropped once sensed is no whole result: its output says.)
        if len(answers) == 1 and not answers[0].payload_is_attachment and answers[0].payload:
            try:
                if result_page(answers[0].payload) == (1, True):
                    return True, answers
            except PayloadError:
                return True, answers  # unreadable: sensed (and logged) as it is
        output = self.queue.get(output_sys_id)
        if output is None or output.state not in ("processed", "error"):
            return False, answers
        return True, self.queue.results_of(output_sys_id)

    def _enqueue_planned(self, status_id: str) -> int:
        count = 0
        for output in self.status.outputs(status_id, "planned"):
            if self.queue.get(output.sys_id) is None:
                self.queue.enqueue(EccRecord.from_dict(output.record["record"]))  # type: ignore[arg-type]
                count += 1
            self.status.mark(output.sys_id, "queued", only_from=("planned",))
        return count

    def _fail_over(self, status_id: str, schedule: Schedule) -> None:
        """Move waiting work off a cluster member that went Down to a member able to run it."""
        cluster = self._cluster(schedule)
        assert cluster is not None
        _, mids = self._mids()
        by_name = {mid.name: mid for mid in mids}
        for output in self.status.outputs(status_id, "queued"):
            failed = by_name.get(output.agent.removeprefix("mid.server."))
            if failed is None or failed.status in DISCOVERY_STATUSES:
                continue
            record = self.queue.get(output.sys_id)
            if record is None or record.state != "ready":
                continue  # under way (its lease decides) or answered: never moved
            able = cluster.replacements(failed, mids, output.topic)
            addresses = (
                output.target.split()
                if output.topic not in BATCH_TOPICS
                else _selected_by(output.target.split())
            )
            try:
                replacement = self.choose_mid(schedule, output.topic, addresses, among=able)
            except NoSuitableMid as error:
                self.status.log(
                    status_id, output.target, output.phase, f"{failed.name} is {failed.status}: {error}"
                )
                continue
            if self.queue.readdress(output.sys_id, failed.name, replacement):
                self.status.reassign(output.sys_id, f"mid.server.{replacement}")
                self.status.log(
                    status_id,
                    output.target,
                    output.phase,
                    f"{output.topic} moved from {failed.name} ({failed.status}) to {replacement} (cluster {cluster.name})",
                )

    def count_run_time_from(self, status_id: str, elapsed_seconds: float) -> None:
        """A discovery resumed by a new process has run ``elapsed_seconds`` already (max run time counts them)."""
        self._started_at[status_id] = self._monotonic() - elapsed_seconds

    def _over_time(self, status_id: str, max_run_time: float | None) -> bool:
        if max_run_time is None:
            return False
        started = self._started_at.setdefault(status_id, self._monotonic())
        return self._monotonic() - started >= max_run_time

    def cancel(self, status_id: str, *, reason: str = "cancelled") -> int:
        """Answer every waiting output of the discovery with an error, so no agent runs it; Cancelled."""
        count = 0
        for output in self.status.outputs(status_id, "planned", "queued"):
            record = self.queue.get(output.sys_id)
            if record is not None and record.state in ("ready", "processing"):
                # Pages of its result already in: the error is the last page after them, closing it.
                pages = len(self.queue.results_of(record.sys_id))
                answer = new_input_record(
                    record,
                    agent=record.agent,
                    results=[],
                    probe_time_ms=0,
                    error=f"discovery {reason}",
                    page=(pages + 1, True) if pages else None,
                )
                self.queue.complete(record.sys_id, answer)
            if self.status.mark(output.sys_id, "cancelled", only_from=("planned", "queued")):
                count += 1
                self.status.log(status_id, output.target, output.phase, f"{output.topic} cancelled: {reason}")
        self.status.set_state(status_id, "Cancelled", note=f"{reason}; {count} outputs cancelled")
        return count

    # -- sensors -----------------------------------------------------------------------------------

    def _sense(
        self,
        status_id: str,
        schedule: Schedule,
        output: PlannedOutput,
        answers: Sequence[EccRecord],
        *,
        whole: bool = True,
        pages: int = 1,
    ) -> None:
        meta = output.record.get("meta", {})
        assert isinstance(meta, dict)
        try:
            payload = merge_pages(
                [decode_input_payload(self.queue.read_payload(answer)) for answer in answers]
            )
        except PayloadError as error:
            self.status.mark(output.sys_id, "error")
            self.status.log(
                status_id, output.target, output.phase, f"{output.topic}: unreadable result ({error})"
            )
            return
        if payload.skips_sensor:  # the input asks that no sensor process it
            self.status.log(
                status_id, output.target, output.phase, f"{output.topic}: skip_sensor, not sensed"
            )
            return
        error_text = (
            next((answer.error_string for answer in answers if answer.error_string), "") or payload.error
        )
        if self.on_sensed is not None:
            self.on_sensed(Sensed(status_id, output, payload, error_text or "", whole, pages))
        if output.topic == "HostSweep":
            self._sense_sweep(status_id, schedule, output, meta, payload, error_text)
            return
        if output.topic == "Shazzam":
            if error_text:
                self.status.mark(output.sys_id, "error")
                self.status.log(status_id, output.target, "scanning", f"Shazzam failed: {error_text}")
                return
            self._sense_shazzam(status_id, schedule, output, payload)
            return
        if output.topic in ENRICHMENT_TOPICS.values():
            if error_text:
                self.status.mark(output.sys_id, "error")
            found = (
                f"failed: {error_text}"
                if error_text
                else f"found {enrichment_summary(output.topic, payload)}"
            )
            self.status.log(status_id, output.target, output.phase, f"{output.topic} {found}")
            return
        if output.phase in ("identification", "exploration"):
            self._sense_findings(status_id, schedule, output, meta, payload, error_text)
            return
        ip = output.target
        dns_name = str(meta.get("dns_name", ""))
        remaining = [str(t) for t in meta.get("remaining", [])]
        open_ports = [int(p) for p in meta.get("open_ports", [])]
        device = None
        if error_text and output.topic == "SNMPClassify" and snmp_agent_absent(error_text):
            self.status.log(status_id, ip, "classification", f"SNMPClassify found no agent: {error_text}")
        elif error_text:
            self.status.mark(output.sys_id, "error")
            self.status.log(status_id, ip, "classification", f"{output.topic} failed: {error_text}")
        else:
            try:
                device = READERS[output.topic](payload, ip, dns_name)
            except MidprobeError as error:
                self.status.log(
                    status_id, ip, "classification", f"{output.topic}: result not usable ({error})"
                )
            if device is None and not error_text:
                self.status.log(status_id, ip, "classification", f"{output.topic} found no class")
        if device is None:
            if schedule.classify == "first":  # "all": its siblings are under way; the end decides
                self._plan_classification(status_id, schedule, ip, dns_name, remaining, open_ports)
            return
        identity = IDENTITY_PROBES.get(output.topic, ())
        classified = f"{output.topic} classified it {device.sys_class_name}"
        # Credential-less (nothing to log in with) or a schedule that stops here: the
        # classification is all there is.
        if not identity or not schedule.runs("identification"):
            self._reconcile(status_id, schedule, ip, device, classified)
            return
        self.status.log(status_id, ip, "classification", classified)
        next_meta = {
            "classifier": output.topic,
            "device": device_to_json(device),
            "hints": connection_hints(payload),
        }
        self._plan_next(status_id, schedule, ip, "identification", IDENTIFICATION_TOPIC, next_meta, identity)

    def _plan_next(
        self,
        status_id: str,
        schedule: Schedule,
        ip: str,
        phase: str,
        topic: str,
        meta: Mapping[str, object],
        probes: Sequence[str] = (),
    ) -> None:
        """Plan identification or exploration for ``ip``, reusing the credential classification found."""
        hints = meta.get("hints", {})
        assert isinstance(hints, dict)
        try:
            agent = self.choose_mid(schedule, topic, [ip])
        except NoSuitableMid as error:
            self.status.log(status_id, ip, phase, f"{topic} skipped: {error}")
            if phase == "identification":  # the classified device still gets its CI
                self._reconcile(status_id, schedule, ip, _planned_device(meta), "from classification")
            return
        parameters = [(str(k), str(v)) for k, v in sorted(hints.items())]
        self._plan(status_id, schedule, topic, ip, agent, parameters, meta=meta, probes=probes)
        what = f"{topic} ({', '.join(probes)})" if probes else topic
        self.status.log(status_id, ip, phase, f"{what} sent to {agent.removeprefix('mid.server.')}")

    def _sense_findings(
        self,
        status_id: str,
        schedule: Schedule,
        output: PlannedOutput,
        meta: Mapping[str, object],
        payload: ResultsPayload,
        error_text: str | None,
    ) -> None:
        """Identification or exploration answered: lay the findings over the device, reconcile, go on."""
        ip, phase = output.target, output.phase
        device = _planned_device(meta)
        findings = read_findings(payload)
        if error_text:
            self.status.mark(output.sys_id, "error")
            self.status.log(status_id, ip, phase, f"{output.topic} failed: {error_text}")
            if phase == "identification":  # what classification found still makes a CI
                self._reconcile(status_id, schedule, ip, device, "from classification")
            return
        for probe, why in findings.failed.items():  # some probes of the set failed, the others count
            self.status.log(status_id, ip, phase, f"{probe} failed: {why}")
        found = with_findings(device, findings)
        summary = _summary(findings)
        what = ", ".join(findings.answered) or output.topic
        ci = self._reconcile(status_id, schedule, ip, found, f"{what} found {summary}", phase=phase)
        if ci is None:
            return
        if phase == "identification":
            classifier = str(meta.get("classifier", ""))
            explore = EXPLORATION_PROBES.get(classifier)
            if explore is not None and schedule.runs("exploration"):
                next_meta = {**meta, "device": device_to_json(found), "ci": ci}
                self._plan_next(status_id, schedule, ip, "exploration", explore, next_meta)
            return
        self._relate_found(status_id, ip, ci, findings)

    def _relate_found(self, status_id: str, ip: str, ci: str, findings: Findings) -> None:
        """Store the exploration tables of ``ci``, then record each relation they point to whose
        other CI is known (LLDP/CDP neighbours and FDB entries: Connects to; TCP connections:
        Depends on), by MAC, address, then name."""
        if findings.tables:
            self.cmdb.record_exploration(ci, findings.tables, discovery=status_id)
        for lookup in lookups(findings):
            other = self.cmdb.owner_of(mac=lookup.mac, address=lookup.address, name=lookup.name)
            said = f"{lookup.verb} {lookup.seen}{lookup.how}"
            if other is None or other == ci:
                why = "not in the CMDB" if other is None else "this device itself"
                self.status.log(status_id, ip, "exploration", f"{said}: {why}")
                continue
            parent, child = (other, ci) if lookup.found_is_parent else (ci, other)
            self.cmdb.relate(parent, child, lookup.type, discovery=status_id)
            self.status.log(status_id, ip, "exploration", f"{said}, CI {other}")

    def _reconcile(
        self,
        status_id: str,
        schedule: Schedule,
        ip: str,
        device: DiscoveredDevice,
        how_found: str,
        *,
        phase: str = "identification",
    ) -> str | None:
        """Identify and write ``device``; log what happened; the CI's sys_id (None: a conflict, or a
        schedule that writes nothing to the CMDB)."""
        if not schedule.cmdb:
            self.status.log(status_id, ip, phase, f"{how_found}; not written to the CMDB (cmdb = false)")
            return None
        result = self.cmdb.reconcile(device, discovery=status_id)
        how = f"by {result.rule}" if result.rule else "new"
        if result.action == "conflict":
            self.status.log(status_id, ip, phase, f"identity conflict, nothing written: {result.reason}")
            return None
        changed = f", {len(result.changes)} changes" if result.changes else ""
        merged = f", merged {len(result.merged)}" if result.merged else ""
        self.status.log(
            status_id,
            ip,
            phase,
            f"{how_found}; {device.sys_class_name} CI {result.ci} {result.action} ({how}{changed}{merged})",
        )
        return result.ci

    def _sense_sweep(
        self,
        status_id: str,
        schedule: Schedule,
        output: PlannedOutput,
        meta: Mapping[str, object],
        payload: ResultsPayload,
        error_text: str | None,
    ) -> None:
        """A batch's host-discovery sweep answered: port-scan the addresses that answered it, and
        every address of the batch when the sweep failed or could not decide some (none is taken
        for down on a guess)."""
        blocks = output.target.split()
        label = str(meta.get("label", "batch"))
        swept = None if error_text else read_sweep(payload)
        if swept is None or not swept.complete:
            why = f"failed: {error_text}" if error_text else "cut short"
            if error_text:
                self.status.mark(output.sys_id, "error")
            self.status.log(
                status_id, output.target, "scanning", f"HostSweep {why}; every address is port-scanned"
            )
            self._plan_batch(status_id, schedule, "Shazzam", blocks, label)
            return
        live = [ipaddress.ip_address(a) for a in sorted(swept.alive | swept.incomplete) if _is_address(a)]
        # The silent ones are decided here; the port scan decides the others.
        self.status.count_addresses(status_id, output.sys_id, decided=max(0, swept.addresses - len(live)))
        how = ",".join(swept.methods_used) or "no method"
        self.status.log(
            status_id, output.target, "scanning", f"HostSweep ({how}): {len(live)} addresses answered"
        )
        if live:
            self._plan_batch(status_id, schedule, "Shazzam", as_blocks(live), label)

    def _sense_shazzam(
        self, status_id: str, schedule: Schedule, output: PlannedOutput, payload: ResultsPayload
    ) -> None:
        hosts = read_shazzam(payload)
        self.status.count_addresses(
            status_id,
            output.sys_id,
            decided=addresses_decided(payload, listed=len(hosts)),
            alive=sum(host.alive for host in hosts),
            incomplete=sum(host.incomplete is not None for host in hosts),
        )
        engine = next((result.get("engine", "") for result in payload.results), "")
        for host in hosts:
            if self.on_device_done is not None:
                self._hosts[(status_id, host.ip)] = (host, engine)
            if host.incomplete is not None:  # not known to be down: said, so it is scanned again
                self.status.log(status_id, host.ip, "scanning", f"incomplete: {host.incomplete}")
            if not host.alive:
                if host.incomplete is not None:
                    self._device_done(status_id, schedule, host.ip, "scanning", planned=False)
                continue
            ports = ",".join(str(p) for p in sorted(host.open_ports)) or "none"
            self.status.log(status_id, host.ip, "scanning", f"alive, open TCP ports: {ports}")
            if not schedule.runs("classification"):
                self._device_done(status_id, schedule, host.ip, "scanning", planned=False)
                continue
            nmap = "nmap" in schedule.behaviour and self.nmap_available(schedule, host.ip)
            topics, notes = classification_order(host, schedule.behaviour, nmap_available=nmap)
            for note in notes:
                self.status.log(status_id, host.ip, "classification", note)
            open_ports = sorted(host.open_ports)
            planned = self._plan_classification(
                status_id, schedule, host.ip, host.host_name, topics, open_ports
            )
            planned += self._plan_enrichment(status_id, schedule, host)
            self._device_done(status_id, schedule, host.ip, "classification", planned=planned > 0)

    def _plan_enrichment(self, status_id: str, schedule: Schedule, host: ScannedHost) -> int:
        """The schedule's enrichment probes for a host, each on a MID that may run it: banners and
        nmap where ports are open, the SNMP tap and the PTR name on any host that answered; how many
        were planned."""
        open_ports = sorted(host.open_ports)
        resolver = None
        if "names" in schedule.enrichment:
            resolver = self.resolver if self.resolver is not None else ptr_resolver(schedule.dns_servers)
        requests = enrichment_requests(
            host,
            schedule.enrichment,
            resolver=resolver,
            nmap_timeout_seconds=schedule.probe_timeout or NMAP_TIMEOUT_SECONDS,
            nmap_syn=schedule.nmap_syn,
        )
        planned = 0
        for topic, parameters in requests.items():
            try:
                agent = self.choose_mid(schedule, topic, [host.ip])
            except NoSuitableMid as error:
                self.status.log(status_id, host.ip, "classification", f"{topic} skipped: {error}")
                continue
            meta = {"open_ports": open_ports}
            if self._plan(status_id, schedule, topic, host.ip, agent, list(parameters.items()), meta=meta):
                planned += 1
        return planned

    def _device_done(
        self, status_id: str, schedule: Schedule, ip: str, phase: str, *, planned: bool = True
    ) -> None:
        """Say (in the log, and to :attr:`on_device_done`) that ``ip`` is done, unless more is planned
        (``planned=False``: nothing was planned for it, no need to look); with enrichment, weigh
        everything its answers said first (:meth:`_combined_verdict`)."""
        if planned and self.status.waiting_for(status_id, ip):
            return
        if schedule.classify == "all" and phase == "classification" and planned:
            # Every classifier ran at once: the device is unclassified if none of them classified it.
            classified = self.status.logged(status_id, ip, f"%{CLASSIFIED}%", like=True)
            if not classified and not self.status.logged(status_id, ip, UNCLASSIFIED):
                self.status.log(status_id, ip, "classification", UNCLASSIFIED)
        readings: DeviceReadings | None = None
        errors: tuple[tuple[str, str], ...] = ()
        verdict: Classification | None = None
        if planned and (self.on_device_done is not None or (schedule.enrichment and phase != "scanning")):
            readings, open_ports, errors = self._readings(status_id, ip)
            if schedule.enrichment and phase != "scanning":
                verdict = self._combined_verdict(status_id, schedule, ip, readings, open_ports)
        self.status.log(status_id, ip, phase, "done: nothing more runs for this device")
        host, engine = self._hosts.pop((status_id, ip), (None, ""))
        if self.on_device_done is not None:
            if readings is None:
                readings = DeviceReadings()
                readings.settle()
            self.on_device_done(DeviceDone(status_id, ip, host, engine, readings, verdict, errors))
        if self._forget is not None:  # told: its records and status rows are not needed any more
            if planned:
                self._forget.discard([output.sys_id for output in self.status.outputs(status_id, target=ip)])
            self.status.forget_device(status_id, ip)

    def _readings(
        self, status_id: str, ip: str
    ) -> tuple[DeviceReadings, list[int], tuple[tuple[str, str], ...]]:
        """Everything the device's answered classification and enrichment outputs said, its open TCP
        ports (as its port scan found them), and ``(topic, error)`` for each of its failed ones."""
        readings = DeviceReadings()
        open_ports: list[int] = []
        errors: list[tuple[str, str]] = []
        for output in self.status.outputs(status_id, "completed", "error", target=ip):
            meta = output.record.get("meta", {})
            if isinstance(meta, dict) and meta.get("open_ports"):
                open_ports = [int(p) for p in meta["open_ports"]]
            if output.topic not in READ_TOPICS:
                continue
            answers = self.queue.results_of(output.sys_id)
            try:
                payload = merge_pages([decode_input_payload(self.queue.read_payload(a)) for a in answers])
            except MidprobeError as error:  # unreadable: its own sensor said so when it came
                if output.state == "error":
                    errors.append((output.topic, f"unreadable result ({error})"))
                continue
            failed = next((a.error_string for a in answers if a.error_string), "") or payload.error
            if output.state == "error":
                errors.append((output.topic, failed or "failed"))
            elif not failed:
                readings.read(output.topic, payload)
        readings.settle()
        return readings, open_ports, tuple(errors)

    def _combined_verdict(
        self,
        status_id: str,
        schedule: Schedule,
        ip: str,
        readings: DeviceReadings,
        open_ports: Sequence[int],
    ) -> Classification:
        """Weigh every answer of the device at once with the classifier's rules (what ``midprobe
        scan`` reports as its class), log the verdict, and make a CI of it for a device its
        classifiers left unclassified when it is sure enough (:data:`COMBINED_MIN_CONFIDENCE`)."""
        verdict = self.classifier.classify(readings.observations(ip, open_ports))
        self.status.log(status_id, ip, "classification", _verdict_line(verdict))
        if verdict.ci_class is None or not self.status.logged(status_id, ip, UNCLASSIFIED):
            return verdict
        if verdict.confidence < COMBINED_MIN_CONFIDENCE:
            self.status.log(status_id, ip, "classification", "combined verdict too unsure: no CI")
            return verdict
        if verdict.ci_class not in CI_CLASSES:
            self.status.log(status_id, ip, "classification", "combined verdict not a CMDB class: no CI")
            return verdict
        attributes = {"manufacturer": verdict.vendor} if verdict.vendor else {}
        if readings.nmap.os:
            attributes["os"] = readings.nmap.os
        if readings.sys_descr:
            attributes["description"] = readings.sys_descr[:1000]
        device = DiscoveredDevice(
            verdict.ci_class, device_name((readings.host_name,), ip), ip_address=ip, attributes=attributes
        )
        self._reconcile(status_id, schedule, ip, device, "from the combined verdict", phase="classification")
        return verdict

    def _plan_classification(
        self,
        status_id: str,
        schedule: Schedule,
        ip: str,
        dns_name: str,
        topics: list[str],
        open_ports: Sequence[int],
    ) -> int:
        """Plan the first of ``topics`` a MID may run (the rest wait for its answer), or with the
        schedule's ``classify = "all"`` every one at once; how many were planned."""
        if schedule.classify == "all":
            planned = 0
            for topic in topics:
                try:
                    agent = self.choose_mid(schedule, topic, [ip])
                except NoSuitableMid as error:
                    self.status.log(status_id, ip, "classification", f"{topic} skipped: {error}")
                    continue
                meta = {"remaining": [], "dns_name": dns_name, "open_ports": list(open_ports)}
                planned += 1 if self._plan(status_id, schedule, topic, ip, agent, [], meta=meta) else 0
            if not planned:
                self.status.log(status_id, ip, "classification", UNCLASSIFIED)
            return planned
        while topics:
            topic, rest = topics[0], topics[1:]
            try:
                agent = self.choose_mid(schedule, topic, [ip])
            except NoSuitableMid as error:
                self.status.log(status_id, ip, "classification", f"{topic} skipped: {error}")
                topics = rest
                continue
            meta = {"remaining": rest, "dns_name": dns_name, "open_ports": list(open_ports)}
            return 1 if self._plan(status_id, schedule, topic, ip, agent, [], meta=meta) else 0
        self.status.log(status_id, ip, "classification", UNCLASSIFIED)
        return 0


def _planned_device(meta: Mapping[str, object]) -> DiscoveredDevice:
    """The device a planned identification or exploration output carries in its meta."""
    data = meta.get("device")
    if not isinstance(data, dict):
        raise ConfigError("a planned output carries no device", field="meta")
    return device_from_json(data)


def _summary(findings: Findings) -> str:
    """``serial X, 3 interfaces (2 with MAC), 4 addresses, 1 neighbours`` (what the log says was found)."""
    macs = sum(1 for i in findings.interfaces if i.mac_address)
    addresses = {a for i in findings.interfaces for a in i.ip_addresses}
    parts = [f"serial {findings.serial_number}"] if findings.serial_number else ["no serial number"]
    parts.append(f"{len(findings.interfaces)} interfaces ({macs} with MAC), {len(addresses)} addresses")
    if findings.neighbours:
        parts.append(f"{len(findings.neighbours)} neighbours")
    parts += [
        f"{len(rows)} row{'s' if len(rows) != 1 else ''} of {table}"
        for table, rows in findings.tables.items()
        if rows
    ]
    return ", ".join(parts)


def _verdict_line(verdict: Classification) -> str:
    """``combined verdict: cmdb_ci_printer (0.9: port 9100 open (JetDirect), ...)`` for the device log."""
    if verdict.ci_class is None:
        return "combined verdict: no class (nothing the rules weigh points anywhere)"
    why = "; ".join(verdict.evidence[:3]) + ("; ..." if len(verdict.evidence) > 3 else "")
    return f"combined verdict: {verdict.ci_class} ({verdict.confidence:g}: {why})"


def _discovery_status_ok(mids: Sequence[MidServer], name: str) -> bool:
    """Discovery accepts MIDs that are Up or Degraded."""
    return any(mid.name == name and mid.status in DISCOVERY_STATUSES for mid in mids)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _selected_by(blocks: Sequence[str]) -> list[str]:
    """What a batch's MID is selected by: its first and last address, or the host it names."""
    if len(blocks) == 1 and not _is_address(blocks[0].partition("/")[0]):
        return [blocks[0]]
    return list(_bounds(blocks))


def _bounds(blocks: Sequence[str]) -> tuple[str, str]:
    first = ipaddress.ip_network(blocks[0], strict=False)
    last = ipaddress.ip_network(blocks[-1], strict=False)
    return str(first.network_address), str(
        last.broadcast_address if last.num_addresses > 1 else last.network_address
    )


def _schedule_from(data: Mapping[str, object]) -> Schedule:
    """The schedule a status record keeps (already checked when the discovery started)."""
    from pathlib import Path

    fields = {f.name for f in dataclasses.fields(Schedule)}
    values = {k: v for k, v in data.items() if k in fields}
    for key in ("ranges", "exclude", "behaviour", "credential_tags"):
        raw = values.get(key) or ()
        values[key] = tuple(raw) if isinstance(raw, list | tuple) else ()
    if values.get("credentials"):
        values["credentials"] = Path(str(values["credentials"]))
    return Schedule(**values)  # type: ignore[arg-type]


__all__ = ["APPLICATION", "NoSuitableMid", "Orchestrator", "Progress"]

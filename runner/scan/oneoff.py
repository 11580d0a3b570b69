"""``midprobe scan`` as a one-off discovery: the scan's targets as a schedule, run by the orchestrator.

The scan hands its targets to the discovery engine (``runner/discovery/orchestrator.py``) as a
schedule of its own (:func:`one_off_schedule`: its ports, engine, waits and rate, its enrichment
words, the protocols its credentials hold, classification only, nothing written to a CMDB, every
classifier at once) whose batches it feeds itself (``Orchestrator.add_batch``): with ``-Pn`` one
``Shazzam`` of every target, else a ``HostSweep`` per chunk (:data:`SWEEP_CHUNK` addresses, then
:data:`ROUTED_SWEEP_CHUNK` once a chunk needed no ARP), each chunk's live addresses port-scanned by
the orchestrator's sweep sensor. The next chunk is swept once the sweep before it was sensed
(routed: while that chunk is port-scanned), or on the scanner's own link once that chunk's port
scan is whole too (the ARP sweep and the port scan share the kernel's neighbour table).

Every request is an output the orchestrator plans and enqueues for the embedded agent, and every
answer is sensed by the orchestrator's sensors: the port scan's pages plan each host's
classification and enrichment, and once nothing more runs for a host, the orchestrator tells
(``on_device_done``) what its answers said, from which :func:`host_report` builds the scan's
report. The status record and its device log live in a private in-memory database (with
``--queue``, the queue's: ``midprobe discover status`` shows the scan).

The orchestrator's passes run on a thread of their own, one at a time, each as soon as the agent
stored an answer or a page. A pass's new outputs are enqueued by the next pass, which runs at once.
A port scan's next page waits until the one before it was sensed and fewer than ``queue_size``
hosts are still being probed (the agent's page gate), so a slow reader of the reports holds the
port scan back: no pass runs while the reader has not taken the reports of the last one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from itertools import islice
from typing import TYPE_CHECKING

from midprobe.capabilities.errors import MidprobeError
from midprobe.probes.classify import Classifier
from midprobe.probes.ports import format_ports
from midprobe.probes.targets import Target, TargetSpec, as_blocks
from midprobe.runner.discovery.orchestrator import DeviceDone, Orchestrator, Progress, Sensed
from midprobe.runner.discovery.probe_requests import ROUTED_SWEEP_CHUNK, SWEEP_CHUNK
from midprobe.runner.discovery.readers import read_sweep
from midprobe.runner.discovery.schedule import Schedule
from midprobe.runner.discovery.status import AddressCounts, StatusStore
from midprobe.runner.scan.pipeline import PAGE_WAIT_MS, ScanSettings, StageFailed
from midprobe.runner.scan.report import HostReport

if TYPE_CHECKING:
    from midprobe.probes.dns.resolver import ResolverConfig
    from midprobe.runner.agent.embedded import EmbeddedAgent
    from midprobe.runner.cmdb.database import Database

__all__ = ["ONE_OFF_NAME", "STAGE_NAMES", "OneOffScan", "ScanCounts", "host_report", "one_off_schedule"]

#: The one-off schedule's name (``midprobe discover list`` shows it with ``--queue``).
ONE_OFF_NAME = "midprobe scan"
#: Each topic's name in a report's error lines.
STAGE_NAMES: Mapping[str, str] = {
    "DNSNameResolver": "dns",
    "BannerSniff": "banner",
    "NmapServiceScan": "nmap -sV",
    "NmapOSScan": "nmap -O",
    "SSHClassify": "ssh",
    "SNMPClassify": "snmp",
}
#: Pages of a port scan's answer the agent may store ahead of the last one the orchestrator sensed.
PAGES_AHEAD = 1
#: The label of the one batch of a scan without host discovery.
ALL_TARGETS = "targets"


def one_off_schedule(
    settings: ScanSettings, *, targets_text: str, agent: str, behaviour: tuple[str, ...]
) -> Schedule:
    """The scan's options as a discovery schedule (its batches are fed by :class:`OneOffScan`):
    ``behaviour``, the protocols its credentials hold; ``agent``, the embedded agent's name."""
    return Schedule(
        name=ONE_OFF_NAME,
        ranges=(targets_text,),
        mid_choice="named",
        mid=agent.removeprefix("mid.server."),
        behaviour=behaviour,
        ports=format_ports(settings.ports),
        batch_size=ROUTED_SWEEP_CHUNK,  # a sweep's most addresses
        rate=settings.rate,
        engine=settings.engine,
        connect_wait=settings.connect_wait_ms,
        retries=settings.retries,
        host_discovery=settings.ping,
        depth="classification",
        cmdb=False,
        enrichment=tuple(sorted(settings.enrichment)),
        page_wait=PAGE_WAIT_MS,
        page_items=settings.page_hosts,
        classify="all",
        probe_timeout=settings.host_timeout,
        shazzam_readers=False,  # banners are BannerSniff's
        nmap_syn=settings.nmap_syn,
    )


def host_report(done: DeviceDone, classifier: Classifier, *, given_name: str | None = None) -> HostReport:
    """The scan's report of one device the orchestrator is done with (``given_name``: the name its
    address was given by on the command line)."""
    host = done.host
    if host is None:  # never: the scan's own passes sensed every port scan
        return HostReport(address=done.ip, errors=("the port scan's answer was not sensed here",))
    if not host.alive:
        return HostReport(
            address=done.ip,
            hostname=host.host_name or given_name,
            engine=done.engine,
            alive=False,
            incomplete=host.incomplete,
        )
    found = done.readings
    found.errors.extend(f"{STAGE_NAMES.get(topic, topic)}: {error}" for topic, error in done.errors)
    open_ports = tuple(sorted(host.open_ports))
    verdict = done.verdict or classifier.classify(found.observations(done.ip, open_ports))
    return HostReport(
        address=done.ip,
        hostname=found.host_name or host.host_name or given_name,
        open_tcp_ports=open_ports,
        refused_tcp_ports=tuple(sorted(host.refused_ports)),
        ci_class=verdict.ci_class,
        confidence=verdict.confidence,
        evidence=verdict.evidence,
        banners=found.banners,
        reader_scanners=found.reader_scanners,
        services=found.nmap.descriptions,
        credential_id=found.credential_id,
        os=found.os,
        sys_descr=found.sys_descr,
        sys_object_id=found.sys_object_id,
        nmap_os=found.nmap.os,
        engine=done.engine,
        errors=found.all_errors,
        incomplete=host.incomplete,
    )


@dataclass
class ScanCounts:
    """What the scan's progress shows, as the passes learn it."""

    addresses: AddressCounts = field(default_factory=lambda: AddressCounts(0, 0, 0, 0))
    engine: str = ""
    #: How host discovery found the live addresses (``arp,icmp``); empty: none ran.
    discovery: str = ""


class OneOffScan:
    """One scan's discovery: ``async for report in OneOffScan(...).reports()``, then :meth:`aclose`."""

    def __init__(
        self,
        agent: EmbeddedAgent,
        schedule: Schedule,
        targets: TargetSpec,
        addresses: int,
        database: Database,
        *,
        classifier: Classifier,
        resolver: ResolverConfig | None,
        queue_size: int,
        given_names: Mapping[str, str],
        on_counts: Callable[[ScanCounts], None],
    ) -> None:
        from midprobe.runner.cmdb.store import CmdbStore

        self._agent = agent
        self._schedule = schedule
        self._spec = targets
        self._targets: Iterator[Target] = iter(targets)
        self._addresses = addresses
        self._database = database
        self._status = StatusStore(database)
        self._classifier = classifier
        self._queue_size = queue_size
        self._given = given_names
        self._on_counts = on_counts
        self.counts = ScanCounts()
        self.orchestrator = Orchestrator(
            agent.queue,
            self._status,
            CmdbStore(database),
            on_device_done=self._device_done,
            on_sensed=self._sensed,
            classifier=classifier,
            resolver=resolver,
            # A private queue keeps only what is under way; a kept one (--queue) keeps everything.
            forget=agent.private_queue,
        )
        self._status_id = ""
        self._thread = ThreadPoolExecutor(1, "midprobe-orchestrator")
        self._running: Future[object] | None = None
        #: Reports the pass thread built, taken by the loop after the pass.
        self._reports: list[HostReport] = []
        #: Pages sensed per port-scan output; hosts that answered whose report the reader has not taken.
        self._pages: dict[str, int] = {}
        self._in_flight = 0
        self._failure: str | None = None
        #: Host discovery: sweeps not sensed yet, chunks whose port scan is not whole, on the link.
        self._sweeps = 0
        self._scanning: set[str] = set()
        self._on_link = False
        self._chunks = 0
        self._fed_all = False
        self._wake = asyncio.Event()
        self._sensed_more = asyncio.Event()
        agent.on_stored = lambda _sys_id: self._wake.set()
        agent.page_gate = self._page_gate

    # -- the pass thread -------------------------------------------------------------------------

    async def _in_thread(self, work: Callable[[], object]) -> object:
        future = self._thread.submit(work)
        self._running = future
        try:
            return await asyncio.wrap_future(future)
        finally:
            self._running = None

    def _sensed(self, sensed: Sensed) -> None:
        """A sensor is about to read this answer (the pass thread)."""
        output = sensed.output
        if output.topic == "Shazzam":
            if sensed.error:
                self._failure = sensed.error
            self._pages[output.sys_id] = sensed.pages
            engine = next((r.get("engine", "") for r in sensed.payload.results), "")
            self.counts.engine = engine or self.counts.engine
            # Each alive host listed is probed until it is reported.
            self._in_flight += sum(
                1
                for result in sensed.payload.results
                for host in result.iter("host")
                if host.get("alive") == "true"
            )
            if sensed.whole:
                self._scanning.discard(_label(output.record))
        elif output.topic == "HostSweep":
            self._sweeps -= 1
            label = _label(output.record)
            swept = None if sensed.error else read_sweep(sensed.payload)
            if swept is None or not swept.complete:
                self._scanning.add(label)  # the orchestrator port-scans every address of the chunk
                return
            methods = {*filter(None, self.counts.discovery.split(",")), *swept.methods_used}
            self.counts.discovery = ",".join(sorted(methods))
            self._on_link = self._on_link or "arp" in swept.methods_used
            if swept.alive or swept.incomplete:
                self._scanning.add(label)

    def _device_done(self, done: DeviceDone) -> None:
        """Nothing more runs for a device: its report (the pass thread)."""
        self._reports.append(host_report(done, self._classifier, given_name=self._given.get(done.ip)))

    def _advance(self) -> Progress:
        progress = self.orchestrator.advance(self._status_id)
        self.counts.addresses = self._status.addresses(self._status_id)
        return progress

    # -- the agent's page gate -------------------------------------------------------------------

    async def _page_gate(self, sys_id: str, number: int) -> None:
        """Before page ``number`` of a port scan: the page before it was sensed (at most
        :data:`PAGES_AHEAD` ahead) and fewer than ``queue_size`` hosts are being probed."""
        while not (
            self._pages.get(sys_id, 0) >= number - 1 - PAGES_AHEAD and self._in_flight < self._queue_size
        ):
            self._sensed_more.clear()
            await self._sensed_more.wait()

    # -- feeding the batches ---------------------------------------------------------------------

    def _feed(self) -> bool:
        """Add the batches that are due (the pass thread); whether any was added."""
        if self._fed_all:
            return False
        if not self._schedule.host_discovery:
            # One port scan of every address, its blocks computed from the spec's runs (a /8 is
            # one block, never 16 million addresses in memory).
            blocks = next(self._spec.batches(), ())
            if blocks:
                self.orchestrator.add_batch(self._status_id, "Shazzam", blocks, ALL_TARGETS)
            return self._close_feed(bool(blocks))
        if self._sweeps or (self._on_link and self._scanning):
            return False
        size = SWEEP_CHUNK if self._on_link or not self._chunks else ROUTED_SWEEP_CHUNK
        chunk = list(islice(self._targets, size))
        if not chunk:
            return self._close_feed(False)
        self._chunks += 1
        label = f"chunk {self._chunks}"
        for family in _families(chunk):  # one sweep per address family (ARP/ICMP, ICMPv6 after ND)
            self._sweeps += 1
            self.orchestrator.add_batch(self._status_id, "HostSweep", as_blocks(family), label)
        return True

    def _close_feed(self, added: bool) -> bool:
        self._fed_all = True
        self.orchestrator.close_feed(self._status_id)
        return added

    def _start(self) -> None:
        self._status_id = self.orchestrator.start(self._schedule, fed=True, addresses=self._addresses)

    def _pass(self) -> tuple[Progress, bool]:
        """One pass, then the batches now due: ``(progress, added)``."""
        progress = self._advance()
        added = self._feed() if not progress.done else False
        return progress, added

    # -- the loop ----------------------------------------------------------------------------------

    async def reports(self) -> AsyncGenerator[HostReport, None]:
        """Run the discovery to its end, yielding each host's report as it is done."""
        await self._in_thread(self._start)
        await self._in_thread(self._feed)
        again = True
        while True:
            self._wake.clear()  # before the pass: an answer stored during it wakes the next
            result = await self._in_thread(self._pass)
            assert isinstance(result, tuple)
            progress, added = result
            if progress.enqueued or added:
                self._agent.wake()
            self._sensed_more.set()
            self._on_counts(self.counts)
            if self._failure is not None:
                raise StageFailed(self._failure)
            reports, self._reports = self._reports, []
            for report in reports:
                if report.alive:  # taken by the reader: one host less in hand
                    self._in_flight -= 1
                    self._sensed_more.set()
                yield report
            if progress.done:
                return
            # What this pass planned is enqueued by the next: it runs at once.
            again = bool(progress.sensed or progress.enqueued or added)
            if not again:
                await self._agent.until(self._wake)

    async def aclose(self) -> None:
        """Cancel what is still waiting (the status says so, on a kept queue), wait for a pass under
        way, and let the thread go."""
        running = self._running
        if running is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.shield(asyncio.wrap_future(running))
        if self._status_id and not self._status.get(self._status_id).done:
            with contextlib.suppress(MidprobeError):
                await asyncio.wrap_future(
                    self._thread.submit(self.orchestrator.cancel, self._status_id, reason="the scan stopped")
                )
        self._thread.shutdown(wait=True)
        self._agent.page_gate = None
        self._agent.on_stored = None


def _label(record: Mapping[str, object]) -> str:
    meta = record.get("meta", {})
    return str(meta.get("label", "")) if isinstance(meta, dict) else ""


def _families(chunk: list[Target]) -> Iterator[list[IPv4Address | IPv6Address]]:
    for version in (4, 6):
        family = [target.address for target in chunk if target.address.version == version]
        if family:
            yield family

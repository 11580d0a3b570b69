"""The ``midprobe scan`` pipeline: port scan -> per-host enrichment -> classification, streamed per host.

Every stage is an ECC topic answered by an agent embedded in this process
(``runner/agent/embedded.py``: the real ``Agent`` and ``ProbeRunner`` on a private in-memory queue),
so the scan and ``midprobe agent`` share one code path for parameter validation, the capability
check, the safety policy, the deadline and the encoding, and what the scan reports is read back
from the ECC input payloads (``runner/discovery/readers.py``). The port scan is a ``Shazzam`` request
(GenericTCP only) whose answer comes in pages as the scan goes (``page_wait_ms``): the first once
the targets are resolved and checked and nothing is sent yet (the engine, the count of addresses:
:meth:`ScanPipeline.prepare`), then a page as soon as some hosts are decided, so each host is
enriched as soon as its ports are known; the agent goes on to a page only when this side has read
the one before (``EmbeddedAgent.ask_pages``), so a slow consumer pauses the scan instead of filling
the queue. With ``ping`` (host discovery), the targets are first swept in chunks by ``HostSweep``
requests and only each chunk's live addresses are port-scanned. Every host that answered gets its
enrichment requests at once (``BannerSniff``, ``DNSNameResolver``, ``NmapServiceScan``,
``NmapOSScan``, ``SSHClassify``, ``SNMPClassify``), with at most ``host_concurrency`` hosts in flight
(``probes/fanout.py``); a stage's error answer becomes a line in the report's ``errors`` while the
scan goes on. The classifier then decides the CMDB class, and the report is yielded as soon as the
host is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from itertools import islice
from typing import TYPE_CHECKING

from midprobe.capabilities.errors import MidprobeError
from midprobe.probes.classify import Classifier, default_classifier
from midprobe.probes.fanout import fan_out
from midprobe.probes.ports import format_ports
from midprobe.probes.registry import ProbeRegistry, default_registry
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.shazzam import SCANNER_NAME, lists_refused
from midprobe.probes.targets import Target, TargetSpec, as_blocks, parse_targets
from midprobe.runner.discovery import probe_requests as requests
from midprobe.runner.discovery import readers
from midprobe.runner.discovery.probe_requests import ROUTED_SWEEP_CHUNK, SWEEP_CHUNK, SWEEP_TIMEOUT_MS
from midprobe.runner.discovery.scanning import ScannedHost, classification_order
from midprobe.runner.discovery.verdict import DeviceReadings
from midprobe.runner.scan.report import HostReport

if TYPE_CHECKING:  # the later stages' modules are imported when a stage first runs
    from midprobe.probes.credentials import CredentialStore
    from midprobe.probes.dns.resolver import ResolverConfig
    from midprobe.runner.agent.embedded import Answer, AnswerPages, EmbeddedAgent

__all__ = ["PreparedScan", "ScanPipeline", "ScanSettings", "ScanStats"]

#: The embedded agent's MID name (``mid.server.midprobe-scan``) and its stages' ECC priority pool.
AGENT_NAME = "midprobe-scan"
#: Enrichment requests one host may have in flight at once (one per stage).
STAGES_PER_HOST = 6
#: The port scan's answer: a page at most this long (ms) after its first host, of at most
#: ``PAGE_HOSTS`` hosts (fewer when ``queue_size`` is smaller). A page's cost is mostly per host,
#: the rest per page: 256 a page scans a routed /18 about 5 % faster than 64, and the wait still
#: bounds how long a host waits for its page.
PAGE_WAIT_MS = 20
PAGE_HOSTS = 256
#: Why the Shazzam request of the whole targets stops after its first page with host discovery.
PER_CHUNK = "not run: host discovery port-scans the live addresses of each chunk on their own"
#: Each enrichment topic's name in a report's error lines.
STAGE_NAMES = {
    "DNSNameResolver": "dns",
    "BannerSniff": "banner",
    "NmapServiceScan": "nmap -sV",
    "NmapOSScan": "nmap -O",
}
NMAP_TOPICS = frozenset({"NmapServiceScan", "NmapOSScan"})


@dataclass(frozen=True)
class ScanSettings:
    """How one ``midprobe scan`` runs (validated by the CLI before it gets here)."""

    ports: tuple[int, ...]
    policy: TargetPolicy = field(default_factory=TargetPolicy.unrestricted)
    #: ``auto``, ``syn`` or ``connect``: the registry's Shazzam probe builds that engine.
    engine: str = "auto"
    #: The port scan's wait for one port's answer (ms), retries of an unanswered probe, probes per
    #: second (``None``: unlimited): Shazzam's ``connect_wait``, ``retries`` and ``rate``.
    connect_wait_ms: int = 1000
    retries: int = 2
    rate: float | None = None
    #: Read banners on the open ports (SSH identification, HTTP ``Server``, greetings).
    sniff_banners: bool = True
    #: Also ask UDP 161 for sysObjectID/sysDescr with the community ``public``.
    snmp_public: bool = False
    #: Where PTR lookups go; ``None`` = no name lookups.
    resolver: ResolverConfig | None = None
    nmap_services: bool = False
    nmap_os: bool = False
    #: nmap's ``-sS`` (raw sockets) instead of ``-sT`` for the service scan.
    nmap_syn: bool = False
    credentials: CredentialStore | None = None
    #: Hosts being enriched at once.
    host_concurrency: int = 32
    #: Seconds one host's enrichment may take (every stage is cut to it).
    host_timeout: float = 60.0
    #: Finished hosts waiting for enrichment before the port scan pauses.
    queue_size: int = 256
    #: Host discovery first (``HostSweep``): only the IPv4 addresses that answer are port-scanned
    #: (``midprobe scan`` sets it unless ``-Pn``).
    ping: bool = False
    classifier: Classifier = field(default_factory=default_classifier)
    #: The ECC queue the stages' requests and answers go through and stay in (``--queue``);
    #: ``None``: a private in-memory one, gone with the scan.
    queue_url: str | None = None

    def __post_init__(self) -> None:
        if not self.ports:
            raise ValueError("no ports to scan")
        if self.host_concurrency < 1 or self.queue_size < 1 or self.host_timeout <= 0:
            raise ValueError("host_concurrency, queue_size and host_timeout must be positive")

    @property
    def enrichment(self) -> frozenset[str]:
        """The scan's options as a schedule's ``enrichment`` words (``probe_requests.ENRICHMENT_TOPICS``)."""
        words = {
            "banners": self.sniff_banners,
            "snmp_public": self.snmp_public,
            "nmap_services": self.nmap_services,
            "nmap_os": self.nmap_os,
            "names": self.resolver is not None,
        }
        return frozenset(word for word, wanted in words.items() if wanted)

    @property
    def page_hosts(self) -> int:
        """Most hosts one page of the port scan's answer holds."""
        return max(1, min(PAGE_HOSTS, self.queue_size))

    def port_scan_parameters(self, targets: TargetSpec) -> dict[str, str]:
        """The ECC parameters of the port scan's Shazzam request: GenericTCP alone (the banners are
        the BannerSniff stage's), refused ports listed by Shazzam's own ``auto`` rule, the answer in
        pages as the scan goes."""
        parameters = requests.shazzam_parameters(
            format_ports(self.ports),
            engine=self.engine,
            connect_wait_ms=self.connect_wait_ms,
            retries=self.retries,
            rate=self.rate,
            exclude=targets.excludes_text,
            scanners=SCANNER_NAME,
            page_wait_ms=PAGE_WAIT_MS,
            page_items=self.page_hosts,
        )
        parameters["queue_size"] = str(self.queue_size)
        return parameters


@dataclass
class ScanStats:
    """Counters while the scan runs (read by the progress display and the summary)."""

    scanned: int = 0
    alive: int = 0
    #: Hosts whose ports were not all probed (the kernel refused the sends: ENOBUFS).
    incomplete: int = 0
    reported: int = 0
    engine: str = ""
    #: How host discovery found the live addresses (``arp,icmp``, ``tcp-connect``); empty: none ran.
    discovery: str = ""
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


@dataclass
class PreparedScan:
    """The port scan's Shazzam request, answered up to its first page: the targets resolved and
    checked against the policy, the engine chosen, nothing sent yet (reading on starts the scan)."""

    pages: AnswerPages
    #: The targets as given, and the address each of their host names resolved to.
    targets: TargetSpec
    names: dict[str, str]
    #: The engine that scans (``syn``, ``connect``) and the addresses in the targets.
    engine: str
    hosts_scanned: int
    #: Refused ports are listed (Shazzam's ``auto`` rule).
    lists_refused: bool
    #: The first page (no host, unless the probe could not stream and answered in one piece).
    first: readers.PortScanPage
    #: What stops the embedded agent once the scan is over (the scan's own request only).
    stack: contextlib.AsyncExitStack | None = None

    async def aclose(self, reason: str | None = None) -> None:
        """Stop the scan (harmless when it never started or already ended) and, for the scan's own
        request, the agent."""
        if reason is None:
            await self.pages.aclose()
        else:
            await self.pages.aclose(reason)
        stack, self.stack = self.stack, None
        if stack is not None:
            await stack.aclose()


@dataclass(frozen=True)
class _Scanned:
    """One host the port scan reported, with the engine that scanned it and the name it was given by."""

    host: ScannedHost
    engine: str
    given_name: str | None = None

    @property
    def address(self) -> str:
        return self.host.ip


def _protocols() -> tuple[str, str]:
    """``(PROTOCOL_SSH, PROTOCOL_SNMP)``, from the credentials package only a scan with credentials loads."""
    from midprobe.probes.credentials import PROTOCOL_SNMP, PROTOCOL_SSH

    return PROTOCOL_SSH, PROTOCOL_SNMP


class StageFailed(MidprobeError):
    """A stage's ECC answer carried an error (its text is the report's line)."""


class ScanPipeline:
    """One scan: ``async for report in ScanPipeline(settings).run(targets)``.

    Every stage, the port scan too, is an ECC request answered by an agent embedded in the scan,
    running ``registry``'s probes (the default registry: the agent's probe objects).
    """

    def __init__(
        self,
        settings: ScanSettings,
        *,
        on_progress: Callable[[ScanStats], None] | None = None,
        registry: ProbeRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.stats = ScanStats()
        self.on_progress = on_progress
        self.registry = registry if registry is not None else default_registry()
        # SNMP is asked only when the credentials hold an SNMP one (then ``public`` may follow it).
        store = settings.credentials
        snmp_configured = store is not None and any(
            credential.protocol == _protocols()[1] for credential in store.credentials
        )
        #: Discovery's behaviour for this scan: the protocols it classifies with (nmap -O is a
        #: stage of its own here, not the NmapHostScan classifier).
        self._behaviour: tuple[str, ...] = ()
        if store is not None:
            self._behaviour = ("ssh", "snmp") if snmp_configured else ("ssh",)
        # nmap was found working before the scan (``runner/scan/plan.py`` ``require_nmap``).
        nmap_wanted = settings.nmap_services or settings.nmap_os
        self._capabilities = frozenset({"Nmap"}) if nmap_wanted else frozenset()
        self._agent: EmbeddedAgent | None = None
        #: Holds the agent once started (by :meth:`prepare`), for the prepared scan's end to stop it.
        self._stack: contextlib.AsyncExitStack | None = None
        self._starting = asyncio.Lock()

    async def prepare(self, targets: TargetSpec) -> PreparedScan:
        """The port scan stage, ready and not started: the agent's Shazzam probe has resolved the
        host names, checked every address against the policy and chosen the engine. Nothing has
        been sent; every error of the targets is raised here (a :class:`StageFailed`)."""
        stack = self._stack = contextlib.AsyncExitStack()
        try:
            scan = await self._port_scan(targets)
        except BaseException:
            self._stack = self._agent = None
            await stack.aclose()
            raise
        scan.stack = stack
        return scan

    async def _port_scan(self, targets: TargetSpec) -> PreparedScan:
        """The Shazzam request of ``targets``, read up to its first page (the prepared scan)."""
        agent = await self._started_agent()
        pages = await agent.ask_pages(
            "Shazzam", targets.targets_text, self.settings.port_scan_parameters(targets)
        )
        try:
            first = await pages.next()
            if first is None or first.error:
                raise StageFailed("the port scan gave no answer" if first is None else str(first.error))
            head = readers.read_port_scan(first.payload)
        except BaseException:
            await pages.aclose()
            raise
        return PreparedScan(
            pages=pages,
            targets=targets,
            names=head.names,
            engine=head.engine,
            hosts_scanned=head.hosts_scanned,
            lists_refused=lists_refused(len(self.settings.ports)),
            first=head,
        )

    def _embedded_agent(self) -> EmbeddedAgent:
        """The agent that answers the scan's requests, sized so no host waits for another's stages."""
        from midprobe.runner.agent.embedded import EmbeddedAgent
        from midprobe.runner.agent.limits import ConcurrencyLimits, PoolSizes
        from midprobe.runner.agent.probe_runner import AgentIdentity, ProbeRunner

        settings = self.settings
        slots = settings.host_concurrency * STAGES_PER_HOST + 2  # +2: the port scan and a chunk's sweep
        runner = ProbeRunner(
            registry=self.registry,
            # On a shared queue (--queue) each scan answers under a name of its own.
            identity=AgentIdentity(
                name=AGENT_NAME if settings.queue_url is None else f"{AGENT_NAME}-{os.getpid()}",
                capabilities=self._capabilities,
            ),
            policy=settings.policy,
            limits=ConcurrencyLimits(
                pools=PoolSizes(1, 1, slots),
                default_per_topic=settings.host_concurrency + 1,
                per_target=STAGES_PER_HOST,
            ),
            # Every stage's request gives its own time-out (host_timeout, or a chunk's sweep time);
            # the port scan has none: its waits, retries and rate bound it.
            probe_timeout_seconds=math.inf,
            credentials=settings.credentials,
        )
        return EmbeddedAgent(runner, pools=PoolSizes(1, 1, slots), queue_url=settings.queue_url)

    async def _ask(
        self, topic: str, source: str, parameters: Mapping[str, str], timeout_seconds: float
    ) -> Answer:
        return await (await self._started_agent()).ask(
            topic, source, parameters, timeout_seconds=timeout_seconds
        )

    async def _started_agent(self) -> EmbeddedAgent:
        """The embedded agent, started by the first request (the port scan's, in :meth:`prepare`)."""
        assert self._stack is not None, "a stage ran before prepare()"
        async with self._starting:
            if self._agent is None:
                self._agent = await self._stack.enter_async_context(self._embedded_agent())
        return self._agent

    async def _answered(
        self, topic: str, source: str, parameters: Mapping[str, str], timeout_seconds: float
    ) -> Answer:
        """:meth:`_ask`, whose error answer raises :class:`StageFailed` with the answer's error."""
        answer = await self._ask(topic, source, parameters, timeout_seconds)
        if answer.error:
            raise StageFailed(answer.error)
        return answer

    async def run(self, targets: TargetSpec) -> AsyncGenerator[HostReport, None]:
        """Scan ``targets`` (expanded lazily) and yield a report per host that answered (or is
        incomplete: the kernel refused its sends), as it finishes."""
        scan = await self.prepare(targets)
        reports = self.reports(scan)
        try:
            async for report in reports:
                yield report
        finally:
            await reports.aclose()
            await scan.aclose()

    async def reports(self, scan: PreparedScan) -> AsyncGenerator[HostReport, None]:
        """Run the prepared port scan and yield a report per host that answered (or is incomplete:
        the kernel refused its sends), as it finishes."""
        settings = self.settings
        self.stats = ScanStats(engine=scan.engine)

        async def alive_hosts() -> AsyncIterator[_Scanned]:
            async for scanned in self._swept(scan) if settings.ping else self._port_scanned(scan):
                yield scanned

        async def enrich(scanned: _Scanned) -> HostReport:
            return await self.enrich(scanned, lists_refused=scan.lists_refused)

        try:
            reports = fan_out(alive_hosts(), enrich, settings.host_concurrency)
            try:
                async for report in reports:
                    self.stats.reported += 1
                    self._progress()
                    yield report
            finally:
                await reports.aclose()
        finally:
            await scan.aclose()  # stops the scan and the agent, whatever ended the loop
            self._agent = self._stack = None

    async def _port_scanned(
        self, scan: PreparedScan, names: Mapping[str, str | None] | None = None
    ) -> AsyncIterator[_Scanned]:
        """The hosts of ``scan``'s answer as its pages come (``names``: the name each address was
        given by, for host discovery's chunks of literal addresses); a failed scan raises its error."""
        done = 0
        read: readers.PortScanPage | None = scan.first
        while read is not None:
            self.stats.scanned += read.hosts_done - done
            # A host is listed when it answered or when its scan is incomplete (not known to be down).
            self.stats.alive += sum(host.alive for host in read.hosts)
            self.stats.incomplete += sum(host.incomplete is not None for host in read.hosts)
            done = read.hosts_done
            self._progress()
            for host in read.hosts:
                yield _Scanned(host, read.engine, (names or {}).get(host.ip))
            page = await scan.pages.next()
            if page is not None and page.error:
                raise StageFailed(page.error)
            read = None if page is None else readers.read_port_scan(page.payload)

    async def _swept(self, scan: PreparedScan) -> AsyncIterator[_Scanned]:
        """Host discovery before the port scan: the targets are swept in chunks (``HostSweep``: ARP,
        ICMP, or TCP connect without raw sockets; :data:`SWEEP_CHUNK` addresses, then
        :data:`ROUTED_SWEEP_CHUNK` once a chunk needed no ARP), then only the addresses that answered
        are port-scanned; the silent ones count as scanned."""
        # Never started: each chunk's live addresses get a scan of their own.
        await scan.pages.aclose(PER_CHUNK)
        resolved = scan.targets.resolved(lambda name: ip_address(scan.names[name]))
        targets = iter(resolved)

        def sweep_next(size: int = SWEEP_CHUNK) -> tuple[list[Target], asyncio.Task[list[Target]]] | None:
            chunk = list(islice(targets, size))
            return (chunk, asyncio.ensure_future(self._live(chunk))) if chunk else None

        # Routed, the next chunk is swept while this one's live addresses are port-scanned (one
        # sweep ahead). On the scanner's own link, one after the other: an ARP sweep fills the
        # kernel's neighbour table, which the port scan of the chunk before needs too.
        sweeping = sweep_next()
        try:
            while sweeping is not None:
                chunk, live = sweeping[0], await sweeping[1]
                on_link = "arp" in self.stats.discovery.split(",")
                sweeping = None if on_link else sweep_next(ROUTED_SWEEP_CHUNK)
                self.stats.scanned += len(chunk) - len(live)
                self._progress()
                if live:
                    async for scanned in self._chunk_scanned(live):
                        yield scanned
                if on_link:  # the next chunk's sweep only now that this one is port-scanned
                    sweeping = sweep_next()
        finally:
            if sweeping is not None:
                sweeping[1].cancel()
                with contextlib.suppress(asyncio.CancelledError, MidprobeError):
                    await sweeping[1]

    async def _chunk_scanned(self, live: list[Target]) -> AsyncIterator[_Scanned]:
        """Port-scan the live targets of a swept chunk (as CIDR blocks: one or a few, not 1,024 words)."""
        names = {str(target.address): target.host_name for target in live}
        port_scan = await self._port_scan(parse_targets(list(as_blocks([t.address for t in live]))))
        try:
            async for scanned in self._port_scanned(port_scan, names):
                yield scanned
        finally:
            await port_scan.aclose()

    async def _live(self, chunk: list[Target]) -> list[Target]:
        """The targets of ``chunk`` that answered the sweep, in the chunk's order: one sweep per address
        family (IPv4: ARP and ICMP; IPv6: ICMPv6 echo after neighbour discovery)."""
        alive: set[str] = set()
        for version in (4, 6):
            family = [target.address for target in chunk if target.address.version == version]
            if not family:
                continue
            answered = await self._swept_alive(family)
            if answered is None:  # some addresses were never decided: none is skipped on a guess
                return chunk
            alive |= answered
        return [t for t in chunk if str(t.address) in alive]

    async def _swept_alive(self, addresses: list[IPv4Address | IPv6Address]) -> set[str] | None:
        """The addresses (of one family) that answered a ``HostSweep``, and those it could not ask (the
        kernel refused: not known to be down, so they are port-scanned too); ``None`` when it was cut
        short."""
        settings = self.settings
        parameters = requests.sweep_parameters(
            # As CIDR blocks: a chunk of a range is one or a few, not 1,024 words to parse.
            as_blocks(addresses),
            wait_ms=settings.connect_wait_ms,
            retries=settings.retries,
            rate=settings.rate,
            max_addresses=max(SWEEP_CHUNK, len(addresses)),
        )
        answer = await self._answered("HostSweep", "", parameters, SWEEP_TIMEOUT_MS / 1000)
        result = readers.read_sweep(answer.payload)
        if not result.complete:
            return None
        used = [*self.stats.discovery.split(","), *result.methods_used]
        self.stats.discovery = ",".join(sorted({method for method in used if method}))
        return set(result.alive | result.incomplete)

    def _progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.stats)

    # --- one host ----------------------------------------------------------------------------

    async def enrich(self, scanned: _Scanned, *, lists_refused: bool) -> HostReport:
        """Run every stage that applies to this host at once, then classify it (``lists_refused``:
        the port scan listed refused ports). An incomplete host nothing answered gets no stage: its
        report says why it is incomplete."""
        settings = self.settings
        address = scanned.address
        if not scanned.host.alive:
            return HostReport(
                address=address,
                hostname=scanned.host.host_name or scanned.given_name,
                engine=scanned.engine,
                alive=False,
                incomplete=scanned.host.incomplete,
            )
        found = DeviceReadings()
        open_ports = tuple(sorted(scanned.host.open_ports))
        refused_ports = tuple(sorted(scanned.host.refused_ports))
        # The enrichment requests discovery would send for this host with the same words.
        enrichment = requests.enrichment_requests(
            scanned.host,
            settings.enrichment,
            resolver=settings.resolver,
            nmap_timeout_seconds=settings.host_timeout,
            nmap_syn=settings.nmap_syn,
        )
        stages: list[tuple[str, Awaitable[None]]] = [
            (STAGE_NAMES[topic], self._enriched(topic, address, parameters, found))
            for topic, parameters in enrichment.items()
        ]
        # The classifiers discovery would try on this host (its ports, the protocols with
        # credentials), all at once here, each where a credential may log in to the address.
        classifiers, _notes = classification_order(scanned.host, self._behaviour, nmap_available=False)
        store = settings.credentials
        ssh, snmp = _protocols() if store is not None else ("", "")
        if store is not None and "SSHClassify" in classifiers and store.candidates(address, ssh):
            stages.append(("ssh", self._ssh_facts(address, found)))
        if store is not None and "SNMPClassify" in classifiers and store.candidates(address, snmp):
            stages.append(("snmp", self._snmp_facts(address, found)))
        await asyncio.gather(*(self._guarded(name, stage, found) for name, stage in stages))
        found.settle()
        verdict = settings.classifier.classify(found.observations(address, open_ports))
        return HostReport(
            address=address,
            hostname=found.host_name or scanned.host.host_name or scanned.given_name,
            open_tcp_ports=open_ports,
            refused_tcp_ports=refused_ports if lists_refused else (),
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
            engine=scanned.engine,
            errors=found.all_errors,
            incomplete=scanned.host.incomplete,
        )

    async def _guarded(self, stage: str, work: Awaitable[None], found: DeviceReadings) -> None:
        """Run one stage; its failure becomes a line in the report, never the end of the scan."""
        try:
            async with asyncio.timeout(self.settings.host_timeout + 5.0):
                await work
        except TimeoutError:
            found.errors.append(f"{stage}: gave up after {self.settings.host_timeout:g} s")
        except MidprobeError as error:
            found.errors.append(f"{stage}: {error}")
        except Exception as error:  # a library's surprise on one host must not end a /16 scan
            found.errors.append(f"{stage}: {type(error).__name__}: {error}")

    async def _enriched(
        self, topic: str, address: str, parameters: dict[str, str], found: DeviceReadings
    ) -> None:
        """One enrichment request (``BannerSniff``, ``DNSNameResolver``, nmap ``-sV`` or ``-O``: each
        nmap its own run, so a slow ``-sV`` does not cost the OS guess), its answer read into ``found``."""
        timeout = self.settings.host_timeout
        if topic in NMAP_TOPICS:
            timeout += 5.0  # nmap is cut at the host's time-out itself: its answer still comes
        answer = await self._answered(topic, address, parameters, timeout)
        found.read(topic, answer.payload)

    async def _ssh_facts(self, address: str, found: DeviceReadings) -> None:
        """``SSHClassify`` with the scan's shorter timeouts."""
        parameters = requests.ssh_classify_parameters()
        answer = await self._answered("SSHClassify", address, parameters, self.settings.host_timeout)
        found.read("SSHClassify", answer.payload)

    async def _snmp_facts(self, address: str, found: DeviceReadings) -> None:
        """``SNMPClassify`` with a short wait: a host without an agent costs about 2 s."""
        parameters = requests.snmp_classify_parameters()
        answer = await self._ask("SNMPClassify", address, parameters, self.settings.host_timeout)
        if answer.error:
            if readers.snmp_agent_absent(answer.error):
                return  # no agent there (or none that takes our communities): nothing to report
            raise StageFailed(answer.error)
        found.read("SNMPClassify", answer.payload)

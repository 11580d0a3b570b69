"""The ``midprobe scan`` pipeline: the targets checked, then scanned as a one-off discovery, reported per host.

The scan runs on an agent embedded in this process (``runner/agent/embedded.py``: the real
``Agent`` and ``ProbeRunner`` on a private in-memory queue, or ``--queue``'s), so the scan and
``midprobe agent`` share one code path for parameter validation, the capability check, the safety
policy, the deadline and the encoding. :meth:`ScanPipeline.prepare` asks it for the targets'
port scan (``Shazzam``) and reads the first page of its answer, given once the targets are
resolved and checked and before anything is sent (the engine, the count of addresses, the address
of each host name); every error of the targets is raised there. :meth:`ScanPipeline.reports` then
stops that request unsent and hands the resolved targets to the discovery engine as a one-off
schedule (``runner/scan/oneoff.py``): the orchestrator port-scans them (with ``ping``, after a
``HostSweep`` of each chunk), plans each host's classification and enrichment requests
(``BannerSniff``, ``DNSNameResolver``, ``NmapServiceScan``, ``NmapOSScan``, ``SSHClassify``,
``SNMPClassify``) as its sensors read the port scan's pages, and tells when a host is done, with
what its answers said; its report is yielded then. A request's error answer becomes a line in the
report's ``errors`` while the scan goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import TYPE_CHECKING

from midprobe.capabilities.errors import MidprobeError
from midprobe.probes.classify import Classifier, default_classifier
from midprobe.probes.ports import format_ports
from midprobe.probes.registry import ProbeRegistry, default_registry
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.shazzam import SCANNER_NAME, lists_refused
from midprobe.probes.targets import TargetSpec
from midprobe.runner.discovery import probe_requests as requests
from midprobe.runner.discovery import readers
from midprobe.runner.scan.report import HostReport

if TYPE_CHECKING:  # the discovery engine's modules are imported when the scan starts
    from midprobe.probes.credentials import CredentialStore
    from midprobe.probes.dns.resolver import ResolverConfig
    from midprobe.runner.agent.embedded import AnswerPages, EmbeddedAgent
    from midprobe.runner.cmdb.database import Database

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
#: Why the prepared Shazzam request of the targets stops after its first page.
ONE_OFF = "not run: the scan's one-off discovery port-scans the targets"


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

    async def _started_agent(self) -> EmbeddedAgent:
        """The embedded agent, started by the first request (the port scan's, in :meth:`prepare`)."""
        assert self._stack is not None, "a stage ran before prepare()"
        async with self._starting:
            if self._agent is None:
                self._agent = await self._stack.enter_async_context(self._embedded_agent())
        return self._agent

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
        """Run the prepared scan as a one-off discovery (``runner/scan/oneoff.py``) and yield a report
        per host that answered (or is incomplete: the kernel refused its sends), as it finishes."""
        from midprobe.runner.scan.oneoff import OneOffScan, ScanCounts, one_off_schedule

        settings = self.settings
        self.stats = ScanStats(engine=scan.engine)
        # The prepared request only checked the targets: the discovery port-scans them.
        await scan.pages.aclose(ONE_OFF)
        agent = await self._started_agent()
        given = {address: name for name, address in scan.names.items()}
        resolved = scan.targets.resolved(lambda name: ip_address(scan.names[name]))
        schedule = one_off_schedule(
            settings, targets_text=str(scan.targets), agent=agent.name, behaviour=self._behaviour
        )

        def counted(counts: ScanCounts) -> None:
            stats = self.stats
            stats.scanned, stats.alive = counts.addresses.decided, counts.addresses.alive
            stats.incomplete = counts.addresses.incomplete
            stats.engine = counts.engine or stats.engine
            stats.discovery = counts.discovery
            self._progress()

        database = self._database()
        run = OneOffScan(
            agent,
            schedule,
            resolved,
            scan.hosts_scanned,
            database,
            classifier=settings.classifier,
            resolver=settings.resolver,
            queue_size=settings.queue_size,
            given_names=given,
            on_counts=counted,
        )
        try:
            reports = run.reports()
            try:
                async for report in reports:
                    self.stats.reported += 1
                    self._progress()
                    yield report
            finally:
                await reports.aclose()
        finally:
            try:
                await run.aclose()
            finally:
                await scan.aclose()  # stops the agent, whatever ended the loop
                self._agent = self._stack = None
                database.close()

    def _database(self) -> Database:
        """Where the one-off discovery's status lives: the kept queue's database, else a private one."""
        from midprobe.runner.cmdb.database import SqliteDatabase, open_database

        if self.settings.queue_url is None:
            return SqliteDatabase(":memory:")
        return open_database(self.settings.queue_url)

    def _progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.stats)

"""The ``midprobe scan`` pipeline: port scan -> per-host enrichment -> classification, streamed per host.

Every stage is a probe of the registry (the agent's probe objects), given its typed Params, so the
scan and the agent share one code path for validation, the safety policy and encoding. The port
scan is the registry's ``Shazzam`` probe, GenericTCP only, through its streaming entry point
(``ShazzamProbe.scan``: names resolved and every address checked against the policy before anything
is sent, then the one bounded engine-to-asyncio bridge, so a slow consumer pauses the scan instead of
filling memory). With ``ping`` (host discovery), the targets are first swept in chunks by the
``HostSweep`` probe and only each chunk's live addresses are port-scanned. Every host that answered gets its enrichment stages at once, with at most
``host_concurrency`` hosts in flight (``probes/fanout.py``); each stage runs its probe
(``BannerSniff``, ``DNSNameResolver``, ``NmapServiceScan``, ``NmapOSScan``, ``SSHClassify``,
``SNMPClassify``) through ``runner/scan/stages.py``, and a stage's failure becomes a line in the
report's ``errors`` while the scan goes on. The classifier then decides the CMDB class, and the
report is yielded as soon as the host is done.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from itertools import islice

from midprobe.capabilities.errors import MidprobeError
from midprobe.probes.banner import BannerParams, BannerResult
from midprobe.probes.base import ProbeContext
from midprobe.probes.classify import Classifier, NmapOsClass, Observations, default_classifier
from midprobe.probes.credentials import PROTOCOL_SNMP, PROTOCOL_SSH, CredentialStore
from midprobe.probes.dns.name_resolver import NameResolverParams, NameResolverResult
from midprobe.probes.dns.params import ResolverParams
from midprobe.probes.dns.resolver import ResolverConfig
from midprobe.probes.fanout import fan_out
from midprobe.probes.nmap.common import NmapResult
from midprobe.probes.nmap.options import NmapTargets, PortList
from midprobe.probes.nmap.os_scan import NmapOSScanParams
from midprobe.probes.nmap.parse import NmapHost
from midprobe.probes.nmap.service_scan import NmapServiceScanParams
from midprobe.probes.registry import ProbeRegistry, default_registry
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.shazzam import SCANNER_NAME, PortScan, ShazzamParams, ShazzamScanner, reading_scanners
from midprobe.probes.snmp.classify import SnmpClassifyParams, SnmpClassifyResult
from midprobe.probes.snmp.errors import SnmpTimeout, SnmpUnreachable
from midprobe.probes.snmp.facts import capability_evidence
from midprobe.probes.snmp.query import ConnectionParams
from midprobe.probes.snmp.values import format_oid
from midprobe.probes.ssh.classify import SSHClassifyResult
from midprobe.probes.sweep.host_sweep import DEFAULT_RATE as SWEEP_RATE
from midprobe.probes.sweep.host_sweep import SweepParams, SweepResult
from midprobe.probes.targets import Target, TargetSpec, parse_targets
from midprobe.probes.tcpscan.common import HostScan
from midprobe.runner.scan.report import HostReport
from midprobe.runner.scan.stages import run_probe, start_port_scan

__all__ = ["ScanPipeline", "ScanSettings", "ScanStats"]

#: Addresses swept at a time before their live ones are port-scanned (a /22): the first live host is
#: reported after one chunk's sweep, and a /16 is never held in memory.
SWEEP_CHUNK = 1024
#: The longest one chunk's sweep may take (ms; ``HostSweep``'s own ceiling).
SWEEP_TIMEOUT_MS = 3_600_000
#: SSH timeouts for the classify run of a scan (ms): a scan should not wait minutes on one host.
SSH_CONNECT_TIMEOUT_MS = 5_000
SSH_COMMAND_TIMEOUT_MS = 20_000
#: SNMP per-attempt wait (ms) and retries in a scan: a host without an agent costs about 2 s.
SNMP_TIMEOUT_MS = 1_000
SNMP_RETRIES = 1
#: The OS facts from SSH that the report carries, by report key.
OS_FACTS = (
    ("name", "os_name"),
    ("version", "os_version"),
    ("id", "os_id"),
    ("pretty_name", "os_pretty_name"),
    ("kernel", "kernel_name"),
    ("kernel_release", "kernel_release"),
    ("machine", "machine"),
    ("hostname", "hostname"),
)


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

    def __post_init__(self) -> None:
        if not self.ports:
            raise ValueError("no ports to scan")
        if self.host_concurrency < 1 or self.queue_size < 1 or self.host_timeout <= 0:
            raise ValueError("host_concurrency, queue_size and host_timeout must be positive")

    def port_scan_params(self, targets: TargetSpec) -> ShazzamParams:
        """The Shazzam request of the port scan stage: GenericTCP alone (the banners are the
        BannerSniff stage's), refused ports listed by Shazzam's own ``auto`` rule."""
        return ShazzamParams(
            source=str(targets),
            targets=targets,
            ports=self.ports,
            connect_wait_ms=self.connect_wait_ms,
            engine=self.engine,
            retries=self.retries,
            rate=self.rate,
            scanners=(SCANNER_NAME,),
            queue_size=self.queue_size,
        )


@dataclass
class ScanStats:
    """Counters while the scan runs (read by the progress display and the summary)."""

    scanned: int = 0
    alive: int = 0
    reported: int = 0
    engine: str = ""
    #: How host discovery found the live addresses (``arp,icmp``, ``tcp-connect``); empty: none ran.
    discovery: str = ""
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


@dataclass
class _Findings:
    """What the stages learned about one host (each stage fills its own fields)."""

    host_name: str | None = None
    banners: dict[int, str] = field(default_factory=dict)
    #: What BannerSniff read (its SNMP tap's sysObjectID/sysDescr stand in when no credentialed SNMP answers).
    banner_result: BannerResult | None = None
    services: dict[int, str] = field(default_factory=dict)
    nmap_services: dict[int, str] = field(default_factory=dict)
    nmap_os_classes: list[NmapOsClass] = field(default_factory=list)
    nmap_os: str | None = None
    uname: str | None = None
    os: dict[str, str] | None = None
    sys_descr: str | None = None
    sys_object_id: str | None = None
    credential_id: dict[str, str] = field(default_factory=dict)
    #: Shazzam scanner elements for what the banner readers found (BannerTCP, HTTP/HTTPS, SNMP).
    reader_scanners: tuple[ShazzamScanner, ...] = ()
    #: SNMP capabilities (routing, switching, printing) and what showed each, for the classifier.
    snmp_capabilities: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class ScanPipeline:
    """One scan: ``async for report in ScanPipeline(settings).run(targets)``.

    Every stage runs a probe of ``registry`` (the default one: the agent's probe objects): the port
    scan its ``Shazzam`` probe (:func:`~midprobe.runner.scan.stages.start_port_scan`), the others
    through :func:`~midprobe.runner.scan.stages.run_probe`.
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
        self._snmp_configured = store is not None and any(
            credential.protocol == PROTOCOL_SNMP for credential in store.credentials
        )
        # nmap was found working before the scan (``runner/scan/plan.py`` ``require_nmap``).
        nmap_wanted = settings.nmap_services or settings.nmap_os
        self._capabilities = frozenset({"Nmap"}) if nmap_wanted else frozenset()

    async def prepare(self, targets: TargetSpec) -> PortScan:
        """The port scan stage, ready and not started: the registry's Shazzam probe has resolved the
        host names, checked every address against the policy and chosen the engine. Nothing has
        been sent; every error of the targets is raised here."""
        settings = self.settings
        # The port scan has no deadline of its own: its waits and retries bound it (each host's
        # enrichment has ``host_timeout``).
        context = ProbeContext(
            agent_name="midprobe scan",
            deadline=math.inf,
            policy=settings.policy,
            capabilities=self._capabilities,
        )
        return await start_port_scan(self.registry, settings.port_scan_params(targets), context)

    async def run(self, targets: TargetSpec) -> AsyncGenerator[HostReport, None]:
        """Scan ``targets`` (expanded lazily) and yield a report per host that answered, as it finishes."""
        scan = await self.prepare(targets)
        reports = self.reports(scan)
        try:
            async for report in reports:
                yield report
        finally:
            await reports.aclose()

    async def reports(self, scan: PortScan) -> AsyncGenerator[HostReport, None]:
        """Run the prepared port scan and yield a report per host that answered, as it finishes."""
        settings = self.settings
        self.stats = ScanStats(engine=scan.engine)

        async def alive_hosts() -> AsyncIterator[HostScan]:
            async for scanned in self._swept(scan) if settings.ping else scan:
                self.stats.scanned += 1
                self.stats.alive += scanned.alive
                self._progress()
                if scanned.alive:
                    yield scanned

        async def enrich(scanned: HostScan) -> HostReport:
            return await self.enrich(scanned, scan.params)

        reports = fan_out(alive_hosts(), enrich, settings.host_concurrency)
        try:
            async for report in reports:
                self.stats.reported += 1
                self._progress()
                yield report
        finally:
            await reports.aclose()
            await scan.aclose()  # stops the engine thread, whatever ended the loop

    async def _swept(self, scan: PortScan) -> AsyncIterator[HostScan]:
        """Host discovery before the port scan: each :data:`SWEEP_CHUNK` addresses of the targets are
        swept (``HostSweep``: ARP, ICMP, or TCP connect without raw sockets), then only those that
        answered are port-scanned; the silent ones count as scanned. IPv6 addresses (no ARP or ICMP
        sweep) are port-scanned as they are."""
        await scan.aclose()  # never started: each chunk's live addresses get a scan of their own
        context = ProbeContext(agent_name="midprobe scan", deadline=math.inf, policy=self.settings.policy)
        targets = iter(scan.targets)
        while chunk := list(islice(targets, SWEEP_CHUNK)):
            live = await self._live(chunk, context)
            self.stats.scanned += len(chunk) - len(live)
            self._progress()
            if not live:
                continue
            names = {str(target.address): target.host_name for target in live}
            params = replace(scan.params, targets=parse_targets(list(names)), source=scan.params.source)
            port_scan = await start_port_scan(self.registry, params, context)
            try:
                async for scanned in port_scan:
                    name = names.get(str(scanned.address))
                    yield replace(scanned, host_name=name) if name and not scanned.host_name else scanned
            finally:
                await port_scan.aclose()

    async def _live(self, chunk: list[Target], context: ProbeContext) -> list[Target]:
        """The targets of ``chunk`` that answered the sweep (IPv6 ones all), in the chunk's order."""
        ipv4 = [target for target in chunk if target.address.version == 4]
        if not ipv4:
            return chunk
        settings = self.settings
        params = SweepParams(
            targets=parse_targets([str(target.address) for target in ipv4]),
            wait_ms=settings.connect_wait_ms,
            retries=settings.retries,
            rate=SWEEP_RATE if settings.rate is None else max(1, round(settings.rate)),
            # Its waits, retries and rate bound it; the cap only keeps a slow -T0 sweep from being cut.
            sweep_timeout_ms=SWEEP_TIMEOUT_MS,
            max_addresses=SWEEP_CHUNK,
        )
        result = await run_probe(self.registry, "HostSweep", params, context, SweepResult)
        if not result.complete:  # some addresses were never decided: none is skipped on a guess
            return chunk
        used = [*self.stats.discovery.split(","), *result.methods_used]
        self.stats.discovery = ",".join(sorted({method for method in used if method}))
        answered = {host.address for host in result.alive}
        return [t for t in chunk if t.address.version != 4 or str(t.address) in answered]

    def _progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.stats)

    # --- one host ----------------------------------------------------------------------------

    async def enrich(self, scanned: HostScan, scan_request: ShazzamParams) -> HostReport:
        """Run every stage that applies to this host at once, then classify it (``scan_request``, the
        port scan's Shazzam request, says whether refused ports are listed)."""
        settings = self.settings
        address = str(scanned.address)
        found = _Findings()
        context = ProbeContext(
            agent_name="midprobe scan",
            deadline=time.monotonic() + settings.host_timeout,
            policy=settings.policy,
            capabilities=self._capabilities,
            credentials=settings.credentials,
        )
        open_ports = scanned.open_ports
        stages: list[tuple[str, Awaitable[None]]] = []
        if settings.resolver is not None:
            stages.append(("dns", self._host_name(address, settings.resolver, context, found)))
        if (settings.sniff_banners and open_ports) or settings.snmp_public:
            stages.append(("banner", self._banners(scanned, context, found)))
        if open_ports and settings.nmap_services:
            stages.append(("nmap -sV", self._nmap_services(scanned, context, found)))
        if open_ports and settings.nmap_os:
            stages.append(("nmap -O", self._nmap_os(scanned, context, found)))
        store = settings.credentials
        if store is not None and 22 in open_ports and store.candidates(address, PROTOCOL_SSH):
            stages.append(("ssh", self._ssh_facts(address, context, found)))
        if store is not None and self._snmp_configured and store.candidates(address, PROTOCOL_SNMP):
            stages.append(("snmp", self._snmp_facts(address, context, found)))
        await asyncio.gather(*(self._guarded(name, stage, found) for name, stage in stages))
        public_snmp = found.banner_result.snmp if found.banner_result is not None else None
        if found.sys_object_id is None and public_snmp is not None:
            # The credential-less tap (community public) answered and no credentialed SNMP did.
            found.sys_object_id = public_snmp.sys_object_id
            found.sys_descr = public_snmp.sys_descr

        verdict = settings.classifier.classify(
            Observations(
                address=address,
                open_tcp_ports=frozenset(open_ports),
                banners=found.banners,
                uname=found.uname,
                sys_object_id=found.sys_object_id,
                sys_descr=found.sys_descr,
                nmap_os_classes=tuple(found.nmap_os_classes),
                nmap_services=found.nmap_services,
                snmp_capabilities=found.snmp_capabilities,
                logged_in=frozenset(found.credential_id),
            )
        )
        return HostReport(
            address=address,
            hostname=found.host_name or scanned.host_name,
            open_tcp_ports=open_ports,
            refused_tcp_ports=scanned.refused_ports if scan_request.lists_refused else (),
            ci_class=verdict.ci_class,
            confidence=verdict.confidence,
            evidence=verdict.evidence,
            banners=found.banners,
            reader_scanners=found.reader_scanners,
            services=found.services,
            credential_id=found.credential_id,
            os=found.os,
            sys_descr=found.sys_descr,
            sys_object_id=found.sys_object_id,
            nmap_os=found.nmap_os,
            engine=scanned.engine,
            errors=tuple(found.errors),
        )

    async def _guarded(self, stage: str, work: Awaitable[None], found: _Findings) -> None:
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

    async def _host_name(
        self, address: str, resolver: ResolverConfig, context: ProbeContext, found: _Findings
    ) -> None:
        """``DNSNameResolver`` (PTR) for the address, asking the scan's servers."""
        params = NameResolverParams(
            ip_addresses=(address,),
            resolver=ResolverParams(
                dns_servers=resolver.servers,
                port=resolver.port,
                timeout_ms=round(resolver.timeout * 1000),
                retries=resolver.retries,
                concurrency=resolver.concurrency,
            ),
        )
        result = await run_probe(self.registry, "DNSNameResolver", params, context, NameResolverResult)
        (answer,) = result.addresses
        if answer.name:
            found.host_name = answer.name

    async def _banners(self, scanned: HostScan, context: ProbeContext, found: _Findings) -> None:
        """``BannerSniff`` on the open ports (and the SNMP tap, with ``--snmp-public``)."""
        settings = self.settings
        params = BannerParams(
            host=str(scanned.address),
            ports=scanned.open_ports if settings.sniff_banners else (),
            snmp_public=settings.snmp_public,
        )
        result = await run_probe(self.registry, "BannerSniff", params, context, BannerResult)
        found.banners.update(result.banners())
        found.banner_result = result
        found.reader_scanners = reading_scanners(result.ports)

    async def _nmap_services(self, scanned: HostScan, context: ProbeContext, found: _Findings) -> None:
        """``NmapServiceScan`` (``-sV``) on the open ports (its own run, so a slow one does not cost
        the OS guess)."""
        params = NmapServiceScanParams(
            targets=_nmap_targets(scanned),
            ports=_port_list(scanned.open_ports),
            technique="-sS" if self.settings.nmap_syn else "-sT",
            version_intensity=None,
            scripts=(),
            resolve_names=False,
            timing=4,
            timeout_s=self.settings.host_timeout,
        )
        result = await run_probe(self.registry, "NmapServiceScan", params, context, NmapResult)
        for run in result.runs:
            for host in run.scan.hosts:
                _read_nmap_services(host, found)
        if not any(run.scan.hosts for run in result.runs):
            found.errors.append("nmap -sV: nmap reported nothing for the host")

    async def _nmap_os(self, scanned: HostScan, context: ProbeContext, found: _Findings) -> None:
        """``NmapOSScan`` (``-O``); most accurate with one open and one closed port to compare."""
        params = NmapOSScanParams(
            targets=_nmap_targets(scanned),
            ports=_port_list((*scanned.open_ports, *scanned.refused_ports[:1])),
            guess=True,
            limit=False,
            max_tries=None,
            resolve_names=False,
            timing=4,
            timeout_s=self.settings.host_timeout,
        )
        result = await run_probe(self.registry, "NmapOSScan", params, context, NmapResult)
        for run in result.runs:
            for host in run.scan.hosts:
                _read_nmap_os(host, found)
        if not any(run.scan.hosts for run in result.runs):
            found.errors.append("nmap -O: nmap reported nothing for the host")

    async def _ssh_facts(self, address: str, context: ProbeContext, found: _Findings) -> None:
        """``SSHClassify`` with the scan's shorter timeouts."""
        probe = self.registry.get("SSHClassify")
        params = probe.parse_params(
            address,
            {
                "connect_timeout_ms": str(SSH_CONNECT_TIMEOUT_MS),
                "command_timeout_ms": str(SSH_COMMAND_TIMEOUT_MS),
                "channel_timeout_ms": str(SSH_COMMAND_TIMEOUT_MS),
            },
        )
        result = await run_probe(self.registry, "SSHClassify", params, context, SSHClassifyResult)
        found.credential_id["ssh"] = result.connection.credential_id
        uname = next((output for output in result.outputs if output.command == "uname -a"), None)
        if uname is not None and uname.exit_status == 0 and uname.stdout.strip():
            found.uname = uname.stdout.strip()
        facts = {key: getattr(result.facts, name) for key, name in OS_FACTS}
        found.os = {key: str(value) for key, value in facts.items() if value is not None}

    async def _snmp_facts(self, address: str, context: ProbeContext, found: _Findings) -> None:
        """``SNMPClassify`` with a short wait: a host without an agent costs about 2 s."""
        params = SnmpClassifyParams(
            ConnectionParams(source=address, timeout_ms=SNMP_TIMEOUT_MS, retries=SNMP_RETRIES)
        )
        try:
            result = await run_probe(self.registry, "SNMPClassify", params, context, SnmpClassifyResult)
        except (SnmpTimeout, SnmpUnreachable):
            return  # no agent there (or none that takes our communities): nothing to report
        if result.credential_id:
            found.credential_id["snmp"] = result.credential_id
        if result.facts.sys_descr:
            found.sys_descr = result.facts.sys_descr
        if result.facts.sys_object_id is not None:
            found.sys_object_id = format_oid(result.facts.sys_object_id, leading_dot=True)
        found.snmp_capabilities = dict(capability_evidence(result.facts))


def _nmap_targets(scanned: HostScan) -> NmapTargets:
    return NmapTargets((ipaddress.ip_network(scanned.address),))


def _port_list(ports: Iterable[int]) -> PortList:
    return PortList(tuple((port, port) for port in sorted(set(ports))))


def _nmap_cut_short(stage: str, host: NmapHost, found: _Findings) -> bool:
    """Whether nmap gave up on ``host`` (its ``--host-timeout``), said in the report's ``errors``;
    what it found before is still read. ``False`` for a host nmap found down (nothing to read)."""
    if host.timed_out:
        found.errors.append(f"{stage}: nmap gave up on the host at its time-out: results incomplete")
    return host.is_up or host.timed_out


def _read_nmap_services(host: NmapHost, found: _Findings) -> None:
    """What nmap's version detection identified (guesses, marked ``?`` by nmap, are left out)."""
    if not _nmap_cut_short("nmap -sV", host, found):
        return
    for port in host.open_ports:
        service = port.service
        if service is None or not service.identified:
            continue
        found.nmap_services[port.portid] = service.name
        words = [service.name, service.product, service.version, service.extrainfo]
        found.services[port.portid] = " ".join(word for word in words if word)


def _read_nmap_os(host: NmapHost, found: _Findings) -> None:
    if not _nmap_cut_short("nmap -O", host, found):
        return
    best = host.best_os_match
    if best is not None:
        found.nmap_os = f"{best.name} ({best.accuracy}%)"
    for match in host.os_matches:
        for os_class in match.classes:
            found.nmap_os_classes.append(
                NmapOsClass(
                    family=os_class.family or "",
                    device_type=os_class.type or "",
                    vendor=os_class.vendor or "",
                    accuracy=os_class.accuracy,
                )
            )

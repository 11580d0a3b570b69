"""The ``midprobe scan`` pipeline: port scan -> per-host enrichment -> classification, streamed per host.

Every stage but the port scan is an ECC topic answered by an agent embedded in this process
(``runner/agent/embedded.py``: the real ``Agent`` and ``ProbeRunner`` on a private in-memory queue),
so the scan and ``midprobe agent`` share one code path for parameter validation, the capability
check, the safety policy, the deadline and the encoding, and what the scan reports is read back
from the ECC input payloads (``runner/scan/readers.py``). The port scan is the registry's
``Shazzam`` probe, GenericTCP only, through its streaming entry point (``ShazzamProbe.scan``: names
resolved and every address checked against the policy before anything is sent, then the one bounded
engine-to-asyncio bridge, so a slow consumer pauses the scan instead of filling memory): one ECC
answer per batch could not stream a host as soon as its ports are decided. With ``ping`` (host
discovery), the targets are first swept in chunks by ``HostSweep`` requests and only each chunk's
live addresses are port-scanned. Every host that answered gets its enrichment requests at once
(``BannerSniff``, ``DNSNameResolver``, ``NmapServiceScan``, ``NmapOSScan``, ``SSHClassify``,
``SNMPClassify``), with at most ``host_concurrency`` hosts in flight (``probes/fanout.py``); a
stage's error answer becomes a line in the report's ``errors`` while the scan goes on. The
classifier then decides the CMDB class, and the report is yielded as soon as the host is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv6Address
from itertools import islice
from typing import TYPE_CHECKING

from midprobe.capabilities.errors import MidprobeError
from midprobe.probes.base import ProbeContext
from midprobe.probes.classify import Classifier, Observations, default_classifier
from midprobe.probes.fanout import fan_out
from midprobe.probes.ports import format_ports
from midprobe.probes.registry import ProbeRegistry, default_registry
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.shazzam import SCANNER_NAME, PortScan, ShazzamParams, ShazzamScanner
from midprobe.probes.targets import Target, TargetSpec, parse_targets
from midprobe.probes.tcpscan.common import HostScan
from midprobe.runner.scan import readers
from midprobe.runner.scan.report import HostReport
from midprobe.runner.scan.stages import start_port_scan

if TYPE_CHECKING:  # the later stages' modules are imported when a stage first runs
    from midprobe.probes.credentials import CredentialStore
    from midprobe.probes.dns.resolver import ResolverConfig
    from midprobe.runner.agent.embedded import Answer, EmbeddedAgent

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
#: The embedded agent's MID name (``mid.server.midprobe-scan``) and its stages' ECC priority pool.
AGENT_NAME = "midprobe-scan"
#: Enrichment requests one host may have in flight at once (one per stage).
STAGES_PER_HOST = 6


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
class _Findings:
    """What the stages learned about one host (each stage fills its own fields)."""

    host_name: str | None = None
    banners: dict[int, str] = field(default_factory=dict)
    #: What BannerSniff read (its SNMP tap's sysObjectID/sysDescr stand in when no credentialed SNMP answers).
    banner_reading: readers.BannerReading | None = None
    nmap: readers.NmapReading = field(default_factory=readers.NmapReading)
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


def _protocols() -> tuple[str, str]:
    """``(PROTOCOL_SSH, PROTOCOL_SNMP)``, from the credentials package only a scan with credentials loads."""
    from midprobe.probes.credentials import PROTOCOL_SNMP, PROTOCOL_SSH

    return PROTOCOL_SSH, PROTOCOL_SNMP


class StageFailed(MidprobeError):
    """A stage's ECC answer carried an error (its text is the report's line)."""


class ScanPipeline:
    """One scan: ``async for report in ScanPipeline(settings).run(targets)``.

    The port scan is ``registry``'s ``Shazzam`` probe (the default registry: the agent's probe
    objects), streamed (:func:`~midprobe.runner.scan.stages.start_port_scan`); every other stage
    is an ECC request answered by an agent embedded in the scan, running ``registry``'s probes.
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
            credential.protocol == _protocols()[1] for credential in store.credentials
        )
        # nmap was found working before the scan (``runner/scan/plan.py`` ``require_nmap``).
        nmap_wanted = settings.nmap_services or settings.nmap_os
        self._capabilities = frozenset({"Nmap"}) if nmap_wanted else frozenset()
        self._agent: EmbeddedAgent | None = None
        #: Holds the agent once started, for the end of :meth:`reports` to stop it.
        self._stack: contextlib.AsyncExitStack | None = None
        self._starting = asyncio.Lock()

    async def prepare(self, targets: TargetSpec) -> PortScan:
        """The port scan stage, ready and not started: the registry's Shazzam probe has resolved the
        host names, checked every address against the policy and chosen the engine. Nothing has
        been sent; every error of the targets is raised here."""
        settings = self.settings
        # The port scan has no deadline of its own: its waits and retries bound it (each host's
        # enrichment has ``host_timeout``).
        context = ProbeContext(
            agent_name=AGENT_NAME,
            deadline=math.inf,
            policy=settings.policy,
            capabilities=self._capabilities,
        )
        return await start_port_scan(self.registry, settings.port_scan_params(targets), context)

    def _embedded_agent(self) -> EmbeddedAgent:
        """The agent that answers the scan's requests, sized so no host waits for another's stages."""
        from midprobe.runner.agent.embedded import EmbeddedAgent
        from midprobe.runner.agent.limits import ConcurrencyLimits, PoolSizes
        from midprobe.runner.agent.probe_runner import AgentIdentity, ProbeRunner

        settings = self.settings
        slots = settings.host_concurrency * STAGES_PER_HOST + 1  # +1: a chunk's sweep
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
            # Each request gives its own (host_timeout, or a chunk's sweep time); this only caps them.
            probe_timeout_seconds=max(settings.host_timeout, SWEEP_TIMEOUT_MS / 1000),
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
        """The embedded agent, started by the first stage that asks it (a scan whose hosts need no
        stage after the port scan, ``-n --no-banners``, never starts one)."""
        assert self._stack is not None, "a stage ran outside reports()"
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

    async def reports(self, scan: PortScan) -> AsyncGenerator[HostReport, None]:
        """Run the prepared port scan and yield a report per host that answered (or is incomplete),
        as it finishes."""
        settings = self.settings
        self.stats = ScanStats(engine=scan.engine)

        async def alive_hosts() -> AsyncIterator[HostScan]:
            async for scanned in self._swept(scan) if settings.ping else scan:
                self.stats.scanned += 1
                self.stats.alive += scanned.alive
                self.stats.incomplete += scanned.incomplete is not None
                self._progress()
                if scanned.alive or scanned.incomplete is not None:  # incomplete: not known to be down
                    yield scanned

        async def enrich(scanned: HostScan) -> HostReport:
            return await self.enrich(scanned, scan.params)

        try:
            async with contextlib.AsyncExitStack() as stack:
                self._stack = stack
                reports = fan_out(alive_hosts(), enrich, settings.host_concurrency)
                try:
                    async for report in reports:
                        self.stats.reported += 1
                        self._progress()
                        yield report
                finally:
                    await reports.aclose()
        finally:
            self._agent = self._stack = None
            await scan.aclose()  # stops the engine thread, whatever ended the loop

    async def _swept(self, scan: PortScan) -> AsyncIterator[HostScan]:
        """Host discovery before the port scan: each :data:`SWEEP_CHUNK` addresses of the targets are
        swept (``HostSweep``: ARP, ICMP, or TCP connect without raw sockets), then only those that
        answered are port-scanned; the silent ones count as scanned."""
        await scan.aclose()  # never started: each chunk's live addresses get a scan of their own
        context = ProbeContext(agent_name=AGENT_NAME, deadline=math.inf, policy=self.settings.policy)
        targets = iter(scan.targets)
        while chunk := list(islice(targets, SWEEP_CHUNK)):
            live = await self._live(chunk)
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
        from midprobe.probes.sweep.host_sweep import DEFAULT_RATE as SWEEP_RATE
        from midprobe.runner.discovery.schedule import as_blocks

        settings = self.settings
        rate = SWEEP_RATE if settings.rate is None else max(1, round(settings.rate))
        parameters = {
            # As CIDR blocks: a chunk of a range is one or a few, not 1,024 words to parse.
            "targets": " ".join(as_blocks(addresses)),
            "wait": str(max(10, settings.connect_wait_ms)),
            "retries": str(settings.retries),
            "rate": str(rate),
            # Its waits, retries and rate bound it; the cap only keeps a slow -T0 sweep from being cut.
            "sweep_timeout": str(SWEEP_TIMEOUT_MS),
            "max_addresses": str(SWEEP_CHUNK),
        }
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

    async def enrich(self, scanned: HostScan, scan_request: ShazzamParams) -> HostReport:
        """Run every stage that applies to this host at once, then classify it (``scan_request``, the
        port scan's Shazzam request, says whether refused ports are listed). An incomplete host
        nothing answered gets no stage: its report says why it is incomplete."""
        settings = self.settings
        address = str(scanned.address)
        if not scanned.alive:
            return HostReport(
                address=address,
                hostname=scanned.host_name,
                engine=scanned.engine,
                alive=False,
                incomplete=scanned.incomplete,
            )
        found = _Findings()
        open_ports = scanned.open_ports
        stages: list[tuple[str, Awaitable[None]]] = []
        if settings.resolver is not None:
            stages.append(("dns", self._host_name(address, settings.resolver, found)))
        if (settings.sniff_banners and open_ports) or settings.snmp_public:
            stages.append(("banner", self._banners(scanned, found)))
        if open_ports and settings.nmap_services:
            stages.append(("nmap -sV", self._nmap_services(scanned, found)))
        if open_ports and settings.nmap_os:
            stages.append(("nmap -O", self._nmap_os(scanned, found)))
        store = settings.credentials
        ssh, snmp = _protocols() if store is not None else ("", "")
        if store is not None and 22 in open_ports and store.candidates(address, ssh):
            stages.append(("ssh", self._ssh_facts(address, found)))
        if store is not None and self._snmp_configured and store.candidates(address, snmp):
            stages.append(("snmp", self._snmp_facts(address, found)))
        await asyncio.gather(*(self._guarded(name, stage, found) for name, stage in stages))
        found.errors.extend(found.nmap.errors)
        public = found.banner_reading
        if found.sys_object_id is None and public is not None and public.snmp_answered:
            # The credential-less tap (community public) answered and no credentialed SNMP did.
            found.sys_object_id = public.sys_object_id
            found.sys_descr = public.sys_descr

        verdict = settings.classifier.classify(
            Observations(
                address=address,
                open_tcp_ports=frozenset(open_ports),
                banners=found.banners,
                uname=found.uname,
                sys_object_id=found.sys_object_id,
                sys_descr=found.sys_descr,
                nmap_os_classes=tuple(found.nmap.os_classes),
                nmap_services=found.nmap.services,
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
            services=found.nmap.descriptions,
            credential_id=found.credential_id,
            os=found.os,
            sys_descr=found.sys_descr,
            sys_object_id=found.sys_object_id,
            nmap_os=found.nmap.os,
            engine=scanned.engine,
            errors=tuple(found.errors),
            incomplete=scanned.incomplete,
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

    async def _host_name(self, address: str, resolver: ResolverConfig, found: _Findings) -> None:
        """``DNSNameResolver`` (PTR) for the address, asking the scan's servers."""
        parameters = {
            "ip_addresses": address,
            "dns_servers": ",".join(resolver.servers),
            "dns_port": str(resolver.port),
            "timeout": str(max(1, round(resolver.timeout * 1000))),
            "retries": str(resolver.retries),
            "concurrency": str(resolver.concurrency),
        }
        answer = await self._answered("DNSNameResolver", address, parameters, self.settings.host_timeout)
        name = readers.read_host_name(answer.payload)
        if name:
            found.host_name = name

    async def _banners(self, scanned: HostScan, found: _Findings) -> None:
        """``BannerSniff`` on the open ports (and the SNMP tap, with ``--snmp-public``)."""
        settings = self.settings
        address = str(scanned.address)
        parameters = {"host": address, "snmp_public": "true" if settings.snmp_public else "false"}
        if settings.sniff_banners and scanned.open_ports:
            parameters["ports"] = format_ports(scanned.open_ports)
        answer = await self._answered("BannerSniff", address, parameters, settings.host_timeout)
        reading = readers.read_banners(answer.payload)
        found.banners.update(reading.banners)
        found.banner_reading = reading
        found.reader_scanners = reading.scanners

    async def _nmap(
        self, stage: str, topic: str, address: str, parameters: dict[str, str], found: _Findings
    ) -> None:
        """One nmap stage (its own run, so a slow ``-sV`` does not cost the OS guess)."""
        timeout = self.settings.host_timeout
        parameters = {
            **parameters,
            "resolve_names": "false",
            "timing": "4",
            "timeout_ms": str(round(timeout * 1000)),
        }
        answer = await self._answered(topic, address, parameters, timeout + 5.0)
        readers.read_nmap(answer.payload, stage, found.nmap)
        if not found.nmap.reported:
            found.nmap.errors.append(f"{stage}: nmap reported nothing for the host")

    async def _nmap_services(self, scanned: HostScan, found: _Findings) -> None:
        """``NmapServiceScan`` (``-sV``) on the open ports."""
        parameters = {
            "ports": format_ports(scanned.open_ports),
            "scan_technique": "syn" if self.settings.nmap_syn else "connect",
        }
        await self._nmap("nmap -sV", "NmapServiceScan", str(scanned.address), parameters, found)

    async def _nmap_os(self, scanned: HostScan, found: _Findings) -> None:
        """``NmapOSScan`` (``-O``); most accurate with one open and one closed port to compare."""
        parameters = {
            "ports": format_ports((*scanned.open_ports, *scanned.refused_ports[:1])),
            "osscan_guess": "true",
        }
        await self._nmap("nmap -O", "NmapOSScan", str(scanned.address), parameters, found)

    async def _ssh_facts(self, address: str, found: _Findings) -> None:
        """``SSHClassify`` with the scan's shorter timeouts."""
        parameters = {
            "connect_timeout_ms": str(SSH_CONNECT_TIMEOUT_MS),
            "command_timeout_ms": str(SSH_COMMAND_TIMEOUT_MS),
            "channel_timeout_ms": str(SSH_COMMAND_TIMEOUT_MS),
        }
        answer = await self._answered("SSHClassify", address, parameters, self.settings.host_timeout)
        reading = readers.read_ssh(answer.payload)
        found.credential_id["ssh"] = reading.credential_id
        found.uname = reading.uname
        found.os = reading.os

    async def _snmp_facts(self, address: str, found: _Findings) -> None:
        """``SNMPClassify`` with a short wait: a host without an agent costs about 2 s."""
        parameters = {"timeout": str(SNMP_TIMEOUT_MS), "retries": str(SNMP_RETRIES)}
        answer = await self._ask("SNMPClassify", address, parameters, self.settings.host_timeout)
        if answer.error:
            if readers.snmp_agent_absent(answer.error):
                return  # no agent there (or none that takes our communities): nothing to report
            raise StageFailed(answer.error)
        reading = readers.read_snmp(answer.payload)
        if reading.credential_id:
            found.credential_id["snmp"] = reading.credential_id
        if reading.sys_descr:
            found.sys_descr = reading.sys_descr
        if reading.sys_object_id is not None:
            found.sys_object_id = reading.sys_object_id
        found.snmp_capabilities = reading.capabilities

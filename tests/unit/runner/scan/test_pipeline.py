"""The scan pipeline's streaming and back-pressure, driven by an in-memory port scan engine (no network).

The engine stands in for the port scanner only: it answers every address from a table instead of
sending packets, under the real Shazzam probe of the registry. What is under test is the pipeline
around it: it must pull targets lazily, stay bounded when the consumer is slow, stop the engine when
the consumer leaves, and pass on the engine's failure.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from midprobe.capabilities.errors import MidprobeError
from midprobe.probes.base import ProbeContext
from midprobe.probes.nmap.encode import encode_scan
from midprobe.probes.nmap.parse import NmapAddress, NmapHost, NmapPort, NmapRunStats, NmapScan, NmapService
from midprobe.probes.registry import ProbeRegistry
from midprobe.probes.shazzam import ShazzamProbe
from midprobe.probes.sweep.common import Method
from midprobe.probes.sweep.host_sweep import (
    AliveHost,
    IncompleteHost,
    SweepParams,
    SweepResult,
    encode_sweep,
    parse_sweep_params,
)
from midprobe.probes.targets import parse_targets
from midprobe.probes.tcpscan.connect import ConnectScanner
from midprobe.runner.discovery.readers import NmapReading, read_nmap
from midprobe.runner.ecc.payload import ResultsPayload
from midprobe.runner.scan.pipeline import ScanPipeline, ScanSettings, ScanStats
from midprobe.runner.scan.report import HostReport
from tests.support.refusing_sockets import Refusals
from tests.support.table_engine import TableEngine, table_registry


def _pipeline(engine: TableEngine, **overrides: int) -> ScanPipeline:
    settings = ScanSettings(ports=(22, 9100), sniff_banners=False, **overrides)  # type: ignore[arg-type]
    return ScanPipeline(settings, registry=table_registry(engine))


def test_every_alive_host_is_reported_and_classified() -> None:
    engine = TableEngine({"198.18.0.12": (9100,)})

    async def run() -> list[HostReport]:
        return [report async for report in _pipeline(engine).run(parse_targets("198.18.0.10-13"))]

    reports = asyncio.run(run())
    assert sorted(report.address for report in reports) == [f"198.18.0.{n}" for n in range(10, 14)]
    printer = next(report for report in reports if report.address == "198.18.0.12")
    assert printer.open_tcp_ports == (9100,)
    assert printer.refused_tcp_ports == (22,)
    assert printer.ci_class == "cmdb_ci_printer"
    assert printer.evidence == ("printing port 9100 open (JetDirect, LPD or IPP)",)
    assert printer.engine == "table"


def test_a_slow_consumer_holds_the_scan_back_and_leaving_stops_it() -> None:
    engine = TableEngine({})
    pipeline = _pipeline(engine, queue_size=8, host_concurrency=4)
    consumed_while_waiting: list[int] = []

    async def run() -> None:
        reports = pipeline.run(parse_targets("10.0.0.0/16"))  # 65,536 addresses
        try:
            async for _ in reports:
                await asyncio.sleep(0.3)  # a slow reader: the engine must wait for it
                consumed_while_waiting.append(engine.consumed)
                if len(consumed_while_waiting) == 3:
                    break
        finally:
            await reports.aclose()

    asyncio.run(run())
    # The engine runs ahead of the reader by at most the queues: the hosts in hand (a page is let
    # through while fewer than 8 are, until the reader takes their reports), the two pages the
    # agent may store before the orchestrator senses them, the page Shazzam fills, and the few
    # hosts in the engine's hand; each report read lets it take one more.
    page = pipeline.settings.page_hosts
    assert page <= 8
    for reads, consumed in enumerate(consumed_while_waiting, start=1):
        assert consumed - reads <= (8 - 1 + page) + 2 * page + page + 3
    assert engine.closed.is_set(), "the engine was left running"
    assert engine.consumed < 100


def test_targets_are_pulled_lazily() -> None:
    engine = TableEngine({})

    async def run() -> HostReport:
        # 16 million addresses: resolving and checking them must not expand them, and the engine
        # pulls them one by one.
        reports = _pipeline(engine, queue_size=4, host_concurrency=2).run(parse_targets("10.0.0.0/8"))
        try:
            return await anext(reports)
        finally:
            await reports.aclose()

    first = asyncio.run(run())
    assert first.address == "10.0.0.0"
    assert engine.consumed < 50


def test_an_engine_failure_ends_the_scan_with_its_error() -> None:
    engine = TableEngine({}, fail_after=3)
    seen: list[str] = []

    async def run() -> None:
        async for report in _pipeline(engine).run(parse_targets("198.18.0.0/24")):
            seen.append(report.address)

    # The agent's error answer (the last page of the port scan's), its text as the engine said it.
    with pytest.raises(MidprobeError, match=r"^the network went away$"):
        asyncio.run(run())
    assert len(seen) <= 3


def _nmap_host(*, timed_out: bool, status: str = "up") -> NmapHost:
    service = NmapService(name="ssh", method="probed", confidence=10, guessed=False, product="OpenSSH")
    return NmapHost(
        status=status,
        reason="user-set",
        addresses=(NmapAddress("198.18.0.10", "ipv4"),),
        ports=(NmapPort("tcp", 22, "open", "syn-ack", service=service),),
        timed_out=timed_out,
    )


def _nmap_answer(host: NmapHost) -> ResultsPayload:
    """The ECC input an nmap probe writes for ``host`` (its own encoder), as the scan reads it."""
    scan = NmapScan(
        args="nmap",
        version="7.93",
        start=None,
        scaninfo=(),
        hosts=(host,),
        runstats=NmapRunStats("success", 1.0, 1, 0, 1),
        version_detection=True,
    )
    return ResultsPayload(results=(encode_scan(scan, topic="NmapServiceScan", label="service scan"),))


def test_an_nmap_host_time_out_is_an_error_line_and_what_nmap_found_is_kept() -> None:
    found = NmapReading()
    read_nmap(_nmap_answer(_nmap_host(timed_out=True)), "nmap -sV", found)
    read_nmap(_nmap_answer(_nmap_host(timed_out=True)), "nmap -O", found)
    assert found.descriptions == {22: "ssh OpenSSH"}
    assert found.services == {22: "ssh"}
    assert found.errors == [
        "nmap -sV: nmap gave up on the host at its time-out: results incomplete",
        "nmap -O: nmap gave up on the host at its time-out: results incomplete",
    ]


def test_an_nmap_host_that_finished_adds_no_error() -> None:
    found = NmapReading()
    read_nmap(_nmap_answer(_nmap_host(timed_out=False)), "nmap -sV", found)
    read_nmap(_nmap_answer(_nmap_host(timed_out=False, status="down")), "nmap -sV", found)
    assert found.descriptions == {22: "ssh OpenSSH"}
    assert found.errors == []


class _TableSweep:
    """A ``HostSweep`` probe answering from a set of live addresses (no packets), recording each request."""

    topic = "HostSweep"
    required_capabilities: tuple[str, ...] = ()

    def __init__(
        self,
        live: set[str],
        *,
        complete: bool = True,
        incomplete: frozenset[str] = frozenset(),
        method: Method = "icmp",
        engine: TableEngine | None = None,
    ) -> None:
        self.live = live
        self.complete = complete
        #: Addresses the sweep could not ask (the kernel refused the requests).
        self.incomplete = incomplete
        #: ``icmp``: routed addresses; ``arp``: on the scanner's link.
        self.method = method
        self.engine = engine
        self.swept: list[int] = []
        #: The addresses the engine had port-scanned as each sweep began.
        self.scanned_before: list[int] = []
        self.second_sweep = threading.Event()

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> SweepParams:
        return parse_sweep_params(source, parameters)

    async def run(self, params: SweepParams, context: ProbeContext) -> SweepResult:
        addresses = [str(target.address) for target in params.targets]
        self.swept.append(len(addresses))
        self.scanned_before.append(self.engine.consumed if self.engine is not None else 0)
        if len(self.swept) == 2:
            self.second_sweep.set()
        alive = tuple(AliveHost(address, "icmp", 0.1) for address in addresses if address in self.live)
        undecided = tuple(
            IncompleteHost(address, "ENOBUFS") for address in addresses if address in self.incomplete
        )
        return SweepResult(
            targets=str(params.targets),
            method=self.method,
            methods_used=(self.method,),
            raw_sockets=True,
            fallback_reason=None,
            addresses=len(addresses),
            alive=alive,
            unreachable=0,
            silent=len(addresses) - len(alive) - len(undecided),
            unchecked=0 if self.complete else 1,
            probes_sent=len(addresses),
            elapsed_ms=1,
            complete=self.complete,
            incomplete=undecided,
        )

    def encode_results(self, result: SweepResult) -> Sequence[ET.Element]:
        return [encode_sweep(result)]


def _swept_scan(
    targets: str,
    live: set[str],
    *,
    ping: bool,
    complete: bool = True,
    incomplete: frozenset[str] = frozenset(),
) -> tuple[list[str], ScanStats, TableEngine, _TableSweep]:
    engine = TableEngine({})
    sweeper = _TableSweep(live, complete=complete, incomplete=incomplete)
    settings = ScanSettings(ports=(22,), sniff_banners=False, ping=ping)
    pipeline = ScanPipeline(settings, registry=table_registry(engine, sweeper))

    async def run() -> list[str]:
        return [report.address async for report in pipeline.run(parse_targets(targets))]

    return asyncio.run(run()), pipeline.stats, engine, sweeper


def test_host_discovery_port_scans_only_the_addresses_that_answered_the_sweep() -> None:
    live = {"198.18.0.3", "198.18.4.200", "2001:db8::1"}
    reported, stats, engine, sweeper = _swept_scan("198.18.0.0/21 2001:db8::1 2001:db8::2", live, ping=True)
    assert sorted(reported) == sorted(live)  # 2001:db8::2 did not answer the (ICMPv6) sweep either
    assert engine.consumed == 3  # the 2,047 silent addresses were never port-scanned
    assert sweeper.swept == [1024, 1024, 2]  # in chunks, the IPv6 addresses in a sweep of their own
    assert stats.scanned == 2050  # the silent ones count as scanned
    assert stats.alive == 3
    assert stats.discovery == "icmp"


def _chunked_scan(engine: TableEngine, sweeper: _TableSweep) -> list[str]:
    settings = ScanSettings(ports=(22,), sniff_banners=False, ping=True)
    pipeline = ScanPipeline(settings, registry=table_registry(engine, sweeper))

    async def run() -> list[str]:
        return [report.address async for report in pipeline.run(parse_targets("198.18.0.0/21"))]

    return asyncio.run(run())


def test_routed_the_next_chunk_is_swept_while_this_one_is_port_scanned() -> None:
    live = {"198.18.0.3", "198.18.4.200"}
    sweeper = _TableSweep(live)
    engine = TableEngine({}, first_waits_for=sweeper.second_sweep)
    sweeper.engine = engine
    assert sorted(_chunked_scan(engine, sweeper)) == sorted(live)
    # The first chunk's port scan could begin only once the second chunk's sweep had.
    assert engine.waited == [True]
    assert sweeper.swept == [1024, 1024]


def test_on_the_link_a_chunk_is_swept_after_the_one_before_is_port_scanned() -> None:
    live = {"198.18.0.3", "198.18.4.200"}
    engine = TableEngine({})
    sweeper = _TableSweep(live, method="arp", engine=engine)
    assert sorted(_chunked_scan(engine, sweeper)) == sorted(live)
    # ARP fills the neighbour table the port scan needs: the second sweep waited for the first scan.
    assert sweeper.scanned_before == [0, 1]


def test_routed_chunks_grow_after_the_first_and_on_the_link_they_stay_a_22() -> None:
    def sizes(method: Method) -> list[int]:
        engine = TableEngine({})
        sweeper = _TableSweep({"198.18.0.3", "198.18.30.1"}, method=method, engine=engine)
        settings = ScanSettings(ports=(22,), sniff_banners=False, ping=True)
        pipeline = ScanPipeline(settings, registry=table_registry(engine, sweeper))

        async def run() -> list[str]:
            return [report.address async for report in pipeline.run(parse_targets("198.18.0.0/19"))]

        assert sorted(asyncio.run(run())) == ["198.18.0.3", "198.18.30.1"]
        assert pipeline.stats.scanned == 8192
        return sweeper.swept

    # Routed: one /22 (what it needs is not known yet), then /20s: fewer port scans, each with a tail.
    assert sizes("icmp") == [1024, 4096, 3072]
    # ARP: the sweep and the port scan share the neighbour table, so every chunk stays a /22.
    assert sizes("arp") == [1024] * 8


def test_without_host_discovery_every_address_is_port_scanned() -> None:
    reported, stats, engine, sweeper = _swept_scan("198.18.0.0/24", {"198.18.0.3"}, ping=False)
    assert len(reported) == 256  # the table engine answers every address
    assert engine.consumed == 256
    assert sweeper.swept == []
    assert stats.scanned == 256
    assert stats.discovery == ""


def test_a_sweep_cut_short_skips_no_address() -> None:
    reported, stats, engine, sweeper = _swept_scan("198.18.0.0/24", {"198.18.0.3"}, ping=True, complete=False)
    assert stats.scanned == 256
    assert sweeper.swept == [256]
    assert engine.consumed == 256  # undecided addresses are port-scanned, not taken for dead
    assert len(reported) == 256


def test_an_address_the_sweep_could_not_ask_is_port_scanned_not_taken_for_dead() -> None:
    reported, stats, engine, _ = _swept_scan(
        "198.18.0.0/24", {"198.18.0.3"}, ping=True, incomplete=frozenset({"198.18.0.7"})
    )
    assert sorted(reported) == ["198.18.0.3", "198.18.0.7"]
    assert engine.consumed == 2
    assert stats.scanned == 256


def test_a_host_the_kernel_would_not_send_to_is_reported_incomplete_and_the_others_complete() -> None:
    """The real connect engine, whose sockets refuse every connect to 127.0.0.2 (ENOBUFS) and answer
    the others "refused" without sending anything."""
    refusals = Refusals("127.0.0.2")
    registry = ProbeRegistry()
    registry.register(ShazzamProbe(engines=lambda _: ConnectScanner(open_socket=refusals.stream_socket)))
    pipeline = ScanPipeline(ScanSettings(ports=(22, 80), sniff_banners=False), registry=registry)

    async def run() -> dict[str, HostReport]:
        return {report.address: report async for report in pipeline.run(parse_targets("127.0.0.1-3"))}

    reports = asyncio.run(run())
    assert sorted(reports) == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    refused = reports["127.0.0.2"]
    assert not refused.alive
    assert refused.ci_class is None
    assert "ENOBUFS" in (refused.incomplete or "")
    for address in ("127.0.0.1", "127.0.0.3"):
        assert (reports[address].alive, reports[address].incomplete) == (True, None)
    assert (pipeline.stats.scanned, pipeline.stats.alive, pipeline.stats.incomplete) == (3, 2, 1)


#: What a port scan with no later stage (``-n --no-banners -Pn``, no credentials, no ``--nmap``) written
#: as JSON lines with ``-q`` must not load: the DNS, SNMP and nmap packages, rich, X.509 (its port scan
#: is a request to the embedded agent, which it starts, run as a one-off discovery); nor what only
#: other commands or options need: BannerSniff beyond its defaults, the agent's upgrades and the
#: connect engine (the table engine scans here).
LATER_STAGES_ONLY = (
    "rich",
    "midprobe.probes.dns",
    "midprobe.probes.snmp",
    "midprobe.probes.nmap",
    "cryptography.x509",
    "midprobe.probes.banner.parsers",
    "midprobe.probes.banner.sniffer",
    "midprobe.probes.banner.probe",
    "midprobe.runner.agent.upgrade",
    "midprobe.probes.tcpscan.connect",
)

_BARE_SCAN = """
import asyncio, io, sys
import midprobe.runner.cli.scan
from midprobe.runner.scan.render import ProgressDisplay, make_writer
from midprobe.probes.targets import parse_targets
from midprobe.runner.scan.pipeline import ScanPipeline, ScanSettings
from tests.support.table_engine import TableEngine, table_registry

settings = ScanSettings(ports=(22, 80), sniff_banners=False)
pipeline = ScanPipeline(settings, registry=table_registry(TableEngine({"198.18.0.10": (22,)})))

async def run():
    return [report async for report in pipeline.run(parse_targets("198.18.0.10-11"))]

with ProgressDisplay(2, enabled=False):
    reports = asyncio.run(run())
    writer = make_writer("json", io.StringIO())
    for report in reports:
        writer.write(report)
print(" ".join(f"{r.address}:{r.open_tcp_ports}" for r in reports))
print(" ".join(name for name in sys.modules if name.startswith(tuple(sys.argv[1:]))))
"""


def test_a_bare_port_scan_loads_none_of_the_later_stages() -> None:
    root = Path(__file__).resolve().parents[4]
    done = subprocess.run(
        [sys.executable, "-c", _BARE_SCAN, *LATER_STAGES_ONLY],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
        check=True,
    )
    found, loaded = done.stdout.splitlines()
    assert "198.18.0.10:(22,)" in found.split()
    assert loaded.split() == []

"""``midprobe scan`` runs its stages through the registered probe objects (one code path with the agent):
the port scan through the registry's Shazzam probe, streamed in pages, the enrichment stages through theirs."""

from __future__ import annotations

import asyncio
import ipaddress
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from midprobe.capabilities.errors import MidprobeError, MissingCapability
from midprobe.probes.banner import PROBE as BANNER_PROBE
from midprobe.probes.banner import BannerParams, BannerResult
from midprobe.probes.base import ProbeContext
from midprobe.probes.nmap.options import NmapTargets, PortList
from midprobe.probes.nmap.service_scan import NmapServiceScanParams
from midprobe.probes.registry import ProbeRegistry, default_registry
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.shazzam import ShazzamParams, ShazzamProbe, ShazzamResult, ShazzamStream
from midprobe.probes.targets import parse_targets
from midprobe.runner.queue.url import open_queue
from midprobe.runner.scan.pipeline import ScanPipeline, ScanSettings
from midprobe.runner.scan.report import HostReport
from midprobe.runner.scan.stages import run_probe
from tests.support.table_engine import TableEngine, table_registry

SCANNED = ("198.18.0.10", "198.18.0.11", "192.0.2.7")


class RecordingBannerSniff:
    """A BannerSniff that answers from a table and keeps the typed params it was given."""

    topic = "BannerSniff"
    required_capabilities: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.asked: list[BannerParams] = []
        self.policies: list[TargetPolicy] = []

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> BannerParams:
        return BANNER_PROBE.parse_params(source, parameters)

    async def run(self, params: BannerParams, context: ProbeContext) -> BannerResult:
        self.asked.append(params)
        self.policies.append(context.policy)
        context.policy.check(params.host)
        return BannerResult(params.host, None, (), 0)

    def encode_results(self, result: BannerResult) -> Sequence[ET.Element]:
        return BANNER_PROBE.encode_results(result)


class RecordingShazzam:
    """The real Shazzam probe (scanning with a table engine), keeping what each entry point was given."""

    topic = "Shazzam"
    required_capabilities: tuple[str, ...] = ()

    def __init__(self, engine: TableEngine) -> None:
        self.probe = ShazzamProbe(engines=engine.choose)
        self.scanned: list[tuple[ShazzamParams, ProbeContext]] = []

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> ShazzamParams:
        return self.probe.parse_params(source, parameters)

    async def stream(self, params: ShazzamParams, context: ProbeContext) -> ShazzamStream:
        self.scanned.append((params, context))
        return await self.probe.stream(params, context)

    async def run(self, params: ShazzamParams, context: ProbeContext) -> ShazzamResult:
        raise AssertionError("midprobe scan streams its port scan: it must not wait for run's whole result")

    def encode_results(self, result: ShazzamResult) -> Sequence[ET.Element]:
        return self.probe.encode_results(result)


def _ssh_engine() -> TableEngine:
    """Port 22 open on the addresses the tests scan (no packets: the port scan is not under test)."""
    return TableEngine(dict.fromkeys(SCANNED, (22,)), refused=())


def _scan(
    settings: ScanSettings, registry: ProbeRegistry, targets: str, exclude: str = ""
) -> list[HostReport]:
    async def run() -> list[HostReport]:
        pipeline = ScanPipeline(settings, registry=registry)
        return [report async for report in pipeline.run(parse_targets(targets, exclude))]

    return asyncio.run(run())


def test_the_port_scan_is_the_registered_shazzam_probe_given_the_scan_s_targets_and_ports() -> None:
    engine = TableEngine({"198.18.0.12": (9100,)}, refused=(22,))
    shazzam = RecordingShazzam(engine)
    registry = ProbeRegistry()
    registry.register(shazzam)
    policy = TargetPolicy.lab()
    settings = ScanSettings(
        ports=(22, 9100),
        policy=policy,
        engine="connect",
        connect_wait_ms=300,
        retries=1,
        rate=500.0,
        sniff_banners=False,
        queue_size=16,
    )

    reports = _scan(settings, registry, "198.18.0.10-13", exclude="198.18.0.11")

    # First the scan's targets as given, checked and never scanned (the prepared request), then the
    # one-off discovery's port scan of the addresses they hold.
    (checked, _), (params, context) = shazzam.scanned
    assert str(checked.targets) == "198.18.0.10-13 --exclude 198.18.0.11"
    assert [str(target.address) for target in params.targets] == ["198.18.0.10", "198.18.0.12", "198.18.0.13"]
    assert params.ports == (22, 9100)
    assert (params.engine, params.connect_wait_ms, params.retries, params.rate) == ("connect", 300, 1, 500.0)
    assert params.scanners == ("GenericTCP",)  # the banners are the BannerSniff stage's
    assert params.queue_size == 16
    assert context.policy == policy
    assert engine.chosen == ["connect", "connect"]  # the checked request's, then the port scan's
    # What the probe's scan found is what the reports say.
    assert sorted(report.address for report in reports) == ["198.18.0.10", "198.18.0.12", "198.18.0.13"]
    printer = next(report for report in reports if report.address == "198.18.0.12")
    assert (printer.open_tcp_ports, printer.refused_tcp_ports) == ((9100,), (22,))


def test_a_target_outside_the_policy_is_refused_by_the_port_scan_probe_before_anything_runs() -> None:
    banners = RecordingBannerSniff()
    engine = _ssh_engine()
    registry = table_registry(engine, banners)
    settings = ScanSettings(ports=(22,), policy=TargetPolicy.lab())

    # The agent's answer: the probe's refusal (TargetNotAllowed), its text the scan's error.
    with pytest.raises(MidprobeError, match=r"192\.0\.2\.1"):
        _scan(settings, registry, "198.18.0.0/24 127.0.0.1 192.0.2.1")
    assert engine.chosen == []  # refused before an engine was even chosen
    assert engine.consumed == 0
    assert banners.asked == []


def test_the_prepared_port_scan_counts_the_targets_once_exclusions_apply() -> None:
    engine = _ssh_engine()
    pipeline = ScanPipeline(
        ScanSettings(ports=(22,), policy=TargetPolicy.lab()), registry=table_registry(engine)
    )
    spec = parse_targets("198.17.255.255-198.18.0.3", "198.17.255.255")

    async def prepare() -> tuple[int, str]:
        scan = await pipeline.prepare(spec)
        await scan.aclose()
        return scan.hosts_scanned, scan.engine

    assert asyncio.run(prepare()) == (4, "table")
    assert engine.consumed == 0  # prepared, never started


def test_a_registry_shazzam_that_cannot_stream_still_answers_the_scan_in_one_piece() -> None:
    class BatchOnlyShazzam(RecordingShazzam):
        stream = None  # type: ignore[assignment]

        async def run(self, params: ShazzamParams, context: ProbeContext) -> ShazzamResult:
            return await self.probe.run(params, context)

    registry = ProbeRegistry()
    registry.register(BatchOnlyShazzam(TableEngine({"198.18.0.10": (22,)}, refused=())))

    reports = _scan(ScanSettings(ports=(22,), sniff_banners=False), registry, "198.18.0.10-11")

    assert [(report.address, report.open_tcp_ports) for report in reports] == [("198.18.0.10", (22,))]


def test_the_banner_stage_is_the_registered_probe_given_typed_params() -> None:
    banners = RecordingBannerSniff()
    registry = table_registry(_ssh_engine(), banners)
    policy = TargetPolicy.lab()
    settings = ScanSettings(ports=(22,), policy=policy, snmp_public=True)

    reports = _scan(settings, registry, "198.18.0.10-11")

    assert sorted(report.address for report in reports) == ["198.18.0.10", "198.18.0.11"]
    assert sorted(params.host for params in banners.asked) == ["198.18.0.10", "198.18.0.11"]
    assert {(params.ports, params.snmp_public) for params in banners.asked} == {((22,), True)}
    assert banners.policies == [policy, policy]  # the stage checks the scan's policy, as the agent's would
    assert all(report.errors == () for report in reports)


def test_a_stage_failure_is_a_line_in_the_host_report() -> None:
    registry = table_registry(_ssh_engine())  # no BannerSniff registered
    settings = ScanSettings(ports=(22,))

    (report,) = _scan(settings, registry, "198.18.0.10")

    assert report.open_tcp_ports == (22,)
    assert report.errors == ("banner: no probe handles topic 'BannerSniff' (known: Shazzam)",)


def test_a_probe_needing_nmap_does_not_run_without_the_capability() -> None:
    params = NmapServiceScanParams(
        targets=NmapTargets((ipaddress.ip_network("198.18.0.10"),)),
        ports=PortList(((22, 22),)),
        technique="-sT",
        version_intensity=None,
        scripts=(),
        resolve_names=False,
        timing=4,
        timeout_s=5.0,
    )

    async def run() -> object:
        return await run_probe(default_registry(), "NmapServiceScan", params, ProbeContext(), object)

    with pytest.raises(MissingCapability, match="NmapServiceScan needs the Nmap capability"):
        asyncio.run(run())


def test_a_result_of_the_wrong_type_is_an_error_not_a_silent_mix_up() -> None:
    banners = RecordingBannerSniff()
    registry = ProbeRegistry()
    registry.register(banners)
    params = BannerParams(host="198.18.0.10", ports=(22,))

    async def run() -> object:
        return await run_probe(registry, "BannerSniff", params, ProbeContext(), HostReport)

    with pytest.raises(TypeError, match="BannerSniff probe returned BannerResult, not HostReport"):
        asyncio.run(run())


def test_with_a_queue_url_each_stage_is_an_ecc_request_kept_on_that_queue(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ecc.db"
    banners = RecordingBannerSniff()
    settings = ScanSettings(ports=(22,), policy=TargetPolicy.lab(), queue_url=url)

    reports = _scan(settings, table_registry(_ssh_engine(), banners), "198.18.0.10-11")

    assert all(report.errors == () for report in reports)
    with open_queue(url) as queue:
        outputs = queue.list(queue_side="output", topic="BannerSniff")
        answers = [queue.list(queue_side="input", response_to=output.sys_id) for output in outputs]
    assert sorted(output.source for output in outputs) == ["198.18.0.10", "198.18.0.11"]
    assert all(output.state == "processed" for output in outputs)
    assert [len(answer) for answer in answers] == [1, 1]  # each answered once, by the scan's agent
    assert {answer[0].agent for answer in answers} == {outputs[0].agent}
    assert outputs[0].agent.startswith("mid.server.midprobe-scan-")

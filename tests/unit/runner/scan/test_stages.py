"""``midprobe scan`` runs its stages through the registered probe objects (one code path with the agent)."""

from __future__ import annotations

import asyncio
import ipaddress
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence

import pytest

from midprobe.capabilities.errors import MissingCapability
from midprobe.probes.banner import PROBE as BANNER_PROBE
from midprobe.probes.banner import BannerParams, BannerResult
from midprobe.probes.base import ProbeContext
from midprobe.probes.nmap.options import NmapTargets, PortList
from midprobe.probes.nmap.service_scan import NmapServiceScanParams
from midprobe.probes.registry import ProbeRegistry, default_registry
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.targets import parse_targets
from midprobe.runner.scan.pipeline import ScanPipeline, ScanSettings
from midprobe.runner.scan.report import HostReport
from midprobe.runner.scan.stages import run_probe
from tests.support.table_engine import TableEngine

SCANNED = ("198.18.0.10", "198.18.0.11", "192.0.2.7")


class RecordingBannerSniff:
    """A BannerSniff that answers from a table and keeps the typed params it was given."""

    topic = "BannerSniff"
    required_capabilities: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.asked: list[BannerParams] = []

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> BannerParams:
        return BANNER_PROBE.parse_params(source, parameters)

    async def run(self, params: BannerParams, context: ProbeContext) -> BannerResult:
        self.asked.append(params)
        context.policy.check(params.host)
        return BannerResult(params.host, None, (), 0)

    def encode_results(self, result: BannerResult) -> Sequence[ET.Element]:
        return BANNER_PROBE.encode_results(result)


def _ssh_engine() -> TableEngine:
    """Port 22 open on the addresses the tests scan (no packets: the port scan is not under test)."""
    return TableEngine(dict.fromkeys(SCANNED, (22,)), refused=())


def _scan(settings: ScanSettings, registry: ProbeRegistry, targets: str) -> list[HostReport]:
    async def run() -> list[HostReport]:
        pipeline = ScanPipeline(settings, registry=registry)
        return [report async for report in pipeline.run(parse_targets(targets))]

    return asyncio.run(run())


def test_the_banner_stage_is_the_registered_probe_given_typed_params() -> None:
    banners = RecordingBannerSniff()
    registry = ProbeRegistry()
    registry.register(banners)
    settings = ScanSettings(ports=(22,), engine=_ssh_engine(), snmp_public=True)

    reports = _scan(settings, registry, "198.18.0.10-11")

    assert sorted(report.address for report in reports) == ["198.18.0.10", "198.18.0.11"]
    assert sorted(params.host for params in banners.asked) == ["198.18.0.10", "198.18.0.11"]
    assert {(params.ports, params.snmp_public) for params in banners.asked} == {((22,), True)}
    assert all(report.errors == () for report in reports)


def test_a_stage_failure_is_a_line_in_the_host_report() -> None:
    registry = ProbeRegistry()  # no BannerSniff registered
    settings = ScanSettings(ports=(22,), engine=_ssh_engine())

    (report,) = _scan(settings, registry, "198.18.0.10")

    assert report.open_tcp_ports == (22,)
    assert report.errors == ("banner: no probe handles topic 'BannerSniff' (known: none)",)


def test_the_probe_refuses_a_target_outside_the_policy_as_the_agent_would() -> None:
    banners = RecordingBannerSniff()
    registry = ProbeRegistry()
    registry.register(banners)
    settings = ScanSettings(ports=(22,), engine=_ssh_engine(), policy=TargetPolicy.lab())

    (report,) = _scan(settings, registry, "192.0.2.7")

    assert len(report.errors) == 1
    assert report.errors[0].startswith("banner: ")
    assert "192.0.2.7" in report.errors[0]


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

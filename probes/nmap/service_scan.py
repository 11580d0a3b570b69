"""``NmapServiceScan``: port states and service/version detection (``-sV``) on the ports asked for."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from midprobe.probes.nmap import options
from midprobe.probes.nmap.common import InvocationPlan, NmapProbe, NmapResult
from midprobe.probes.nmap.options import (
    DEFAULT_PORTS,
    SCAN_TECHNIQUES,
    NmapTargets,
    ParameterReader,
    PortList,
    parse_targets,
)

NmapServiceScanResult = NmapResult


@dataclass(frozen=True)
class NmapServiceScanParams:
    targets: NmapTargets
    ports: PortList
    technique: str  # "-sS" or "-sT", from ``scan_technique`` = syn | connect
    version_intensity: int | None
    scripts: tuple[str, ...]
    resolve_names: bool
    timing: int
    timeout_s: float


class NmapServiceScan(NmapProbe[NmapServiceScanParams]):
    topic = "NmapServiceScan"

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> NmapServiceScanParams:
        reader = ParameterReader(
            self.topic,
            parameters,
            (
                "ports",
                "scan_technique",
                "version_intensity",
                "scripts",
                "resolve_names",
                "timing",
                "timeout_ms",
            ),
        )
        intensity = reader.integer("version_intensity", -1, 0, 9)
        return NmapServiceScanParams(
            targets=parse_targets(source),
            ports=reader.ports("ports", DEFAULT_PORTS),
            technique=reader.choice("scan_technique", SCAN_TECHNIQUES, "syn"),
            version_intensity=None if intensity < 0 else intensity,
            scripts=reader.scripts("scripts"),
            resolve_names=reader.boolean("resolve_names", False),
            timing=reader.integer("timing", 4, 0, 5),
            timeout_s=reader.timeout_s(),
        )

    def plan(self, params: NmapServiceScanParams) -> Sequence[InvocationPlan]:
        return [
            lambda seconds: options.service_scan(
                params.targets,
                params.ports,
                technique=params.technique,
                version_intensity=params.version_intensity,
                scripts=params.scripts,
                resolve_names=params.resolve_names,
                timing=params.timing,
                timeout_s=seconds,
            )
        ]


PROBE = NmapServiceScan()

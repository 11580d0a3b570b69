"""``NmapDiscovery``: nmap host discovery (``-sn``): which addresses answer, and why nmap thinks so.

Hosts that are down are listed too (``-v``), with nmap's reason (usually ``no-response``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from midprobe.probes.nmap import options
from midprobe.probes.nmap.common import InvocationPlan, NmapProbe, NmapResult
from midprobe.probes.nmap.options import NmapTargets, ParameterReader, PortList, parse_targets

NmapDiscoveryResult = NmapResult


@dataclass(frozen=True)
class NmapDiscoveryParams:
    targets: NmapTargets
    #: TCP SYN/ACK ping ports plus ICMP echo; ``None`` = nmap's default discovery probes.
    ping_ports: PortList | None
    resolve_names: bool
    timing: int
    timeout_s: float


class NmapDiscovery(NmapProbe[NmapDiscoveryParams]):
    topic = "NmapDiscovery"

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> NmapDiscoveryParams:
        reader = ParameterReader(
            self.topic, parameters, ("ping_ports", "resolve_names", "timing", "timeout_ms")
        )
        return NmapDiscoveryParams(
            targets=parse_targets(source),
            ping_ports=reader.optional_ports("ping_ports"),
            resolve_names=reader.boolean("resolve_names", False),
            timing=reader.integer("timing", 4, 0, 5),
            timeout_s=reader.timeout_s(),
        )

    def plan(self, params: NmapDiscoveryParams) -> Sequence[InvocationPlan]:
        return [
            lambda seconds: options.discovery(
                params.targets,
                ping_ports=params.ping_ports,
                resolve_names=params.resolve_names,
                timing=params.timing,
                timeout_s=seconds,
            )
        ]


PROBE = NmapDiscovery()

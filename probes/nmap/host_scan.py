"""``NmapHostScan``: the credential-less host scan (docs/ecc-reference.md section 4), OS family -> CMDB class.

Runs exactly ``-PS -PA -O -p <ports> -T4 -v -Pn -r --reason --system-dns -oX -`` (plus ``--host-timeout``
from the deadline); each live host in the result carries ``ci_class``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from midprobe.probes.nmap import options
from midprobe.probes.nmap.common import InvocationPlan, NmapProbe, NmapResult
from midprobe.probes.nmap.options import DEFAULT_PORTS, NmapTargets, ParameterReader, PortList, parse_targets

NmapHostScanResult = NmapResult


@dataclass(frozen=True)
class NmapHostScanParams:
    targets: NmapTargets
    ports: PortList
    timeout_s: float


class NmapHostScan(NmapProbe[NmapHostScanParams]):
    topic = "NmapHostScan"
    classify = True

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> NmapHostScanParams:
        reader = ParameterReader(self.topic, parameters, ("ports", "timeout_ms"))
        return NmapHostScanParams(
            targets=parse_targets(source),
            ports=reader.ports("ports", DEFAULT_PORTS),
            timeout_s=reader.timeout_s(),
        )

    def plan(self, params: NmapHostScanParams) -> Sequence[InvocationPlan]:
        return [lambda seconds: options.host_scan(params.targets, params.ports, seconds)]


PROBE = NmapHostScan()

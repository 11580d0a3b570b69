"""``NmapApplicationScan``: ``-sS -sV`` with safe NSE scripts, one nmap run per port (docs/ecc-reference.md section 4).

Scripts come from the request (``scripts``, allow-listed) or, when it names none, from the per-port
table ``APPLICATION_SCAN_SCRIPTS``. A service nmap only guessed (``?``) is marked ``guess="true"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from midprobe.capabilities.errors import ProbeParameterError
from midprobe.probes.nmap import options
from midprobe.probes.nmap.common import InvocationPlan, NmapProbe, NmapResult
from midprobe.probes.nmap.options import (
    APPLICATION_SCAN_SCRIPTS,
    NmapTargets,
    ParameterReader,
    PortList,
    parse_targets,
)

NmapApplicationScanResult = NmapResult

#: Each port is its own nmap run, so a request names at most this many ports.
MAX_APPLICATION_PORTS: Final = 64


@dataclass(frozen=True)
class NmapApplicationScanParams:
    targets: NmapTargets
    ports: PortList
    #: Scripts for every port; empty = the per-port defaults.
    scripts: tuple[str, ...]
    timeout_s: float

    def scripts_for(self, port: int) -> tuple[str, ...]:
        return self.scripts or APPLICATION_SCAN_SCRIPTS.get(port, ())


class NmapApplicationScan(NmapProbe[NmapApplicationScanParams]):
    topic = "NmapApplicationScan"

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> NmapApplicationScanParams:
        reader = ParameterReader(self.topic, parameters, ("ports", "scripts", "timeout_ms"))
        ports = reader.optional_ports("ports")
        if ports is None:
            raise ProbeParameterError("the application scan needs the ports to look at", parameter="ports")
        if len(ports) > MAX_APPLICATION_PORTS:
            raise ProbeParameterError(
                f"{len(ports)} ports is more than {MAX_APPLICATION_PORTS} (one nmap run each)",
                parameter="ports",
            )
        return NmapApplicationScanParams(
            targets=parse_targets(source),
            ports=ports,
            scripts=reader.scripts("scripts"),
            timeout_s=reader.timeout_s(),
        )

    def plan(self, params: NmapApplicationScanParams) -> Sequence[InvocationPlan]:
        def for_port(port: int) -> InvocationPlan:
            return lambda seconds: options.application_scan(
                params.targets, port, params.scripts_for(port), seconds
            )

        return [for_port(port) for port in params.ports]


PROBE = NmapApplicationScan()

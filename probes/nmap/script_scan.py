"""``NmapScript``: runs named NSE scripts, each from the safe allow-list, on the ports asked for."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from midprobe.capabilities.errors import ProbeParameterError
from midprobe.probes.nmap import options
from midprobe.probes.nmap.common import InvocationPlan, NmapProbe, NmapResult
from midprobe.probes.nmap.options import DEFAULT_PORTS, NmapTargets, ParameterReader, PortList, parse_targets

NmapScriptResult = NmapResult


@dataclass(frozen=True)
class NmapScriptParams:
    targets: NmapTargets
    ports: PortList
    scripts: tuple[str, ...]
    resolve_names: bool
    timing: int
    timeout_s: float


class NmapScript(NmapProbe[NmapScriptParams]):
    topic = "NmapScript"

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> NmapScriptParams:
        reader = ParameterReader(
            self.topic, parameters, ("ports", "scripts", "resolve_names", "timing", "timeout_ms")
        )
        scripts = reader.scripts("scripts")
        if not scripts:
            raise ProbeParameterError("name at least one NSE script", parameter="scripts")
        return NmapScriptParams(
            targets=parse_targets(source),
            ports=reader.ports("ports", DEFAULT_PORTS),
            scripts=scripts,
            resolve_names=reader.boolean("resolve_names", False),
            timing=reader.integer("timing", 4, 0, 5),
            timeout_s=reader.timeout_s(),
        )

    def plan(self, params: NmapScriptParams) -> Sequence[InvocationPlan]:
        return [
            lambda seconds: options.script_scan(
                params.targets,
                params.ports,
                params.scripts,
                resolve_names=params.resolve_names,
                timing=params.timing,
                timeout_s=seconds,
            )
        ]


PROBE = NmapScript()

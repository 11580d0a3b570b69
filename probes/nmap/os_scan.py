"""``NmapOSScan``: OS detection (``-O``); every OS match nmap lists, best first, each with its CMDB class."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from midprobe.probes.nmap import options
from midprobe.probes.nmap.common import InvocationPlan, NmapProbe, NmapResult
from midprobe.probes.nmap.options import DEFAULT_PORTS, NmapTargets, ParameterReader, PortList, parse_targets

NmapOSScanResult = NmapResult


@dataclass(frozen=True)
class NmapOSScanParams:
    targets: NmapTargets
    ports: PortList
    guess: bool  # --osscan-guess
    limit: bool  # --osscan-limit
    max_tries: int | None
    resolve_names: bool
    timing: int
    timeout_s: float


class NmapOSScan(NmapProbe[NmapOSScanParams]):
    topic = "NmapOSScan"
    classify = True

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> NmapOSScanParams:
        reader = ParameterReader(
            self.topic,
            parameters,
            (
                "ports",
                "osscan_guess",
                "osscan_limit",
                "max_os_tries",
                "resolve_names",
                "timing",
                "timeout_ms",
            ),
        )
        tries = reader.integer("max_os_tries", 0, 1, 5)
        return NmapOSScanParams(
            targets=parse_targets(source),
            ports=reader.ports("ports", DEFAULT_PORTS),
            guess=reader.boolean("osscan_guess", False),
            limit=reader.boolean("osscan_limit", False),
            max_tries=tries or None,
            resolve_names=reader.boolean("resolve_names", False),
            timing=reader.integer("timing", 4, 0, 5),
            timeout_s=reader.timeout_s(),
        )

    def plan(self, params: NmapOSScanParams) -> Sequence[InvocationPlan]:
        return [
            lambda seconds: options.os_scan(
                params.targets,
                params.ports,
                guess=params.guess,
                limit=params.limit,
                max_tries=params.max_tries,
                resolve_names=params.resolve_names,
                timing=params.timing,
                timeout_s=seconds,
            )
        ]


PROBE = NmapOSScan()

"""What every Nmap topic shares: the result type and the run/encode half of the probe contract.

A topic module only says which parameters it takes (``parse_params``) and which nmap invocations they
become (``plan``); running them, checking targets and encoding the results happen here, once.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, Protocol, TypeVar

from midprobe.capabilities.errors import ProbeTimeout
from midprobe.probes.base import ProbeContext
from midprobe.probes.nmap.encode import encode_scan
from midprobe.probes.nmap.engine import NmapRun, check_targets, run_nmap
from midprobe.probes.nmap.options import NmapInvocation, NmapTargets


class NmapParams(Protocol):
    """The fields every Nmap topic's parameters have."""

    @property
    def targets(self) -> NmapTargets: ...

    @property
    def timeout_s(self) -> float: ...


ParamsT = TypeVar("ParamsT", bound=NmapParams)

#: Builds one invocation from the seconds left when its turn comes.
InvocationPlan = Callable[[float], NmapInvocation]


@dataclass(frozen=True)
class NmapResult:
    """What an Nmap topic found: one parsed run per nmap invocation (one per port for the application scan)."""

    topic: str
    targets: str
    runs: tuple[NmapRun, ...]


class NmapProbe(Generic[ParamsT]):
    """Base of the Nmap topics; subclasses set ``topic`` and implement ``parse_params`` and ``plan``."""

    topic: ClassVar[str]
    required_capabilities: tuple[str, ...] = ("Nmap",)
    #: Add the CMDB class (from the OS matches) to each live host in the result.
    classify: ClassVar[bool] = False

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> ParamsT:
        raise NotImplementedError

    def plan(self, params: ParamsT) -> Sequence[InvocationPlan]:
        """The invocations a request becomes (pure)."""
        raise NotImplementedError

    async def run(self, params: ParamsT, context: ProbeContext) -> NmapResult:
        check_targets(params.targets, context.policy)
        budget = min(params.timeout_s, context.remaining())
        if budget <= 0:
            raise ProbeTimeout(f"{self.topic} of {params.targets}", 0.0)
        runs = await run_nmap(self.plan(params), deadline=time.monotonic() + budget, topic=self.topic)
        return NmapResult(topic=self.topic, targets=str(params.targets), runs=runs)

    def encode_results(self, result: NmapResult) -> Sequence[ET.Element]:
        return [
            encode_scan(run.scan, topic=result.topic, label=run.label, classify=self.classify)
            for run in result.runs
        ]

"""One stage, one probe: running a registered probe object by topic, and the streaming port scan.

``start_port_scan`` is how ``midprobe scan`` runs its port scan: the ``Shazzam`` probe's streaming
entry point (``scan``), which yields hosts as they finish instead of one result at the end (an ECC
answer comes once, at the end). The scan's other stages are ECC requests to its embedded agent
(``runner/scan/pipeline.py``). ``run_probe`` hands typed ``...Params`` and a ``ProbeContext`` to the
probe registered under a topic, with the agent's capability check (``midprobe sweep`` runs
``HostSweep`` this way).
"""

from __future__ import annotations

from typing import TypeVar

from midprobe.capabilities.errors import MissingCapability
from midprobe.probes.base import AnyProbe, ProbeContext
from midprobe.probes.registry import ProbeRegistry
from midprobe.probes.shazzam import TOPIC as SHAZZAM
from midprobe.probes.shazzam import PortScan, PortScanProbe, ShazzamParams

__all__ = ["run_probe", "start_port_scan"]

ResultT = TypeVar("ResultT")


def _probe(registry: ProbeRegistry, topic: str, context: ProbeContext) -> AnyProbe:
    """The probe of ``topic``; as the agent does, one needing a capability (``Nmap``) only when
    ``context`` carries it."""
    probe = registry.get(topic)
    for capability in probe.required_capabilities:
        if capability not in context.capabilities:
            raise MissingCapability(topic, capability)
    return probe


async def run_probe(
    registry: ProbeRegistry,
    topic: str,
    params: object,
    context: ProbeContext,
    result_type: type[ResultT],
) -> ResultT:
    """Run the probe of ``topic`` with ``params`` (its own Params type) and return its typed result.

    As the agent does, a probe needing a capability (``Nmap``) runs only when ``context`` carries it.
    """
    result = await _probe(registry, topic, context).run(params, context)
    if not isinstance(result, result_type):
        raise TypeError(f"the {topic} probe returned {type(result).__name__}, not {result_type.__name__}")
    return result


async def start_port_scan(registry: ProbeRegistry, params: ShazzamParams, context: ProbeContext) -> PortScan:
    """The registry's ``Shazzam`` probe, prepared to stream ``params``'s port scan (``ShazzamProbe.scan``):
    the targets resolved and checked, nothing sent until the scan is iterated."""
    probe = _probe(registry, SHAZZAM, context)
    if not isinstance(probe, PortScanProbe):
        raise TypeError(f"the {SHAZZAM} probe {type(probe).__name__} has no streaming entry point (scan)")
    return await probe.scan(params, context)

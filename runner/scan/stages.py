"""One stage, one probe: running a registered probe object by topic, in this process.

``run_probe`` hands typed ``...Params`` and a ``ProbeContext`` to the probe registered under a topic,
with the agent's capability check (``midprobe sweep`` runs ``HostSweep`` this way). ``midprobe
scan`` runs none of its stages here: they are ECC requests to its embedded agent
(``runner/scan/pipeline.py``).
"""

from __future__ import annotations

from typing import TypeVar

from midprobe.capabilities.errors import MissingCapability
from midprobe.probes.base import AnyProbe, ProbeContext
from midprobe.probes.registry import ProbeRegistry

__all__ = ["run_probe"]

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

"""One stage, one probe: how ``midprobe scan`` (and any phase built on the probes) runs a probe by topic.

A stage builds the probe's typed ``...Params`` and hands them, with a ``ProbeContext``, to the probe
object registered under the topic (``probes/registry.py``, the same objects the agent runs), so
validation, the safety policy and the deadline have one code path (docs/scan.md).
"""

from __future__ import annotations

from typing import TypeVar

from midprobe.capabilities.errors import MissingCapability
from midprobe.probes.base import ProbeContext
from midprobe.probes.registry import ProbeRegistry

__all__ = ["run_probe"]

ResultT = TypeVar("ResultT")


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
    probe = registry.get(topic)
    for capability in probe.required_capabilities:
        if capability not in context.capabilities:
            raise MissingCapability(topic, capability)
    result = await probe.run(params, context)
    if not isinstance(result, result_type):
        raise TypeError(f"the {topic} probe returned {type(result).__name__}, not {result_type.__name__}")
    return result

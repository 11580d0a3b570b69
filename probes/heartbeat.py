"""``HeartbeatProbe``: proves the agent is alive; answered with ``result_code="0"``."""

from __future__ import annotations

import platform
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from midprobe.probes.base import ProbeContext

_STARTED = time.time()


@dataclass(frozen=True)
class HeartbeatParams:
    """A heartbeat takes no parameters."""


@dataclass(frozen=True)
class HeartbeatResult:
    agent_name: str
    hostname: str
    python_version: str
    uptime_s: float
    capabilities: tuple[str, ...]


class HeartbeatProbe:
    topic = "HeartbeatProbe"
    required_capabilities: tuple[str, ...] = ()

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> HeartbeatParams:
        return HeartbeatParams()

    async def run(self, params: HeartbeatParams, context: ProbeContext) -> HeartbeatResult:
        return HeartbeatResult(
            agent_name=context.agent_name,
            hostname=platform.node(),
            python_version=platform.python_version(),
            uptime_s=round(time.time() - _STARTED, 3),
            capabilities=tuple(sorted(context.capabilities)),
        )

    def encode_results(self, result: HeartbeatResult) -> Sequence[ET.Element]:
        element = ET.Element("result")
        heartbeat = ET.SubElement(
            element,
            "heartbeat",
            agent=result.agent_name,
            hostname=result.hostname,
            python_version=result.python_version,
            uptime_s=f"{result.uptime_s:g}",
        )
        for name in result.capabilities:
            ET.SubElement(heartbeat, "capability", name=name)
        return [element]


PROBE = HeartbeatProbe()

"""A probe that only waits, for tests of the agent's mechanics (leases, kills, pools).

The agent, the queue and the runner under test are the real ones; only the work is
replaced by a sleep so a test can kill or stop an agent while work is in flight.
Run as a script it starts a real agent whose registry also holds this probe.
"""

from __future__ import annotations

import asyncio
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from midprobe.probes.base import ProbeContext
from midprobe.probes.registry import ProbeRegistry, default_registry


@dataclass(frozen=True)
class SleepParams:
    seconds: float


class SleepProbe:
    topic = "TestSleep"
    required_capabilities: tuple[str, ...] = ()

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> SleepParams:
        return SleepParams(float(parameters.get("seconds", "0")))

    async def run(self, params: SleepParams, context: ProbeContext) -> float:
        await asyncio.sleep(params.seconds)
        return params.seconds

    def encode_results(self, result: float) -> Sequence[ET.Element]:
        element = ET.Element("result")
        element.set("slept", f"{result:g}")
        return [element]


def registry_with_sleep() -> ProbeRegistry:
    registry = default_registry()
    registry.register(SleepProbe())
    return registry


def main(argv: list[str]) -> None:
    """``slow_probe.py NAME QUEUE_URL LEASE_SECONDS``: a real agent that also knows TestSleep."""
    from midprobe.runner.agent import logs
    from midprobe.runner.agent.daemon import Agent, AgentTimings
    from midprobe.runner.agent.limits import PoolSizes
    from midprobe.runner.agent.probe_runner import AgentIdentity, ProbeRunner
    from midprobe.runner.queue.base import AgentRegistration
    from midprobe.runner.queue.url import open_queue

    name, url, lease = argv[0], argv[1], float(argv[2])
    logs.configure("info")

    async def run() -> None:
        with open_queue(url) as queue:
            runner = ProbeRunner(registry=registry_with_sleep(), identity=AgentIdentity(name))
            timings = AgentTimings(
                poll_idle_seconds=0.2,
                poll_busy_seconds=0.2,
                lease_seconds=lease,
                registry_heartbeat_seconds=1.0,
            )
            agent = Agent(queue, runner, AgentRegistration(name), timings=timings, pools=PoolSizes())
            await agent.run(once=False)

    asyncio.run(run())


if __name__ == "__main__":
    main(sys.argv[1:])

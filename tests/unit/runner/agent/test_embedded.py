"""The embedded agent: a request asked in-process is answered by the real agent over a private queue."""

from __future__ import annotations

import asyncio

import pytest

from midprobe.probes.registry import ProbeRegistry
from midprobe.probes.safety import TargetPolicy
from midprobe.runner.agent.embedded import Answer, EmbeddedAgent
from midprobe.runner.agent.limits import PoolSizes
from midprobe.runner.agent.probe_runner import AgentIdentity, ProbeRunner
from tests.unit.runner.agent.test_probe_runner import EchoProbe, NeedsNmapProbe

#: Seconds any one test may take (a lost wake-up would otherwise hang until the poll timer).
BOUND = 10.0


def _runner(*, capabilities: frozenset[str] = frozenset()) -> ProbeRunner:
    registry = ProbeRegistry()
    registry.register(EchoProbe())
    registry.register(NeedsNmapProbe())
    return ProbeRunner(
        registry=registry,
        identity=AgentIdentity(name="embedded-test", capabilities=capabilities),
        policy=TargetPolicy.lab(),
    )


def _ask_all(requests: list[tuple[str, str, dict[str, str]]], runner: ProbeRunner) -> list[Answer]:
    async def run() -> list[Answer]:
        async with EmbeddedAgent(runner, pools=PoolSizes(1, 1, 8)) as agent:
            return await asyncio.gather(
                *(agent.ask(topic, source, given) for topic, source, given in requests)
            )

    return asyncio.run(asyncio.wait_for(run(), BOUND))


def test_requests_asked_at_once_are_each_answered_with_their_own_result() -> None:
    sources = [f"198.18.0.{n}" for n in range(10, 30)]
    answers = _ask_all([("Echo", source, {"delay": "0.01"}) for source in sources], _runner())
    assert [answer.error for answer in answers] == [None] * len(sources)
    echoed = [answer.payload.results[0].findtext("echo") for answer in answers]
    assert echoed == sources
    assert all(answer.payload.echoed("delay") == "0.01" for answer in answers)


def test_the_agent_s_checks_answer_with_an_error_instead_of_running() -> None:
    outside, needs_nmap, unknown = _ask_all(
        [("Echo", "192.0.2.1", {}), ("NeedsNmap", "198.18.0.10", {}), ("Nope", "198.18.0.10", {})],
        _runner(),
    )
    assert "192.0.2.1" in (outside.error or "")  # the runner's policy
    assert "Nmap capability" in (needs_nmap.error or "")
    assert "Nope" in (unknown.error or "")


def test_a_capability_the_agent_carries_lets_the_probe_run() -> None:
    (answer,) = _ask_all([("NeedsNmap", "198.18.0.10", {})], _runner(capabilities=frozenset({"Nmap"})))
    assert answer.error is None


def test_a_request_s_own_time_out_cuts_its_probe() -> None:
    async def run() -> Answer:
        async with EmbeddedAgent(_runner()) as agent:
            return await agent.ask("Echo", "198.18.0.10", {"delay": "30"}, timeout_seconds=0.2)

    answer = asyncio.run(asyncio.wait_for(run(), BOUND))
    assert "Echo" in (answer.error or "")


def test_a_block_that_asks_nothing_stops_its_agent_at_once() -> None:
    async def run() -> None:
        async with EmbeddedAgent(_runner()):
            pass

    asyncio.run(asyncio.wait_for(run(), BOUND))  # a lost stop request would wait for the poll timer


def test_asking_outside_the_block_is_a_programming_error() -> None:
    agent = EmbeddedAgent(_runner())

    with pytest.raises(AssertionError, match="outside its async with block"):
        asyncio.run(agent.ask("Echo", "198.18.0.10", {}))


def test_a_private_queue_keeps_no_request_once_its_answer_is_read() -> None:
    async def run() -> int:
        async with EmbeddedAgent(_runner(), pools=PoolSizes(1, 1, 8)) as agent:
            await asyncio.gather(*(agent.ask("Echo", f"198.18.0.{n}", {}) for n in range(10, 60)))
            queue = agent._private
            assert queue is not None
            return len(await asyncio.to_thread(queue.list))

    assert asyncio.run(asyncio.wait_for(run(), BOUND)) == 0  # a /16 scan holds no records in memory

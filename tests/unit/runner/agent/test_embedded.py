"""The embedded agent: a request asked in-process is answered by the real agent over a private queue."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from midprobe.probes.registry import ProbeRegistry
from midprobe.probes.safety import TargetPolicy
from midprobe.runner.agent.embedded import ABANDONED, Answer, EmbeddedAgent
from midprobe.runner.agent.limits import PoolSizes
from midprobe.runner.agent.probe_runner import AgentIdentity, ProbeRunner
from midprobe.runner.discovery.readers import read_port_scan
from midprobe.runner.queue.url import open_queue
from tests.support.table_engine import TableEngine, table_registry
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


# --- an answer in pages as the probe goes (the scan's port scan) ------------------------------------

PAGED = {"ports": "22", "scanners": "GenericTCP", "page_wait_ms": "5", "page_items": "4", "queue_size": "4"}


def _shazzam_runner(engine: TableEngine) -> ProbeRunner:
    return ProbeRunner(
        registry=table_registry(engine),
        identity=AgentIdentity(name="embedded-test"),
        policy=TargetPolicy.lab(),
        probe_timeout_seconds=math.inf,
    )


def test_a_streamed_answer_comes_in_pages_and_the_scan_waits_for_the_reader_to_start_it() -> None:
    engine = TableEngine({"198.18.0.12": (22,)}, refused=())

    async def run() -> tuple[int, list[Answer]]:
        async with EmbeddedAgent(_shazzam_runner(engine)) as agent:
            pages = await agent.ask_pages("Shazzam", "198.18.0.10-17", PAGED)
            first = await pages.next()
            assert first is not None
            consumed_when_prepared = engine.consumed
            read = [first]
            while (page := await pages.next()) is not None:
                read.append(page)
            await pages.aclose()
            return consumed_when_prepared, read

    consumed, read = asyncio.run(asyncio.wait_for(run(), BOUND))
    assert consumed == 0  # the first page is the prepared scan: nothing was sent before it was read
    head = read_port_scan(read[0].payload)
    assert (head.engine, head.hosts_scanned, head.hosts_done, head.hosts) == ("table", 8, 0, ())
    assert [page.payload.page for page in read] == list(range(1, len(read) + 1))
    assert [page.payload.last_page for page in read] == [False] * (len(read) - 1) + [True]
    hosts = [host.ip for page in read for host in read_port_scan(page.payload).hosts]
    assert hosts == ["198.18.0.12"]
    assert read_port_scan(read[-1].payload).hosts_done == 8
    assert all(page.error is None for page in read)


def test_a_slow_reader_holds_the_streamed_probe_back_and_leaving_stops_it(tmp_path: Path) -> None:
    engine = TableEngine({}, refused=(22,))  # every address alive: a host per address
    url = f"sqlite:///{tmp_path}/ecc.db"
    ahead: list[int] = []

    async def run() -> str:
        async with EmbeddedAgent(_shazzam_runner(engine), queue_url=url) as agent:
            pages = await agent.ask_pages("Shazzam", "198.18.0.0/16", PAGED)
            reported = 0
            for _ in range(6):
                page = await pages.next()
                assert page is not None
                reported += len(read_port_scan(page.payload).hosts)
                await asyncio.sleep(0.05)  # a slow reader
                ahead.append(engine.consumed - reported)
            await pages.aclose()
            return pages.record.sys_id

    sys_id = asyncio.run(asyncio.wait_for(run(), BOUND))
    # Ahead of the reader: the scan's own queue (4), the page the agent may store ahead and the one
    # being filled (4 hosts each), and the few hosts between them.
    assert max(ahead) <= 4 + 4 + 4 + 3
    assert engine.closed.is_set(), "the engine was left running"
    with open_queue(url) as queue:
        output = queue.get(sys_id)
        answers = queue.results_of(sys_id)
    assert output is not None
    assert output.state == "error"  # closed, never to be run again
    assert answers[-1].error_string == ABANDONED
    assert [record.error_string for record in answers[:-1]] == [""] * (len(answers) - 1)


def test_a_streamed_request_s_bad_target_is_its_first_and_last_page() -> None:
    engine = TableEngine({})

    async def run() -> list[Answer]:
        async with EmbeddedAgent(_shazzam_runner(engine)) as agent:
            pages = await agent.ask_pages("Shazzam", "192.0.2.1", PAGED)
            read = []
            while (page := await pages.next()) is not None:
                read.append(page)
            await pages.aclose()
            return read

    (only,) = asyncio.run(asyncio.wait_for(run(), BOUND))
    assert "192.0.2.1" in (only.error or "")
    assert engine.chosen == []

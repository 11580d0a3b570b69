"""ServiceNow's ECC rules end to end over HTTPS: two real agents, each on its own ``HttpsQueue``
to one instance (in process, through ``AsgiBridge``; its queue on SQLite and on PostgreSQL), run work for ``mid.server.*`` once each,
send a large result in pages that close its output once, and report ``queue.stats``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from midprobe.runner.agent.daemon import Agent, AgentTimings
from midprobe.runner.ecc.builders import new_input_record, new_output_record
from midprobe.runner.ecc.pages import merge_pages
from midprobe.runner.ecc.payload import decode_input_payload
from midprobe.runner.instance.api import create_app
from midprobe.runner.instance.auth import UserStore
from midprobe.runner.instance.wake import WorkSignal
from midprobe.runner.queue.base import EccQueue
from midprobe.runner.queue.https import HttpsQueue
from midprobe.runner.queue.url import sqlite_url
from tests.instance.conftest import AsgiBridge, https_agent, remote_queue
from tests.support.trust import trust_every_agent

BASE = "https://instance.test"
TIMINGS = AgentTimings(
    poll_idle_seconds=0.1, poll_busy_seconds=0.1, lease_seconds=30, queue_stats_seconds=0.2, page_items=3
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The instance's queue: a SQLite file, or a database on the private PostgreSQL."""
    if request.param == "sqlite":
        return trust_every_agent(sqlite_url(tmp_path / "ecc.db"))
    return trust_every_agent(str(request.getfixturevalue("postgres_database_url")))


def _agent(name: str, bridge: AsgiBridge, spool: Path) -> tuple[Agent, HttpsQueue]:
    queue = remote_queue(bridge, spool)
    return https_agent(name, queue, TIMINGS), queue


@pytest.mark.timeout(60)
def test_every_mid_work_reaches_both_agents_and_a_paged_result_closes_its_output_once(
    queue: EccQueue, users: UserStore, tmp_path: Path
) -> None:
    bridge = AsgiBridge(create_app(queue, users, signal=WorkSignal(check_seconds=0.05)))
    (first, first_queue), (second, second_queue) = (
        _agent(name, bridge, tmp_path / name) for name in ("lab1", "lab2")
    )
    everyone = new_output_record(agent="*", topic="HeartbeatProbe")
    big = new_output_record(agent="lab1", topic="TestHosts", parameters={"count": "7"})

    def copies_answered() -> bool:
        copies = queue.copies_of(everyone.sys_id)
        return len(copies) == 2 and all(copy.state == "processed" for copy in copies)

    def settled() -> bool:
        stats = {record.agent for record in queue.list(topic="queue.stats")}
        done = queue.get(big.sys_id)
        return (
            copies_answered()
            and done is not None
            and done.state == "processed"
            and stats == {"mid.server.lab1", "mid.server.lab2"}
        )

    async def scenario() -> bool:
        tasks = [asyncio.create_task(agent.run(install_signal_handlers=False)) for agent in (first, second)]
        deadline = time.monotonic() + 30
        for _ in range(600):  # until both have registered
            if len(await asyncio.to_thread(queue.list_agents)) == 2 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        await asyncio.to_thread(queue.enqueue_many, [everyone, big])
        for _ in range(600):
            if (ok := await asyncio.to_thread(settled)) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        for agent in (first, second):
            agent.request_stop()
        await asyncio.gather(*tasks)
        return ok

    try:
        assert asyncio.run(scenario()), (
            "work for every MID, the paged result and queue.stats did not all arrive"
        )
    finally:
        first_queue.close()
        second_queue.close()

    # mid.server.*: one copy per agent, answered by that agent, the original closed without a run.
    copies = queue.copies_of(everyone.sys_id)
    assert [copy.agent for copy in copies] == ["mid.server.lab1", "mid.server.lab2"]
    for copy in copies:
        (answer,) = queue.results_of(copy.sys_id)
        assert answer.agent == copy.agent
    assert queue.results_of(everyone.sys_id) == []

    # 7 hosts at 3 a page: pages 1, 2, 3 (the last marked), stored once each, read back whole.
    pages = queue.results_of(big.sys_id)
    decoded = [decode_input_payload(page.payload) for page in pages]
    assert [(page.page, page.last_page) for page in decoded] == [(1, False), (2, False), (3, True)]
    hosts = [host.get("ip") for result in merge_pages(decoded).results for host in result.iter("host")]
    assert hosts == [f"198.18.0.{index}" for index in range(1, 8)]
    assert first.stats.answered == 2  # its copy and the paged output, each counted once
    assert second.stats.answered == 1

    (stats, *_) = queue.list(topic="queue.stats", agent="lab1")
    pools = decode_input_payload(stats.payload).results[0]
    assert [pool.get("name") for pool in pools.iter("pool")] == ["interactive", "expedited", "standard"]


def test_a_page_resent_after_a_lost_reply_is_stored_once(
    queue: EccQueue, users: UserStore, tmp_path: Path
) -> None:
    bridge = AsgiBridge(create_app(queue, users))
    _, remote = _agent("lab1", bridge, tmp_path / "spool")
    output = new_output_record(agent="lab1", topic="TestHosts")
    queue.enqueue(output)
    pages = [
        new_input_record(output, agent="lab1", results=[], probe_time_ms=1, page=(n, n == 2)) for n in (1, 2)
    ]
    with remote:
        bridge.lose_replies = 1  # page 1 is stored, its reply lost: the client sends it again
        assert remote.complete_many([(output.sys_id, page) for page in pages]) == [True, True]
        assert remote.send_input(pages[0].with_changes(response_to=None, sys_id="0" * 32)) is True
    assert [r.sys_id for r in queue.results_of(output.sys_id)] == [page.sys_id for page in pages]
    done = queue.get(output.sys_id)
    assert done is not None
    assert done.state == "processed"

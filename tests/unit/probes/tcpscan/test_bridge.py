"""The one engine-to-asyncio bridge (``scan_async``): bounded, streaming, stoppable, errors passed on.

The table engine stands in for the port scanner (no packets); what is under test is the bridge.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from midprobe.capabilities.errors import NetworkError
from midprobe.probes.targets import parse_targets
from midprobe.probes.tcpscan.engine import scan_async
from tests.support.table_engine import TableEngine


def test_the_engine_runs_at_most_queue_size_hosts_ahead_of_the_consumer() -> None:
    engine = TableEngine({})

    async def run() -> list[int]:
        hosts = scan_async(parse_targets("10.0.0.0/16"), (22,), engine=engine, queue_size=16)
        ahead = []
        try:
            for taken in range(1, 6):
                await anext(hosts)
                await asyncio.sleep(0.05)  # a slow consumer: the engine must wait for it
                ahead.append(engine.consumed - taken)
        finally:
            await hosts.aclose()
        return ahead

    # At most the queue ahead, plus the host in the engine's hand waiting for room.
    assert max(asyncio.run(run())) <= 16 + 1
    assert engine.closed.is_set(), "leaving the loop did not stop the engine"
    assert engine.consumed < 100


def test_every_host_arrives_and_the_thread_carries_the_name_given() -> None:
    engine = TableEngine({})
    names: list[str] = []

    async def run() -> list[str]:
        found = []
        async for host in scan_async(
            parse_targets("198.18.0.0/28"),
            (22,),
            engine=engine,
            queue_size=2,
            thread_name="midprobe-test-bridge",
        ):
            names.extend(t.name for t in threading.enumerate() if t.name == "midprobe-test-bridge")
            found.append(str(host.address))
        return found

    assert asyncio.run(run()) == [f"198.18.0.{n}" for n in range(16)]
    assert names
    assert not [t for t in threading.enumerate() if t.name == "midprobe-test-bridge"]


def test_an_engine_failure_is_raised_in_the_consumer() -> None:
    engine = TableEngine({}, fail_after=3)

    async def run() -> int:
        seen = 0
        async for _ in scan_async(parse_targets("198.18.0.0/24"), (22,), engine=engine):
            seen += 1
        return seen

    with pytest.raises(NetworkError, match="the network went away"):
        asyncio.run(run())
    assert engine.closed.is_set()

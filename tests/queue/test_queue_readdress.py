"""``readdress``: cluster failover moves waiting work to another MID, never work already claimed or done."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from midprobe.runner.ecc.builders import new_input_record, new_output_record
from midprobe.runner.queue import EccQueue, open_queue


@pytest.fixture
def queue(queue_url: str) -> Iterator[EccQueue]:
    with open_queue(queue_url) as opened:
        yield opened


def test_ready_work_moves_claimed_and_done_work_stays(queue: EccQueue) -> None:
    ready, claimed, done = (new_output_record(agent="east", topic="HeartbeatProbe") for _ in range(3))
    queue.enqueue_many([ready, claimed, done])
    assert {r.sys_id for r in queue.claim("east", 2, 300.0)} == {ready.sys_id, claimed.sys_id}
    queue.release("east", [ready.sys_id])
    queue.complete(done.sys_id, new_input_record(done, agent="mid.server.east", results=[], probe_time_ms=1))

    assert queue.readdress(ready.sys_id, "west", "north") is False  # not addressed to west
    assert queue.readdress(ready.sys_id, "east", "west") is True
    assert queue.readdress(claimed.sys_id, "east", "west") is False  # under way: not moved
    assert queue.readdress(done.sys_id, "east", "west") is False
    moved = queue.get(ready.sys_id)
    assert moved is not None
    assert moved.agent == "mid.server.west"
    assert [r.sys_id for r in queue.claim("west", 5, 30.0)] == [ready.sys_id]
    assert queue.claim("east", 5, 30.0) == []

"""A real agent on an ``HttpsQueue`` to the instance (in process, through ``AsgiBridge``):
its claim round, and a page of a multi-page result that the instance refuses or loses."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from midprobe.capabilities.errors import QueueError
from midprobe.runner.agent.daemon import AgentStats, AgentTimings
from midprobe.runner.ecc.builders import new_output_record
from midprobe.runner.ecc.payload import decode_input_payload
from midprobe.runner.ecc.record import PRIORITIES, EccRecord
from midprobe.runner.instance.api import create_app
from midprobe.runner.instance.auth import UserStore
from midprobe.runner.queue.base import EccQueue, PoolClaim
from midprobe.runner.queue.spool import ResultSpool
from tests.instance.conftest import AsgiBridge, https_agent, remote_queue
from tests.support.wrapped_queue import WrappedQueue

CLAIMS = "POST /api/midprobe/v1/claims"
TIMINGS = AgentTimings(poll_idle_seconds=0.1, poll_busy_seconds=0.1, lease_seconds=30, page_items=3)


def _run_once(bridge: AsgiBridge, spool: Path) -> AgentStats:
    with remote_queue(bridge, spool) as queue:
        agent = https_agent("mid1", queue, TIMINGS)
        return asyncio.run(agent.run(once=True, install_signal_handlers=False))


def _claim_rounds(bridge: AsgiBridge) -> list[list[int]]:
    """The priorities each claim request asked for, in order."""
    return [
        [pool["priority"] for pool in json.loads(body)["pools"]]
        for request, body in zip(bridge.requests, bridge.bodies, strict=True)
        if request == CLAIMS
    ]


def test_agent_once_asks_each_pool_once_a_round_in_one_request(
    queue: EccQueue, users: UserStore, tmp_path: Path
) -> None:
    bridge = AsgiBridge(create_app(queue, users))
    assert _run_once(bridge, tmp_path / "idle").claimed == 0
    assert _claim_rounds(bridge) == [list(PRIORITIES)], "nothing ready: one round, every pool once, then done"

    outputs = [new_output_record(agent="mid1", topic="HeartbeatProbe", priority=p) for p in PRIORITIES]
    queue.enqueue_many(outputs)
    bridge = AsgiBridge(create_app(queue, users))
    stats = _run_once(bridge, tmp_path / "busy")

    assert stats.answered == 3
    rounds = _claim_rounds(bridge)
    assert rounds[-1] == list(PRIORITIES), "it ends on a round that asked every pool"
    assert all(sorted(set(pools)) == pools for pools in rounds), "no pool asked twice in a round"
    assert "POST /api/midprobe/v1/claim" not in bridge.requests, "no claim request per pool"


def test_agent_once_does_not_ask_again_at_once_the_pools_a_round_found_dry(
    queue: EccQueue, users: UserStore, tmp_path: Path
) -> None:
    # More standard work than the standard pool holds (25), none of the other priorities.
    queue.enqueue_many([new_output_record(agent="mid1", topic="HeartbeatProbe") for _ in range(40)])
    bridge = AsgiBridge(create_app(queue, users))
    # Polls only when a run frees a slot (the busy poll is far off): each round is the drain's own.
    patient = AgentTimings(poll_idle_seconds=30, poll_busy_seconds=30, lease_seconds=60)
    with remote_queue(bridge, tmp_path / "spool") as remote:
        agent = https_agent("mid1", remote, patient)
        stats = asyncio.run(agent.run(once=True, install_signal_handlers=False))

    assert stats.answered == 40
    rounds = _claim_rounds(bridge)
    assert all(2 in pools for pools in rounds), (
        f"a round asked only pools the round before found dry, while the standard pool was full: {rounds}"
    )
    assert len(rounds) <= 5, f"40 records in rounds of up to 25, then one that finds nothing: {rounds}"


class FailsExpedited(WrappedQueue):
    """The instance's real queue, whose claims for the expedited pool fail (an outage)."""

    def claim(self, *args: object, **kwargs: object) -> list[EccRecord]:
        if kwargs.get("priorities") == (1,):
            raise QueueError(f"queue {self._queue.url}: connection reset")
        return super().claim(*args, **kwargs)


def test_a_pool_whose_claim_fails_ends_the_round_and_what_was_claimed_comes_back(
    queue: EccQueue, users: UserStore, tmp_path: Path
) -> None:
    outputs = [new_output_record(agent="mid1", topic="HeartbeatProbe", priority=p) for p in PRIORITIES]
    queue.enqueue_many(outputs)
    bridge = AsgiBridge(create_app(FailsExpedited(queue), users))  # type: ignore[arg-type]
    with remote_queue(bridge, tmp_path / "spool") as remote:
        claimed, failed = remote.claim_pools("mid1", [PoolClaim(p, 5) for p in PRIORITIES], 60.0)
    assert [record.sys_id for record in claimed] == [outputs[0].sys_id]  # type: ignore[union-attr]
    assert isinstance(failed, QueueError)
    assert str(failed) == (
        "queue https://instance.test: the instance failed: Service Unavailable: the ECC queue: connection reset"
    )
    assert [record.state for record in map(queue.get, (o.sys_id for o in outputs))] == [  # type: ignore[union-attr]
        "processing",
        "ready",
        "ready",
    ], "the standard pool was not asked after the expedited one failed"


@pytest.mark.timeout(60)
def test_a_page_the_instance_refuses_is_answered_by_one_error_page_that_ends_the_output(
    queue: EccQueue, users: UserStore, tmp_path: Path
) -> None:
    # 7 hosts at 3 a page; the 5th host (page 2) is too large for the instance's body limit.
    output = new_output_record(
        agent="mid1", topic="TestHosts", parameters={"count": "7", "padded": "5", "padding": "8000"}
    )
    queue.enqueue(output)
    strict = AsgiBridge(create_app(queue, users, max_body_bytes=6000))

    first = _run_once(strict, tmp_path / "spool")

    results = queue.results_of(output.sys_id)
    pages = [decode_input_payload(page.payload) for page in results]
    assert [(page.page, page.last_page) for page in pages] == [(1, False), (2, True), (3, True)]
    errors = [result.error_string for result in results if result.error_string]
    assert len(errors) == 1, "one error record, in the refused page's place"
    assert "Request entity too large" in errors[0], "it says why"
    assert pages[1].error == errors[0]
    done = queue.get(output.sys_id)
    assert done is not None
    assert done.state == "error", "the output ends at once, not after its lease"
    assert queue.get_lease(output.sys_id) is None
    assert (first.answered, first.duplicates, first.errors) == (0, 0, 1)
    sent = [r for r in strict.requests if "/answer" in r]
    assert len(sent) <= 6, f"the refused page was not sent again and again: {sent}"
    assert ResultSpool(tmp_path / "spool").pending() == [], "a refused page is not resent from the spool"

    # Nothing is left to run again: the next run claims nothing and adds no answer.
    again = _run_once(AsgiBridge(create_app(queue, users)), tmp_path / "spool")

    assert again.claimed == 0
    assert len(queue.results_of(output.sys_id)) == 3


class LosesPageTwo(AsgiBridge):
    """An instance that fails (``503``) every request carrying page 2 of a result, as in an outage."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if b'page=\\"2\\"' in request.read():
            self.requests.append(f"{request.method} {request.url.path} (lost)")
            self.bodies.append(b"")
            return httpx.Response(503, json={"error": {"message": "Service Unavailable"}})
        return super().handle_request(request)


@pytest.mark.timeout(60)
def test_a_page_the_instance_loses_waits_in_the_spool_and_the_lease_not_in_a_loop(
    queue: EccQueue, users: UserStore, tmp_path: Path
) -> None:
    output = new_output_record(agent="mid1", topic="TestHosts", parameters={"count": "7"})
    queue.enqueue(output)
    losing = LosesPageTwo(create_app(queue, users))

    first = _run_once(losing, tmp_path / "spool")

    lost = [r for r in losing.requests if r.endswith("(lost)")]
    assert 0 < len(lost) <= 50, f"page 2 was tried a bounded number of times, not at every poll: {len(lost)}"
    assert queue.results_of(output.sys_id) == [], "the pages go in one request: none is in"
    waiting = queue.get(output.sys_id)
    assert waiting is not None
    assert waiting.state == "processing", "not closed without its page, not released for a re-run at once"
    assert first.queue_errors > 0
    assert first.answered == 0
    assert len(ResultSpool(tmp_path / "spool").pending()) == 3, "the pages wait in the spool"

    # The next run resends the spool before it claims: the output is whole without a re-run.
    again = _run_once(AsgiBridge(create_app(queue, users)), tmp_path / "spool")

    assert again.claimed == 0
    pages = [decode_input_payload(page.payload) for page in queue.results_of(output.sys_id)]
    assert [page.page for page in pages] == [1, 2, 3]
    done = queue.get(output.sys_id)
    assert done is not None
    assert done.state == "processed"


def test_an_instance_without_the_claims_endpoint_gets_a_claim_per_pool(
    queue: EccQueue, users: UserStore, tmp_path: Path
) -> None:
    outputs = [new_output_record(agent="mid1", topic="HeartbeatProbe", priority=p) for p in PRIORITIES]
    queue.enqueue_many(outputs)
    older = create_app(queue, users)
    older.router.routes = [
        route for route in older.routes if getattr(route, "path", "") != "/api/midprobe/v1/claims"
    ]
    bridge = AsgiBridge(older)
    with remote_queue(bridge, tmp_path / "spool") as remote:
        rounds = [remote.claim_pools("mid1", [PoolClaim(p, 5) for p in PRIORITIES], 60.0) for _ in range(2)]
    claimed = [[record.sys_id for record in pool] for pool in rounds[0]]  # type: ignore[union-attr]
    assert claimed == [[output.sys_id] for output in outputs]
    assert rounds[1] == [[], [], []]
    assert bridge.requests.count(CLAIMS) == 1, "asked once, then a claim per pool"
    assert bridge.requests.count("POST /api/midprobe/v1/claim") == 6

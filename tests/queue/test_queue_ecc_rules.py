"""The instance's ECC rules on both backends: work for mid.server.* copied to every Up agent,
multi-page results, the processed time stamped at the claim, inputs an agent sends on its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from midprobe.capabilities.errors import ConfigError
from midprobe.runner.ecc.builders import new_input_record, new_output_record
from midprobe.runner.ecc.record import EccRecord
from midprobe.runner.queue import EccQueue, open_queue
from midprobe.runner.queue.base import AgentRegistration


@pytest.fixture
def queue(queue_url: str) -> Iterator[EccQueue]:
    with open_queue(queue_url) as opened:
        yield opened


def _page(output: EccRecord, number: int, last: bool, agent: str = "lab1") -> EccRecord:
    return new_input_record(output, agent=agent, results=[], probe_time_ms=1, page=(number, last))


# -- mid.server.* ("Probe - All MIDs") ------------------------------------------------------------


def test_work_for_every_mid_is_copied_to_each_up_agent_and_answered_by_each(queue: EccQueue) -> None:
    for name in ("lab1", "lab2"):
        queue.register_agent(AgentRegistration(name=name))
    queue.register_agent(AgentRegistration(name="paused", status="Paused"))
    original = new_output_record(agent="*", topic="HeartbeatProbe", agent_correlator="job-7")
    queue.enqueue(original)

    copies = queue.copies_of(original.sys_id)
    assert [copy.agent for copy in copies] == ["mid.server.lab1", "mid.server.lab2"]  # not the Paused one
    assert len({copy.sys_id for copy in copies} | {original.sys_id}) == 3
    assert {(copy.topic, copy.agent_correlator, copy.payload) for copy in copies} == {
        (original.topic, "job-7", original.payload)
    }
    done = queue.get(original.sys_id)
    assert done is not None
    assert done.state == "processed"
    assert queue.claim("paused", 5, 30.0) == []

    for name in ("lab1", "lab2"):
        (mine,) = queue.claim(name, 5, 30.0)
        assert mine.agent == f"mid.server.{name}"
        assert queue.complete(mine.sys_id, new_input_record(mine, agent=name, results=[], probe_time_ms=1))
    assert {r.state for r in queue.copies_of(original.sys_id)} == {"processed"}


def test_work_for_every_mid_waits_for_an_agent_and_is_never_claimed_itself(queue: EccQueue) -> None:
    original = new_output_record(agent="*", topic="HeartbeatProbe")
    queue.enqueue(original)
    assert queue.claim("lab1", 5, 30.0) == []  # lab1 is not registered: no copy, and no taking the original
    waiting = queue.get(original.sys_id)
    assert waiting is not None
    assert waiting.state == "ready"

    queue.register_agent(AgentRegistration(name="lab1"))
    (mine,) = queue.claim("lab1", 5, 30.0)  # the claim applies the rule the enqueue could not
    assert [copy.sys_id for copy in queue.copies_of(original.sys_id)] == [mine.sys_id]


def test_a_copy_keeps_its_agent_when_its_lease_expires_and_is_never_readdressed(queue: EccQueue) -> None:
    for name in ("lab1", "lab2"):
        queue.register_agent(AgentRegistration(name=name))
    original = new_output_record(agent="*", topic="HeartbeatProbe")
    queue.enqueue(original)
    mine, theirs = queue.copies_of(original.sys_id)
    queue.claim("lab1", 5, 0.01)
    assert [r.sys_id for r in queue.claim("lab2", 5, 30.0)] == [theirs.sys_id]  # never lab1's copy
    assert queue.readdress(mine.sys_id, "lab1", "lab2") is False


def test_a_down_agent_gets_no_copy(queue: EccQueue) -> None:
    queue.register_agent(AgentRegistration(name="lab1"))
    queue.register_agent(AgentRegistration(name="lab2"))
    queue.set_agent_status("lab2", "Down")
    original = new_output_record(agent="*", topic="HeartbeatProbe")
    queue.enqueue(original)
    assert [copy.agent for copy in queue.copies_of(original.sys_id)] == ["mid.server.lab1"]


# -- multi-page results -------------------------------------------------------------------------


def test_an_output_is_processed_only_when_its_last_page_arrives(queue: EccQueue) -> None:
    output = new_output_record(agent="lab1", topic="Shazzam", source="198.18.0.0/24")
    queue.enqueue(output)
    queue.claim("lab1", 1, 60.0)
    first, second, last = (_page(output, n, n == 3) for n in (1, 2, 3))

    assert queue.complete(output.sys_id, first) is True
    assert queue.complete(output.sys_id, second) is True
    waiting = queue.get(output.sys_id)
    assert waiting is not None
    assert waiting.state == "processing"
    assert queue.get_lease(output.sys_id) is not None  # still the agent's while pages come

    assert queue.complete(output.sys_id, last) is True
    done = queue.get(output.sys_id)
    assert done is not None
    assert done.state == "processed"
    assert [r.sys_id for r in queue.results_of(output.sys_id)] == [first.sys_id, second.sys_id, last.sys_id]


def test_a_resent_page_is_stored_once_and_pages_may_arrive_in_any_order(queue: EccQueue) -> None:
    output = new_output_record(agent="lab1", topic="Shazzam")
    queue.enqueue(output)
    first, last = _page(output, 1, False), _page(output, 2, True)

    assert queue.complete_many([(output.sys_id, last), (output.sys_id, last)]) == [True, False]
    waiting = queue.get(output.sys_id)
    assert waiting is not None
    assert waiting.state == "ready"  # the last page came first: page 1 is still missing
    rerun = _page(output, 2, True)  # a re-run's page 2: that page is answered already
    assert queue.complete(output.sys_id, rerun) is False
    assert queue.complete(output.sys_id, first) is True
    assert queue.complete(output.sys_id, first) is False
    done = queue.get(output.sys_id)
    assert done is not None
    assert done.state == "processed"
    assert [r.sys_id for r in queue.results_of(output.sys_id)] == [first.sys_id, last.sys_id]


def test_a_failed_page_makes_the_output_an_error(queue: EccQueue) -> None:
    output = new_output_record(agent="lab1", topic="Shazzam")
    queue.enqueue(output)
    broken = new_input_record(output, agent="lab1", results=[], probe_time_ms=1, error="boom", page=(2, True))
    assert queue.complete_many([(output.sys_id, _page(output, 1, False)), (output.sys_id, broken)]) == [
        True,
        True,
    ]
    done = queue.get(output.sys_id)
    assert done is not None
    assert done.state == "error"


def test_a_malformed_page_marker_is_refused(queue: EccQueue) -> None:
    output = new_output_record(agent="lab1", topic="Shazzam")
    queue.enqueue(output)
    bad = _page(output, 1, True).with_changes(payload='<results probe_time="1" page="0" last_page="true"/>')
    with pytest.raises(ConfigError, match=r"^payload: .*page='0'"):
        queue.complete(output.sys_id, bad)


# -- processed stamped at the claim ---------------------------------------------------------------


def test_processed_is_stamped_at_the_claim_kept_at_the_answer_and_cleared_by_a_release(
    queue: EccQueue,
) -> None:
    output, other = (new_output_record(agent="lab1", topic="HeartbeatProbe") for _ in range(2))
    queue.enqueue_many([output, other])
    assert all(r.processed is None for r in queue.list(queue_side="output"))
    queue.claim("lab1", 2, 60.0)
    claimed = queue.get(output.sys_id)
    assert claimed is not None
    assert claimed.state == "processing"
    assert claimed.processed is not None
    (claim,) = queue.list(topic="queue.processing")
    assert claimed.processed == claim.sys_created_on  # the claim's moment, on the queue's clock

    queue.complete(output.sys_id, new_input_record(output, agent="lab1", results=[], probe_time_ms=1))
    done = queue.get(output.sys_id)
    assert done is not None
    assert done.processed == claimed.processed

    queue.release("lab1", [other.sys_id])
    released = queue.get(other.sys_id)
    assert released is not None
    assert released.processed is None


# -- inputs an agent sends of its own accord -------------------------------------------------------


def test_send_input_stores_an_input_once_and_refuses_answers(queue: EccQueue) -> None:
    stats = EccRecord(agent="lab1", topic="queue.stats", queue="input", name="queue.stats", source="lab1")
    assert queue.send_input(stats) is True
    assert queue.send_input(stats) is False
    assert [r.sys_id for r in queue.list(topic="queue.stats")] == [stats.sys_id]
    output = new_output_record(agent="lab1", topic="HeartbeatProbe")
    with pytest.raises(ConfigError, match=r"^queue: "):
        queue.send_input(new_input_record(output, agent="lab1", results=[], probe_time_ms=1))
    with pytest.raises(ConfigError, match=r"^queue: "):
        queue.send_input(output)


def test_agents_claiming_at_once_each_get_one_copy(queue_url: str) -> None:
    with open_queue(queue_url) as setup:
        originals = [new_output_record(agent="*", topic="HeartbeatProbe") for _ in range(20)]
        setup.enqueue_many(originals)  # no agent yet: the first claims apply the rule
        for name in ("lab1", "lab2", "lab3"):
            setup.register_agent(AgentRegistration(name=name))
    taken: dict[str, list[str]] = {}
    barrier = threading.Barrier(3)

    def claim_all(name: str) -> None:
        mine = taken.setdefault(name, [])
        with open_queue(queue_url) as queue:
            barrier.wait()
            deadline = time.monotonic() + 30
            while len(mine) < len(originals) and time.monotonic() < deadline:
                claimed = queue.claim(name, 100, 60.0)
                mine.extend(record.sys_id for record in claimed)
                if not claimed:  # another claimer is copying the work: its commit wakes us
                    queue.wait_for_work(name, 0.5)

    threads = [threading.Thread(target=claim_all, args=(name,)) for name in ("lab1", "lab2", "lab3")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    with open_queue(queue_url) as queue:
        for original in originals:
            copies = queue.copies_of(original.sys_id)
            assert sorted(copy.agent for copy in copies) == [f"mid.server.lab{n}" for n in (1, 2, 3)]
        for name, mine in taken.items():
            assert len(mine) == len(set(mine)) == len(originals)
            assert {queue.get(sys_id).agent for sys_id in mine} == {f"mid.server.{name}"}  # type: ignore[union-attr]

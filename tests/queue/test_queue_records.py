"""ECC queue behaviour both backends share: records, claiming, leases, results, attachments."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from midprobe.capabilities.errors import ConfigError, QueueError
from midprobe.runner.ecc.builders import new_input_record, new_output_record
from midprobe.runner.ecc.payload import decode_input_payload, decode_queue_processing
from midprobe.runner.ecc.record import SEE_ATTACHMENT, EccRecord, new_sys_id, utc_now
from midprobe.runner.queue import EccQueue, open_queue
from midprobe.runner.queue.base import AgentRegistration
from midprobe.runner.queue.sqlite import SqliteQueue


@pytest.fixture
def queue(queue_url: str) -> Iterator[EccQueue]:
    with open_queue(queue_url) as opened:
        yield opened


def _output(
    agent: str = "lab1", priority: int = 2, source: str = "198.18.0.10", **changes: object
) -> EccRecord:
    record = new_output_record(
        agent=agent, topic="Shazzam", source=source, parameters={"ports": "22"}, priority=priority
    )
    return record.with_changes(**changes) if changes else record


def _answer(output: EccRecord, error: str | None = None) -> EccRecord:
    return new_input_record(output, agent="lab1", results=[], probe_time_ms=5, error=error)


def _claims(queue: EccQueue) -> list[tuple[str, tuple[str, ...]]]:
    return [(r.agent, decode_queue_processing(r.payload)) for r in queue.list(topic="queue.processing")]


def test_queue_satisfies_the_protocol_and_redacts_nothing_for_sqlite(queue: EccQueue, queue_url: str) -> None:
    assert isinstance(queue, EccQueue)
    if queue_url.startswith("sqlite"):
        assert queue.url == queue_url
    else:
        assert ":***@" in queue.url
        assert queue.url != queue_url


def test_enqueue_then_get_returns_every_field_unchanged(queue: EccQueue) -> None:
    record = _output(
        agent_correlator="job-1",
        name="port scan",
        error_string="",
        response_to=new_sys_id(),
        processed=utc_now(),
        payload='<parameters><parameter name="é&lt;" value="a\nb"/></parameters>',
    )
    assert queue.enqueue(record) == record.sys_id
    assert queue.get(record.sys_id) == record
    assert queue.get(new_sys_id()) is None
    with pytest.raises(QueueError, match=rf"a record with sys_id {record.sys_id} already exists"):
        queue.enqueue(record)
    with pytest.raises(ConfigError, match=r"^sys_id: "):
        queue.get("nope")


def test_enqueue_many_is_all_or_nothing(queue: EccQueue) -> None:
    first, second = _output(), _output()
    queue.enqueue(second)
    with pytest.raises(QueueError):
        queue.enqueue_many([first, second])
    assert queue.get(first.sys_id) is None
    assert queue.enqueue_many([]) == []


def test_claim_takes_lowest_priority_number_then_oldest_addressed_to_me_or_everyone(queue: EccQueue) -> None:
    queue.register_agent(AgentRegistration(name="lab1"))
    standard_old, standard_new = _output(priority=2), _output(priority=2)
    expedited = _output(priority=1)
    interactive_for_all = _output(agent="*", priority=0)
    someone_else = _output(agent="lab2", priority=0)
    an_input = _output(priority=0).with_changes(queue="input")
    queue.enqueue_many([standard_old, standard_new, expedited, interactive_for_all, someone_else, an_input])
    taken = [queue.claim("lab1", 1, 30.0) for _ in range(5)]
    (my_copy,) = queue.copies_of(interactive_for_all.sys_id)  # lab1's own copy of the work for everyone
    assert [[r.sys_id for r in batch] for batch in taken] == [
        [my_copy.sys_id],
        [expedited.sys_id],
        [standard_old.sys_id],
        [standard_new.sys_id],
        [],
    ]
    assert all(batch[0].state == "processing" for batch in taken[:4])
    assert queue.claim("mid.server.lab2", 10, 30.0)[0].sys_id == someone_else.sys_id


def test_claim_returns_records_in_order_and_writes_one_queue_processing_input(queue: EccQueue) -> None:
    outputs = [_output(priority=p) for p in (2, 1, 2, 0)]
    queue.enqueue_many(outputs)
    claimed = queue.claim("mid.server.lab1", 10, 30.0)
    assert [r.priority for r in claimed] == [0, 1, 2, 2]
    assert [r.sys_id for r in claimed[2:]] == [outputs[0].sys_id, outputs[2].sys_id]
    (claim,) = queue.list(queue_side="input", topic="queue.processing")
    assert (claim.agent, claim.name, claim.source, claim.state) == (
        "mid.server.lab1",
        "queue.processing",
        "mid.server.lab1",
        "processed",
    )
    assert claim.response_to is None
    assert claim.processed is not None
    assert claim.payload.startswith('<queue.processing output_message_count="4"><sys_id state="processing">')
    assert decode_queue_processing(claim.payload) == tuple(r.sys_id for r in claimed)
    for record in claimed:
        stored = queue.get(record.sys_id)
        assert stored is not None
        assert stored.state == "processing"
        lease = queue.get_lease(record.sys_id)
        assert lease is not None
        assert lease.owner == "mid.server.lab1"
        assert timedelta(seconds=20) < lease.expires_at - utc_now() <= timedelta(seconds=31)
    assert queue.claim("lab1", 10, 30.0) == []
    assert len(queue.list(topic="queue.processing")) == 1  # an empty claim writes nothing


def test_claim_arguments_are_checked(queue: EccQueue) -> None:
    with pytest.raises(ConfigError, match=r"^limit: "):
        queue.claim("lab1", 0, 30.0)
    with pytest.raises(ConfigError, match=r"^lease_seconds: "):
        queue.claim("lab1", 1, 0)
    with pytest.raises(ConfigError, match=r"^agent: mid.server.\* addresses every agent"):
        queue.claim("*", 1, 30.0)
    with pytest.raises(ConfigError, match=r"^agent: "):
        queue.claim("bad name", 1, 30.0)


def test_expired_lease_is_reclaimed_by_another_process_of_the_agent(queue: EccQueue) -> None:
    output = _output(agent="lab1")
    queue.enqueue(output)
    assert [r.sys_id for r in queue.claim("lab1", 5, 0.4, instance="first")] == [output.sys_id]
    assert queue.claim("lab1", 5, 30.0, instance="second") == []  # lease still valid
    time.sleep(0.6)
    (again,) = queue.claim("lab1", 5, 30.0, instance="second")
    assert again.sys_id == output.sys_id
    lease = queue.get_lease(output.sys_id)
    assert lease is not None
    assert lease.owner == "mid.server.lab1"
    assert queue.renew("lab1", [output.sys_id], 30.0, instance="first") == []  # no longer the first's
    assert [agent for agent, _ in _claims(queue)] == ["mid.server.lab1", "mid.server.lab1"]


def test_expired_lease_keeps_the_address(queue: EccQueue) -> None:
    mine = _output(agent="lab1")
    queue.enqueue(mine)
    queue.claim("lab1", 5, 0.2)
    time.sleep(0.4)
    assert queue.claim("lab2", 5, 30.0) == []  # addressed to lab1 only
    assert [r.sys_id for r in queue.claim("lab1", 5, 30.0)] == [mine.sys_id]


def test_renew_extends_the_lease(queue: EccQueue) -> None:
    output = _output(agent="lab1")
    queue.enqueue(output)
    queue.claim("lab1", 1, 0.5)
    assert queue.renew("lab1", [output.sys_id, new_sys_id()], 30.0) == [output.sys_id]
    time.sleep(0.7)
    assert queue.claim("lab2", 5, 30.0) == []
    assert queue.renew("lab2", [output.sys_id], 30.0) == []
    assert queue.renew("lab1", [], 30.0) == []
    with pytest.raises(ConfigError, match=r"one string"):
        queue.renew("lab1", output.sys_id, 30.0)


def test_own_processing_work_is_taken_back_at_start_up_only_when_asked(queue: EccQueue) -> None:
    outputs = [_output(agent="lab1") for _ in range(3)]
    queue.enqueue_many(outputs)
    queue.claim("lab1", 3, 300.0)
    assert queue.claim("lab1", 10, 30.0) == []
    assert queue.claim("lab2", 10, 30.0, include_own_processing=True) == []
    again = queue.claim("lab1", 10, 30.0, include_own_processing=True)
    assert sorted(r.sys_id for r in again) == sorted(r.sys_id for r in outputs)
    assert len(_claims(queue)) == 2


def test_release_puts_work_back_only_for_the_holder(queue: EccQueue) -> None:
    first, second = _output(agent="lab1"), _output(agent="lab1")
    queue.enqueue_many([first, second])
    queue.claim("lab1", 2, 300.0)
    assert queue.release("lab2", [first.sys_id, second.sys_id]) == []
    assert queue.release("lab1", [first.sys_id]) == [first.sys_id]
    released = queue.get(first.sys_id)
    assert released is not None
    assert released.state == "ready"
    assert queue.get_lease(first.sys_id) is None
    assert [r.sys_id for r in queue.claim("lab1", 5, 30.0)] == [first.sys_id]
    queue.complete(second.sys_id, _answer(second))
    assert queue.release("lab1", [second.sys_id]) == []  # done work is never put back
    done = queue.get(second.sys_id)
    assert done is not None
    assert done.state == "processed"


def test_complete_answers_exactly_once(queue: EccQueue) -> None:
    output = _output()
    queue.enqueue(output)
    (claimed,) = queue.claim("lab1", 1, 30.0)
    answer = _answer(claimed)
    assert queue.complete(output.sys_id, answer) is True
    done = queue.get(output.sys_id)
    assert done is not None
    assert done.state == "processed"
    assert done.processed is not None
    assert queue.get_lease(output.sys_id) is None
    (stored,) = queue.list(queue_side="input", response_to=output.sys_id)
    assert stored == answer.with_changes(state="ready")
    assert decode_input_payload(stored.payload).echoed("sys_id") == output.sys_id
    # A retried record (same answer, or a new one from a second run) never makes a second input.
    assert queue.complete(output.sys_id, answer) is False
    assert queue.complete(output.sys_id, _answer(claimed)) is False
    assert len(queue.list(queue_side="input", response_to=output.sys_id)) == 1
    after = queue.get(output.sys_id)
    assert after == done


def test_complete_with_an_error_marks_the_output_error(queue: EccQueue) -> None:
    output = _output()
    queue.enqueue(output)
    assert queue.complete(output.sys_id, _answer(output, error="connect timed out after 1 s")) is True
    failed = queue.get(output.sys_id)
    assert failed is not None
    assert failed.state == "error"
    (answer,) = queue.list(response_to=output.sys_id)
    assert answer.error_string == "connect timed out after 1 s"
    assert answer.state == "ready"


def test_complete_checks_what_it_is_given(queue: EccQueue) -> None:
    output = _output()
    queue.enqueue(output)
    with pytest.raises(QueueError, match=r"no record .* to complete"):
        queue.complete(new_sys_id(), _answer(output).with_changes(response_to=None))
    with pytest.raises(ConfigError, match=r"^queue: "):
        queue.complete(output.sys_id, output)
    with pytest.raises(ConfigError, match=r"^response_to: "):
        queue.complete(output.sys_id, _answer(output).with_changes(response_to=new_sys_id()))
    answer = _answer(output)
    queue.complete(output.sys_id, answer)
    with pytest.raises(QueueError, match=r"is an input, not an output"):
        queue.complete(answer.sys_id, _answer(output).with_changes(response_to=None))


def test_complete_many_stores_each_answer_once_and_refuses_only_the_bad_ones(queue_url: str) -> None:
    queue = open_queue(queue_url, payload_cap=2000)
    outputs = [_output() for _ in range(4)]
    big = _output()
    queue.enqueue_many([*outputs, big])
    already = _answer(outputs[0])
    queue.complete(outputs[0].sys_id, already)
    failing = _answer(outputs[1], error="connect timed out after 1 s")
    second_run = _answer(outputs[2])
    oversize = _answer(big).with_changes(payload="<results>" + "x" * 3000 + "</results>")
    answers = [
        (outputs[0].sys_id, _answer(outputs[0])),  # answered before
        (outputs[1].sys_id, failing),
        (outputs[2].sys_id, second_run),
        (outputs[2].sys_id, _answer(outputs[2])),  # a second answer in the same batch
        (new_sys_id(), _answer(outputs[3]).with_changes(response_to=None)),  # no such output
        (outputs[3].sys_id, outputs[3]),  # not an input
        (already.sys_id, _answer(outputs[3]).with_changes(response_to=None)),  # names an input
        (outputs[3].sys_id, _answer(outputs[3]).with_changes(sys_id=already.sys_id)),  # sys_id taken
        (big.sys_id, oversize),
    ]

    with queue:
        outcomes = queue.complete_many(answers)
        states = [getattr(queue.get(output.sys_id), "state", None) for output in [*outputs, big]]
        stored = {
            output.sys_id: [
                answer.sys_id for answer in queue.list(queue_side="input", response_to=output.sys_id)
            ]
            for output in [*outputs, big]
        }
        (aside,) = queue.list(queue_side="input", response_to=big.sys_id)
        payload = queue.read_payload(aside)

    assert outcomes[:4] == [False, True, True, False]
    kinds = [(type(outcome), str(outcome)) for outcome in outcomes[4:8]]
    assert [kind for kind, _ in kinds] == [QueueError, ConfigError, QueueError, QueueError]
    assert "no record" in kinds[0][1]
    assert kinds[1][1].startswith("queue: ")
    assert "is an input, not an output" in kinds[2][1]
    assert "already exists" in kinds[3][1]
    assert outcomes[8] is True
    assert states == ["processed", "error", "processed", "ready", "processed"]
    for output, answer in ((outputs[0], already), (outputs[1], failing), (outputs[2], second_run)):
        assert stored[output.sys_id] == [answer.sys_id]
    assert stored[outputs[3].sys_id] == []
    assert aside.payload_is_attachment
    assert payload == oversize.payload


def test_concurrent_completes_store_one_result(queue_url: str) -> None:
    with open_queue(queue_url) as setup:
        outputs = [_output() for _ in range(20)]
        setup.enqueue_many(outputs)
    results: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(3)

    def complete_all() -> None:
        with open_queue(queue_url) as mine:
            barrier.wait()
            for output in outputs:
                stored = mine.complete(output.sys_id, _answer(output))
                with lock:
                    results.append(stored)

    threads = [threading.Thread(target=complete_all) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert Counter(results) == Counter({True: 20, False: 40})
    with open_queue(queue_url) as check:
        answered = Counter(r.response_to for r in check.list(queue_side="input"))
    assert answered == Counter({output.sys_id: 1 for output in outputs})


def test_oversize_payloads_are_stored_aside_never_cut(queue_url: str) -> None:
    with open_queue(queue_url, payload_cap=1000) as queue:
        big = _output().with_changes(payload="<parameters>" + " " * 5000 + "</parameters>")
        small = _output()
        queue.enqueue_many([big, small])
        stored = queue.get(big.sys_id)
        assert stored is not None
        assert stored.payload == SEE_ATTACHMENT
        assert stored.payload_is_attachment
        assert queue.read_payload(stored) == big.payload
        assert queue.get_attachment(big.sys_id) == big.payload
        assert queue.get_attachment(small.sys_id) is None
        assert queue.read_payload(small) == small.payload
        (claimed,) = [r for r in queue.claim("lab1", 5, 30.0) if r.sys_id == big.sys_id]
        assert claimed.payload == SEE_ATTACHMENT
        answer = _answer(small).with_changes(payload="<results>" + "é" * 600 + "</results>")  # 1,219 bytes
        assert queue.complete(small.sys_id, answer)
        (stored_answer,) = queue.list(response_to=small.sys_id)
        assert stored_answer.payload == SEE_ATTACHMENT
        assert queue.read_payload(stored_answer) == answer.payload


def test_default_cap_is_the_ecc_payload_cap(queue: EccQueue) -> None:
    assert queue.payload_cap == 20_000_000
    at_cap = _output().with_changes(payload="x" * 20_000_000)
    over_cap = _output().with_changes(payload="x" * 20_000_001)
    queue.enqueue_many([at_cap, over_cap])
    kept = queue.get(at_cap.sys_id)
    aside = queue.get(over_cap.sys_id)
    assert kept is not None
    assert len(kept.payload) == 20_000_000
    assert aside is not None
    assert aside.payload == SEE_ATTACHMENT
    assert len(queue.read_payload(aside)) == 20_000_001


def test_list_by_response_to_finds_results_and_other_records_that_name_the_output(queue: EccQueue) -> None:
    output = _output()
    queue.enqueue(output)
    assert queue.complete(output.sys_id, _answer(output))
    # Records that are no result yet carry a response_to (enqueued so by hand): kept in another index.
    follow_up = _output(response_to=output.sys_id)
    claim_like = EccRecord(
        agent="lab1", topic="queue.processing", queue="input", state="processed", response_to=output.sys_id
    )
    unrelated = _output()
    queue.enqueue_many([follow_up, claim_like, unrelated])
    (result,) = queue.list(queue_side="input", topic="Shazzam")

    named = queue.list(response_to=output.sys_id)
    assert [record.sys_id for record in named] == [result.sys_id, follow_up.sys_id, claim_like.sys_id]
    assert [record.sys_id for record in queue.list(response_to=output.sys_id, queue_side="output")] == [
        follow_up.sys_id
    ]
    assert [r.sys_id for r in queue.list(response_to=output.sys_id, topic="queue.processing")] == [
        claim_like.sys_id
    ]
    assert [record.sys_id for record in queue.list(response_to=output.sys_id, limit=2)] == [
        result.sys_id,
        follow_up.sys_id,
    ]
    assert queue.list(response_to=unrelated.sys_id) == []


def test_list_filters_and_orders_by_sequence(queue: EccQueue) -> None:
    records = [_output(agent="lab1"), _output(agent="lab2", priority=0), _output(agent="*")]
    queue.enqueue_many(records)
    queue.complete(records[0].sys_id, _answer(records[0]))
    everything = queue.list()
    assert [r.sequence for r in everything] == sorted(r.sequence for r in everything)
    assert [r.sys_id for r in queue.list(queue_side="output")] == [r.sys_id for r in records]
    assert [r.sys_id for r in queue.list(agent="lab2")] == [records[1].sys_id]
    assert [r.sys_id for r in queue.list(agent="*")] == [records[2].sys_id]
    assert [r.sys_id for r in queue.list(queue_side="output", state="processed")] == [records[0].sys_id]
    assert [r.queue for r in queue.list(response_to=records[0].sys_id)] == ["input"]
    assert len(queue.list(topic="Shazzam", limit=2)) == 2
    assert queue.list(topic="SNMP") == []
    with pytest.raises(ConfigError, match=r"^state: "):
        queue.list(state="finished")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^queue: "):
        queue.list(queue_side="both")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^limit: "):
        queue.list(limit=0)


def test_list_by_sys_id_prefix_and_without_a_topic(queue: EccQueue) -> None:
    records = [_output(sys_id=f"{start}{'0' * 28}") for start in ("ab12", "ab34", "cd56")]
    queue.enqueue_many(records)
    queue.claim("lab1", 1, 60)
    # The claim writes a queue.processing record with a random sys_id: it may share a prefix too.
    everything = [r.sys_id for r in queue.list()]

    def starting(prefix: str) -> list[str]:
        return sorted(sys_id for sys_id in everything if sys_id.startswith(prefix))

    listed = sorted(r.sys_id for r in queue.list(sys_id_prefix="ab"))
    assert listed == starting("ab")
    assert {records[0].sys_id, records[1].sys_id} <= set(listed)
    assert records[2].sys_id not in listed
    assert [r.sys_id for r in queue.list(sys_id_prefix=records[2].sys_id)] == [records[2].sys_id]
    assert sorted(r.sys_id for r in queue.list(sys_id_prefix="ef")) == starting("ef")
    assert {r.topic for r in queue.list()} == {"Shazzam", "queue.processing"}
    assert {r.topic for r in queue.list(exclude_topic="queue.processing")} == {"Shazzam"}
    with pytest.raises(ConfigError, match=r"^sys_id: 'a_%' is not a sys_id or the start of one"):
        queue.list(sys_id_prefix="a_%")


def test_closed_queue_raises_and_close_is_idempotent(queue_url: str) -> None:
    queue = open_queue(queue_url)
    queue.close()
    queue.close()
    with pytest.raises(QueueError, match=r"is closed"):
        queue.list()


def test_one_queue_object_is_safe_across_threads(queue: EccQueue) -> None:
    queue.enqueue_many([_output(agent="lab1") for _ in range(200)])
    taken: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while batch := queue.claim(name, 3, 30.0):
            for record in batch:
                queue.complete(record.sys_id, _answer(record))
            with lock:
                taken.extend(r.sys_id for r in batch)

    threads = [threading.Thread(target=worker, args=("lab1",)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(taken) == len(set(taken)) == 200
    assert len(queue.list(queue_side="output", state="processed")) == 200


def test_claim_can_be_limited_to_priorities(queue: EccQueue) -> None:
    standard = [new_output_record(agent="a1", topic="HeartbeatProbe", priority=2) for _ in range(3)]
    expedited = new_output_record(agent="a1", topic="HeartbeatProbe", priority=1)
    interactive = new_output_record(agent="a1", topic="HeartbeatProbe", priority=0)
    queue.enqueue_many([*standard, expedited, interactive])

    assert [r.sys_id for r in queue.claim("a1", 10, 60, priorities=(2,))] == [r.sys_id for r in standard]
    assert [r.sys_id for r in queue.claim("a1", 10, 60, priorities=(0, 1))] == [
        interactive.sys_id,
        expedited.sys_id,
    ]
    assert queue.claim("a1", 10, 60, priorities=(0, 1, 2)) == []


@pytest.mark.parametrize("priorities", [(), (3,), (True,), (-1, 0)])
def test_claim_refuses_bad_priority_filters(queue: EccQueue, priorities: tuple[int, ...]) -> None:
    with pytest.raises(ConfigError, match="priorities"):
        queue.claim("a1", 1, 60, priorities=priorities)


def test_answered_among_names_the_outputs_that_have_an_answer(queue: EccQueue) -> None:
    answered, waiting, claimed_only = _output(), _output(), _output()
    queue.enqueue_many([answered, waiting, claimed_only])
    queue.claim("lab1", 3, 300.0)  # the claims (queue.processing inputs) are no answers
    queue.complete(answered.sys_id, _answer(answered))
    asked = [answered.sys_id, waiting.sys_id, claimed_only.sys_id, new_sys_id()]
    assert queue.answered_among(asked) == {answered.sys_id}
    assert queue.answered_among([]) == set()
    with pytest.raises(ConfigError):
        queue.answered_among(["not a sys_id"])


def test_agents_of_names_the_agent_each_record_is_addressed_to(queue: EccQueue) -> None:
    mine, everyone = _output(agent="lab1"), _output(agent="*")
    queue.enqueue_many([mine, everyone])
    assert queue.agents_of([mine.sys_id, everyone.sys_id, new_sys_id()]) == {
        mine.sys_id: "mid.server.lab1",
        everyone.sys_id: "mid.server.*",
    }
    assert queue.agents_of([]) == {}
    with pytest.raises(ConfigError):
        queue.agents_of(["not a sys_id"])


def test_discard_removes_outputs_with_every_record_naming_them_and_nothing_else(tmp_path: Path) -> None:
    with SqliteQueue(tmp_path / "ecc.db") as queue:
        output, kept = _output(), _output()
        queue.enqueue_many([output, kept])
        queue.claim("lab1", 2, 30.0)
        assert queue.complete(output.sys_id, _answer(output))
        assert queue.complete(kept.sys_id, _answer(kept))
        follow_up = _output(response_to=output.sys_id)
        queue.enqueue(follow_up)

        queue.discard([output.sys_id])

        assert queue.list(response_to=output.sys_id) == []
        assert queue.get(output.sys_id) is None
        assert queue.get(follow_up.sys_id) is None
        assert [record.sys_id for record in queue.list(queue_side="output")] == [kept.sys_id]
        assert len(queue.list(response_to=kept.sys_id)) == 1
        assert queue.list(topic="queue.processing") == []

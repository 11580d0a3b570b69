"""Records an agent cannot answer as asked still end once, as ``error``; hostile payloads never stall it.

Each poison output is put in the queue as an older midprobe (or another writer) could
have: past the checks ``new_output_record`` makes today.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from midprobe.capabilities.errors import ConfigError, MidprobeError
from midprobe.runner.agent.daemon import Agent, AgentStats, AgentTimings
from midprobe.runner.agent.probe_runner import AgentIdentity, ProbeRunner
from midprobe.runner.ecc.payload import MultiProbePayload, ParametersPayload, decode_input_payload
from midprobe.runner.ecc.record import SEE_ATTACHMENT, EccRecord
from midprobe.runner.queue.base import AgentRegistration, EccQueue
from midprobe.runner.queue.url import open_queue, sqlite_url
from tests.support.slow_probe import registry_with_sleep
from tests.support.trust import trust_every_agent

FAST = AgentTimings(poll_idle_seconds=0.1, poll_busy_seconds=0.1, lease_seconds=30, drain_seconds=5)
#: How long a gated decode waits for the agent's helpers before giving up (only reached on failure).
GATE_SECONDS = 10.0


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EccQueue]:
    url = (
        sqlite_url(tmp_path / "ecc.db")
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_database_url")
    )
    with open_queue(trust_every_agent(str(url))) as opened:
        yield opened


def _agent(queue: object, runner: ProbeRunner | None = None, timings: AgentTimings = FAST) -> Agent:
    runner = runner or ProbeRunner(registry=registry_with_sleep(), identity=AgentIdentity("a1"))
    return Agent(queue, runner, AgentRegistration("a1"), timings=timings)  # type: ignore[arg-type]


def _run(agent: Agent) -> AgentStats:
    return asyncio.run(agent.run(once=True, install_signal_handlers=False))


def _ends_once_as_error(queue: EccQueue, output: EccRecord) -> EccRecord:
    answers = queue.list(queue_side="input", response_to=output.sys_id)
    assert len(answers) == 1
    stored = queue.get(output.sys_id)
    assert stored is not None
    assert stored.state == "error"
    assert queue.get_lease(output.sys_id) is None
    return answers[0]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"topic": "HeartbeatProbe", "source": "\x01"}, "source: holds character U+0001"),
        (
            {"topic": "SSHCommand", "name": "uname \x1b[2J", "source": "198.18.0.10"},
            "name: holds character U+001B",
        ),
        ({"topic": "queue.processing"}, "queue.processing is the claim topic"),
    ],
)
def test_a_poison_output_is_answered_once_with_an_error_and_never_run_again(
    queue: EccQueue, fields: dict[str, str], reason: str
) -> None:
    output = EccRecord(agent="a1", queue="output", **fields)  # type: ignore[arg-type]
    queue.enqueue(output)

    first = _run(_agent(queue))
    again = _run(_agent(queue))

    answer = _ends_once_as_error(queue, output)
    assert reason in answer.error_string
    assert decode_input_payload(answer.payload).echoed("sys_id") == output.sys_id
    assert (first.errors, first.queue_errors) == (1, 0)
    assert again.claimed == 0, "nothing left to re-run after a lease"


class RefusingQueue:
    """A real queue that refuses (as bad input, not an outage) the first result written to it."""

    def __init__(self, queue: EccQueue) -> None:
        self._queue = queue
        self.refused: list[str] = []

    def complete_many(self, answers: Sequence[tuple[str, EccRecord]]) -> list[bool | MidprobeError]:
        if self.refused:
            return self._queue.complete_many(answers)
        (_, first), *rest = answers
        self.refused.append(first.sys_id)
        return [ConfigError("a field the queue cannot store", field="name"), *self._queue.complete_many(rest)]

    def __getattr__(self, name: str) -> object:
        return getattr(self._queue, name)


def test_a_result_the_queue_refuses_becomes_an_error_answer_not_a_rerun(queue: EccQueue) -> None:
    output = EccRecord(agent="a1", queue="output", topic="HeartbeatProbe")
    queue.enqueue(output)
    refusing = RefusingQueue(queue)

    stats = _run(_agent(refusing))

    answer = _ends_once_as_error(queue, output)
    assert "name: a field the queue cannot store" in answer.error_string
    assert len(refusing.refused) == 1
    assert answer.sys_id not in refusing.refused
    assert stats.queue_errors == 0


class CountingQueue:
    """A real queue that counts the agent's heartbeats and lease renewals and opens a gate after a few."""

    def __init__(self, queue: EccQueue, wanted: int) -> None:
        self._queue = queue
        self._lock = threading.Lock()
        self.heartbeats = 0
        self.renewals = 0
        self._wanted = wanted
        self.gate = threading.Event()

    def _count(self) -> None:
        if self.heartbeats >= self._wanted and self.renewals >= self._wanted:
            self.gate.set()

    def heartbeat_agent(self, name: str, **options: str | None) -> None:
        self._queue.heartbeat_agent(name, **options)
        with self._lock:
            self.heartbeats += 1
            self._count()

    def renew(
        self, agent: str, sys_ids: Sequence[str], lease_seconds: float, **options: str | None
    ) -> list[str]:
        renewed = self._queue.renew(agent, sys_ids, lease_seconds, **options)
        with self._lock:
            self.renewals += 1
            self._count()
        return renewed

    def __getattr__(self, name: str) -> object:
        return getattr(self._queue, name)


class GatedRunner(ProbeRunner):
    """The real runner, whose decoding (the real one) waits until the agent has heartbeated and renewed."""

    gate: threading.Event
    opened: list[bool]

    def _decode(self, output: EccRecord, payload: str) -> ParametersPayload | MultiProbePayload:
        self.opened.append(self.gate.wait(GATE_SECONDS))
        return super()._decode(output, payload)


def test_heartbeats_and_lease_renewals_go_on_while_a_hostile_payload_is_decoded(queue: EccQueue) -> None:
    hostile = "<parameters>" + "<a>" * 200_000 + "</a>" * 200_000 + "</parameters>"
    outputs = [
        EccRecord(agent="a1", queue="output", topic="HeartbeatProbe", payload=hostile) for _ in range(4)
    ]
    queue.enqueue_many(outputs)
    counting = CountingQueue(queue, wanted=2)
    runner = GatedRunner(registry=registry_with_sleep(), identity=AgentIdentity("a1"))
    runner.gate, runner.opened = counting.gate, []
    timings = AgentTimings(
        poll_idle_seconds=0.1, poll_busy_seconds=0.1, lease_seconds=1.5, registry_heartbeat_seconds=0.02
    )

    stats = _run(_agent(counting, runner, timings))

    assert runner.opened == [True] * 4, "the agent's helpers ran while payloads were being decoded"
    for output in outputs:
        assert "over 64 deep" in _ends_once_as_error(queue, output).error_string
    assert stats.errors == 4


class BrokenAttachmentQueue:
    """A real queue whose attachment reads fail with an exception outside midprobe's hierarchy
    (a driver bug): the run of such a record breaks in the agent itself, not in its probe."""

    def __init__(self, queue: EccQueue) -> None:
        self._queue = queue
        self.reads = 0

    def read_payload(self, record: EccRecord) -> str:
        self.reads += 1
        raise RuntimeError("driver bug reading the attachment")

    def __getattr__(self, name: str) -> object:
        return getattr(self._queue, name)


def test_a_run_that_crashes_outside_the_probe_ends_once_as_error_and_the_agent_goes_on(
    queue: EccQueue,
) -> None:
    crashing = EccRecord(agent="a1", queue="output", topic="HeartbeatProbe", payload=SEE_ATTACHMENT)
    healthy = EccRecord(agent="a1", queue="output", topic="HeartbeatProbe")
    queue.enqueue_many([crashing, healthy])
    broken = BrokenAttachmentQueue(queue)

    first = _run(_agent(broken))
    again = _run(_agent(broken))

    answer = _ends_once_as_error(queue, crashing)
    assert "internal error: RuntimeError: driver bug reading the attachment" in answer.error_string
    assert broken.reads == 1, "the crashed record was run once"
    stored = queue.get(healthy.sys_id)
    assert stored is not None
    assert stored.state == "processed"
    assert (first.claimed, first.answered, first.errors, first.queue_errors) == (2, 1, 1, 0)
    assert again.claimed == 0


class CrashingWriteQueue:
    """A real queue whose first result write fails with an exception outside midprobe's hierarchy."""

    def __init__(self, queue: EccQueue) -> None:
        self._queue = queue
        self.crashed = 0

    def complete_many(self, answers: Sequence[tuple[str, EccRecord]]) -> list[bool | MidprobeError]:
        if not self.crashed:
            self.crashed += 1
            raise TypeError("driver bug writing the batch")
        return self._queue.complete_many(answers)

    def __getattr__(self, name: str) -> object:
        return getattr(self._queue, name)


def test_a_result_write_that_crashes_ends_the_record_once_as_error_not_released(queue: EccQueue) -> None:
    output = EccRecord(agent="a1", queue="output", topic="HeartbeatProbe")
    queue.enqueue(output)

    stats = _run(_agent(CrashingWriteQueue(queue)))

    answer = _ends_once_as_error(queue, output)
    assert "internal error: TypeError: driver bug writing the batch" in answer.error_string
    assert (stats.errors, stats.released) == (1, 0)

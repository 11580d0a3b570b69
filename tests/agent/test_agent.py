"""The agent against real queues (SQLite files and the private PostgreSQL server).

Nothing accepted into the queue is lost and every output is answered once: after
restarts, SIGTERM, lease expiry, SIGKILL, and two agents sharing one queue.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from midprobe.capabilities.errors import QueueError
from midprobe.runner.agent.daemon import Agent, AgentStats, AgentTimings
from midprobe.runner.agent.limits import ConcurrencyLimits, PoolSizes
from midprobe.runner.agent.probe_runner import AgentIdentity, ProbeRunner
from midprobe.runner.ecc.builders import new_output_record
from midprobe.runner.ecc.payload import decode_input_payload
from midprobe.runner.ecc.record import EccRecord, utc_now
from midprobe.runner.queue.base import AgentRegistration, EccQueue
from midprobe.runner.queue.url import open_queue, sqlite_url
from tests.support.slow_probe import registry_with_sleep
from tests.support.trust import trust_every_agent
from tests.support.wrapped_queue import WrappedQueue

ROOT = Path(__file__).resolve().parents[2]
SLOW_AGENT = ROOT / "tests" / "support" / "slow_probe.py"
FAST = AgentTimings(poll_idle_seconds=0.1, poll_busy_seconds=0.1, lease_seconds=30, drain_seconds=5)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return trust_every_agent(sqlite_url(tmp_path / "ecc.db"))
    return trust_every_agent(str(request.getfixturevalue("postgres_database_url")))


@pytest.fixture
def queue(queue_url: str) -> Iterator[EccQueue]:
    with open_queue(queue_url) as opened:
        yield opened


def _agent(
    queue: EccQueue, name: str, *, pools: PoolSizes | None = None, timings: AgentTimings = FAST
) -> Agent:
    sizes = pools or PoolSizes()
    runner = ProbeRunner(
        registry=registry_with_sleep(),
        identity=AgentIdentity(name),
        limits=ConcurrencyLimits(pools=sizes),
    )
    return Agent(queue, runner, AgentRegistration(name), timings=timings, pools=sizes)


def _run(agent: Agent, *, once: bool = True) -> AgentStats:
    return asyncio.run(agent.run(once=once, install_signal_handlers=False))


def _answers(queue: EccQueue, output: EccRecord) -> list[EccRecord]:
    return queue.list(queue_side="input", response_to=output.sys_id)


def test_once_answers_every_output_exactly_once(queue: EccQueue) -> None:
    outputs = [new_output_record(agent="a1", topic="HeartbeatProbe") for _ in range(20)]
    outputs += [
        new_output_record(agent="a1", topic="TestSleep", parameters={"seconds": "0.01"}) for _ in range(5)
    ]
    bad = new_output_record(agent="a1", topic="NoSuchTopic")
    other = new_output_record(agent="someone-else", topic="HeartbeatProbe")
    queue.enqueue_many([*outputs, bad, other])

    stats = _run(_agent(queue, "a1"))

    assert stats.answered == 25
    assert stats.errors == 1
    for output in outputs:
        (answer,) = _answers(queue, output)
        assert decode_input_payload(answer.payload).result_code == 0
        assert queue.get(output.sys_id).state == "processed"  # type: ignore[union-attr]
    (error,) = _answers(queue, bad)
    assert "NoSuchTopic" in error.error_string
    assert queue.get(bad.sys_id).state == "error"  # type: ignore[union-attr]
    assert queue.get(other.sys_id).state == "ready"  # type: ignore[union-attr]
    assert queue.list(queue_side="input", topic="queue.processing"), (
        "claims are recorded as queue.processing inputs"
    )
    registered = queue.get_agent("a1")
    assert registered is not None
    assert registered.status == "Down"  # it stopped cleanly


def test_interactive_request_is_not_stuck_behind_long_scans(queue: EccQueue) -> None:
    pools = PoolSizes(interactive=1, expedited=1, standard=2)
    long_runs = [
        new_output_record(agent="a1", topic="TestSleep", parameters={"seconds": "1.5"}) for _ in range(6)
    ]
    queue.enqueue_many(long_runs)
    interactive = new_output_record(agent="a1", topic="HeartbeatProbe", priority=0)
    queue.enqueue(interactive)
    started = datetime.now(UTC)

    _run(_agent(queue, "a1", pools=pools))

    (answer,) = _answers(queue, interactive)
    answered_after = (answer.sys_created_on - started).total_seconds()
    assert answered_after < 1.0, "the interactive pool answered while standard work was still running"
    assert all(len(_answers(queue, record)) == 1 for record in long_runs)


def test_sigterm_releases_unfinished_work_for_another_agent(queue: EccQueue) -> None:
    slow = [new_output_record(agent="a1", topic="TestSleep", parameters={"seconds": "60"}) for _ in range(3)]
    queue.enqueue_many(slow)
    timings = AgentTimings(poll_idle_seconds=0.1, poll_busy_seconds=0.1, lease_seconds=30, drain_seconds=0.2)
    agent = _agent(queue, "a1", timings=timings)

    async def stop_soon() -> AgentStats:
        task = asyncio.create_task(agent.run(once=False, install_signal_handlers=False))
        for _ in range(200):  # until the agent holds all three
            if len(await asyncio.to_thread(queue.list, queue_side="output", state="processing")) == 3:
                break
            await asyncio.sleep(0.05)
        agent.request_stop()
        return await task

    stats = asyncio.run(stop_soon())
    assert stats.released == 3
    for record in slow:
        assert queue.get(record.sys_id).state == "ready"  # type: ignore[union-attr]
        assert _answers(queue, record) == []


def test_restarted_agent_reruns_the_work_it_held(queue: EccQueue) -> None:
    held = new_output_record(agent="a1", topic="HeartbeatProbe")
    queue.enqueue(held)
    assert [r.sys_id for r in queue.claim("a1", 10, 300)] == [held.sys_id]  # then it "crashed"

    _run(_agent(queue, "a1"))

    assert len(_answers(queue, held)) == 1


def test_expired_lease_lets_another_agent_rerun_it_once(queue: EccQueue) -> None:
    record = new_output_record(agent="a2", topic="HeartbeatProbe")
    queue.enqueue(record)
    queue.claim("a2", 10, 0.2, instance="crashed")
    time.sleep(0.4)

    _run(_agent(queue, "a2"))

    (answer,) = _answers(queue, record)
    assert answer.agent == "mid.server.a2"
    # The first agent comes back with its (late) answer: it is not written twice.
    late = answer.with_changes(agent="crashed", sys_id="0" * 32)
    assert queue.complete(record.sys_id, late) is False
    assert len(_answers(queue, record)) == 1


def _start_slow_agent(name: str, url: str, lease: float, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("ab") as stderr:
        return subprocess.Popen(
            [sys.executable, str(SLOW_AGENT), name, url, str(lease)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def _wait_until(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


@pytest.mark.timeout(90)
def test_agent_killed_mid_batch_has_its_records_rerun_by_its_restart(
    queue_url: str, queue: EccQueue, tmp_path: Path
) -> None:
    batch = [
        new_output_record(agent="victim", topic="TestSleep", parameters={"seconds": "3"}) for _ in range(10)
    ]
    queue.enqueue_many(batch)
    victim = _start_slow_agent("victim", queue_url, lease=2.0, log=tmp_path / "victim.log")
    try:
        assert _wait_until(lambda: len(queue.list(queue_side="output", state="processing")) == 10, 20)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert all(_answers(queue, record) == [] for record in batch), "killed before any work finished"

    def name_free() -> bool:  # the restart may take the name once the dead process's heartbeat is old
        registration = queue.get_agent("victim")
        beat = registration.last_heartbeat if registration else None
        return beat is not None and (utc_now() - beat).total_seconds() > 4.0

    assert _wait_until(name_free, 20)
    rescuer = _start_slow_agent("victim", queue_url, lease=4.0, log=tmp_path / "rescuer.log")
    try:
        rerun = _wait_until(lambda: all(_answers(queue, r) for r in batch), 40)
        assert rerun, (tmp_path / "rescuer.log").read_text()[-2000:]
    finally:
        rescuer.terminate()
        rescuer.wait(20)
    for record in batch:
        (answer,) = _answers(queue, record)
        assert answer.agent == "mid.server.victim"
        assert queue.get(record.sys_id).state == "processed"  # type: ignore[union-attr]


@pytest.mark.timeout(120)
def test_two_agents_on_postgresql_share_1000_records_none_lost_or_doubled(
    postgres_database_url: str, tmp_path: Path
) -> None:
    url = trust_every_agent(postgres_database_url)
    records = [new_output_record(agent=f"pg{1 + i % 2}", topic="HeartbeatProbe") for i in range(1000)]
    with open_queue(url) as queue:
        queue.enqueue_many(records)
    argv = [sys.executable, "-m", "midprobe.runner", "agent", "--queue", url, "--once", "--poll-busy", "0.05"]
    argv += ["--log-level", "warning", "--concurrency", "20"]
    agents = [
        subprocess.Popen(
            [*argv, "--name", name, "--state", str(tmp_path / name)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in ("pg1", "pg2")
    ]
    outputs = [agent.communicate(timeout=100) for agent in agents]
    assert all(agent.returncode == 0 for agent in agents), outputs

    with open_queue(url) as queue:
        answers = queue.list(queue_side="input", topic="HeartbeatProbe", limit=5000)
        outputs_left = queue.list(queue_side="output", state="ready") + queue.list(
            queue_side="output", state="processing"
        )
    assert len(answers) == 1000
    assert len({answer.response_to for answer in answers}) == 1000
    assert {answer.response_to for answer in answers} == {record.sys_id for record in records}
    assert outputs_left == []
    by_agent = {name: sum(a.agent == f"mid.server.{name}" for a in answers) for name in ("pg1", "pg2")}
    assert all(count > 0 for count in by_agent.values()), f"both agents should take work: {by_agent}"


def test_oversize_result_is_stored_aside_never_cut(tmp_path: Path) -> None:
    url = trust_every_agent(sqlite_url(tmp_path / "ecc.db"))
    with open_queue(url, payload_cap=300) as queue:
        record = new_output_record(agent="a1", topic="HeartbeatProbe", parameters={"note": "x" * 400})
        queue.enqueue(record)
        _run(_agent(queue, "a1"))
        (answer,) = _answers(queue, record)
        assert answer.payload_is_attachment
        full = queue.read_payload(answer)
    assert len(full.encode()) > 300
    decoded = decode_input_payload(full)
    assert decoded.result_code == 0
    assert decoded.echoed("note") == "x" * 400


class FlakyQueue(WrappedQueue):
    """A real queue whose first claims fail, as when the database restarts under the agent."""

    def __init__(self, queue: EccQueue, failures: int) -> None:
        super().__init__(queue)
        self.failures_left = failures

    def claim(self, *args: object, **kwargs: object) -> list[EccRecord]:
        if self.failures_left:
            self.failures_left -= 1
            raise QueueError("database restarting")
        return super().claim(*args, **kwargs)


def test_agent_backs_off_on_queue_errors_and_recovers(queue: EccQueue) -> None:
    record = new_output_record(agent="a1", topic="HeartbeatProbe")
    queue.enqueue(record)
    flaky = FlakyQueue(queue, failures=2)
    agent = _agent(flaky, "a1")  # type: ignore[arg-type]
    started = time.monotonic()

    stats = _run(agent)

    assert stats.queue_errors == 2
    assert stats.answered == 1
    assert time.monotonic() - started >= 1.0 + 2.0 - 0.1, "backed off 1 s, then 2 s"
    assert len(_answers(queue, record)) == 1


def test_interactive_request_arriving_behind_a_standard_backlog_is_claimed_at_once(queue: EccQueue) -> None:
    """Each pool claims only what it can start, so standard work never fills the agent."""
    pools = PoolSizes(interactive=1, expedited=1, standard=2)
    backlog = [
        new_output_record(agent="a1", topic="TestSleep", parameters={"seconds": "1.5"}) for _ in range(8)
    ]
    queue.enqueue_many(backlog)
    agent = _agent(queue, "a1", pools=pools)
    interactive = new_output_record(agent="a1", topic="HeartbeatProbe", priority=0)

    async def scenario() -> float:
        task = asyncio.create_task(agent.run(once=True, install_signal_handlers=False))
        for _ in range(100):  # until the agent has claimed what its standard pool can run
            if await asyncio.to_thread(queue.list, queue_side="output", state="processing"):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # and polled again with the standard pool full
        assert len(queue.list(queue_side="output", state="processing")) == 2
        arrived = time.monotonic()
        await asyncio.to_thread(queue.enqueue, interactive)
        while not await asyncio.to_thread(_answers, queue, interactive):  # noqa: ASYNC110 - polls the queue, not local state
            await asyncio.sleep(0.02)
        waited = time.monotonic() - arrived
        await task
        return waited

    waited = asyncio.run(scenario())
    assert waited < 1.0, f"the interactive request waited {waited:.2f} s behind standard work"
    assert all(len(_answers(queue, record)) == 1 for record in backlog)


def test_idle_agent_claims_at_once_when_notified(queue_url: str) -> None:
    """docs/ecc-reference.md: poll every 40 s when idle, and at once when notified."""
    idle = AgentTimings(poll_idle_seconds=30, poll_busy_seconds=30, lease_seconds=30, drain_seconds=1)
    with open_queue(queue_url) as agent_queue, open_queue(queue_url) as user_queue:
        agent = _agent(agent_queue, "a1", timings=idle)
        record = new_output_record(agent="a1", topic="HeartbeatProbe", priority=0)

        async def scenario() -> float:
            task = asyncio.create_task(agent.run(once=False, install_signal_handlers=False))
            await asyncio.sleep(1.0)  # the agent found nothing and went idle for 30 s
            sent = time.monotonic()
            await asyncio.to_thread(user_queue.enqueue, record)
            while not await asyncio.to_thread(_answers, user_queue, record):  # noqa: ASYNC110 - polls the queue
                await asyncio.sleep(0.02)
            waited = time.monotonic() - sent
            agent.request_stop()
            await task
            return waited

        waited = asyncio.run(scenario())
    assert waited < 3.0, f"an idle agent took {waited:.1f} s to notice new work"


def test_postgresql_notifications_only_wake_the_addressed_agent(postgres_database_url: str) -> None:
    with open_queue(postgres_database_url) as waiting, open_queue(postgres_database_url) as user:
        assert waiting.wait_for_work("a1", 0.2) is False
        user.enqueue(new_output_record(agent="someone-else", topic="HeartbeatProbe"))
        assert waiting.wait_for_work("a1", 0.5) is False
        user.enqueue(new_output_record(agent="a1", topic="HeartbeatProbe"))
        assert waiting.wait_for_work("a1", 5.0) is True
        user.enqueue(new_output_record(agent="*", topic="HeartbeatProbe"))
        assert waiting.wait_for_work("a1", 5.0) is True


class CountsClaims(WrappedQueue):
    """A real queue that notes the priorities of each claim."""

    def __init__(self, queue: EccQueue) -> None:
        super().__init__(queue)
        self.claims: list[tuple[int, ...]] = []

    def claim(self, *args: object, **kwargs: object) -> list[EccRecord]:
        priorities = kwargs["priorities"]
        assert isinstance(priorities, Sequence)
        self.claims.append(tuple(priorities))
        return super().claim(*args, **kwargs)


def test_once_asks_each_pool_once_a_round_and_ends_on_a_round_that_found_nothing(queue: EccQueue) -> None:
    counting = CountsClaims(queue)
    assert _run(_agent(counting, "a1")).claimed == 0  # type: ignore[arg-type]
    assert counting.claims == [(0,), (1,), (2,)], "nothing ready: one claim per pool, interactive first"

    queue.enqueue_many([new_output_record(agent="a1", topic="HeartbeatProbe", priority=p) for p in (0, 1, 2)])
    counting = CountsClaims(queue)
    assert _run(_agent(counting, "a1")).answered == 3  # type: ignore[arg-type]
    assert counting.claims[-3:] == [(0,), (1,), (2,)]


class FailsOnePoolOnce(WrappedQueue):
    """A real queue whose claim for one priority pool fails once, on its ``on_call``-th claim."""

    def __init__(self, queue: EccQueue, pool: int, on_call: int = 1) -> None:
        super().__init__(queue)
        self._pool = pool
        self._on_call = on_call
        self._calls = 0
        self.failed = False

    def claim(self, *args: object, **kwargs: object) -> list[EccRecord]:
        if kwargs.get("priorities") == (self._pool,):
            self._calls += 1
            if self._calls == self._on_call:
                self.failed = True
                raise QueueError("connection reset")
        return super().claim(*args, **kwargs)


def test_a_failed_claim_for_one_pool_does_not_strand_work_claimed_for_another(queue: EccQueue) -> None:
    interactive = new_output_record(agent="a1", topic="TestSleep", priority=0, parameters={"seconds": "0.5"})
    expedited = new_output_record(agent="a1", topic="HeartbeatProbe", priority=1)
    queue.enqueue_many([interactive, expedited])
    timings = AgentTimings(poll_idle_seconds=0.1, poll_busy_seconds=0.1, lease_seconds=300, drain_seconds=5)
    flaky = FailsOnePoolOnce(queue, pool=1)
    started = time.monotonic()

    stats = _run(_agent(flaky, "a1", timings=timings))  # type: ignore[arg-type]

    assert flaky.failed
    assert time.monotonic() - started < 10, "nothing waited for its 300 s lease to expire"
    assert stats.claimed == 2, "each record claimed once: no re-claim of work already running"
    assert len(_answers(queue, interactive)) == 1
    assert len(_answers(queue, expedited)) == 1


def test_a_failed_claim_on_a_later_poll_does_not_strand_work_either(queue: EccQueue) -> None:
    """Work claimed for one pool is started before the next pool's claim can fail."""
    pools = PoolSizes(interactive=2, expedited=1, standard=1)
    # Long enough that the later records are surely enqueued before this agent (run --once) could finish.
    first_interactive = new_output_record(
        agent="a1", topic="TestSleep", priority=0, parameters={"seconds": "2"}
    )
    first_expedited = new_output_record(
        agent="a1", topic="TestSleep", priority=1, parameters={"seconds": "0.3"}
    )
    queue.enqueue_many([first_interactive, first_expedited])
    later = [
        new_output_record(agent="a1", topic="HeartbeatProbe", priority=0),
        new_output_record(agent="a1", topic="HeartbeatProbe", priority=1),
    ]
    timings = AgentTimings(poll_idle_seconds=0.1, poll_busy_seconds=2, lease_seconds=300, drain_seconds=5)
    flaky = FailsOnePoolOnce(queue, pool=1, on_call=2)  # the expedited claim of the poll after the first
    agent = _agent(flaky, "a1", pools=pools, timings=timings)  # type: ignore[arg-type]

    async def scenario() -> None:
        task = asyncio.create_task(agent.run(once=True, install_signal_handlers=False))
        await asyncio.sleep(0.1)  # both first records run; the later ones arrive while they do
        await asyncio.to_thread(queue.enqueue_many, later)
        await task

    asyncio.run(scenario())
    assert flaky.failed
    for record in (first_interactive, first_expedited, *later):
        assert len(_answers(queue, record)) == 1, f"{record.priority}: left leased and unanswered"


def test_sqlite_wait_for_work_does_not_lose_a_commit_between_two_waits(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "ecc.db")
    with open_queue(url) as waiting, open_queue(url) as user:
        assert waiting.wait_for_work("a1", 0.2) is False
        user.enqueue(new_output_record(agent="a1", topic="HeartbeatProbe"))  # lands while nobody waits
        assert waiting.wait_for_work("a1", 0.2) is True
        assert waiting.wait_for_work("a1", 0.2) is False, "each commit is reported once"
        waiting.enqueue(new_output_record(agent="a1", topic="HeartbeatProbe"))
        assert waiting.wait_for_work("a1", 0.2) is False, "its own commits do not wake it"

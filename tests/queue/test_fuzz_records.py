"""Hostile payloads and field values through enqueue, claim, run and result, on both backends.

Whatever goes in: enqueue either refuses it with a midprobe error or accepts it; every
accepted output ends ``processed`` or ``error`` with exactly one answer; the agent raises
nothing and keeps heartbeating on time: its timers run on a fake clock that each record's
work moves on by one heartbeat interval, and the heartbeat then due must be sent, stamped
with its due time on that clock, before the record is done. Only probes that touch no
network are requested.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from midprobe.capabilities.errors import MidprobeError
from midprobe.probes.credentials import CredentialStore
from midprobe.probes.registry import default_registry
from midprobe.runner.agent.daemon import Agent, AgentTimings
from midprobe.runner.agent.probe_runner import AgentIdentity, ProbeRunner
from midprobe.runner.ecc.builders import new_output_record
from midprobe.runner.ecc.payload import decode_input_payload
from midprobe.runner.ecc.record import EccRecord
from midprobe.runner.queue.base import AgentRegistration, EccQueue
from midprobe.runner.queue.url import open_queue

HEARTBEAT_SECONDS = 30.0
#: Only a failure guard (a heartbeat that never comes), never a bound the agent is held to.
NEVER_SECONDS = 10.0
TIMINGS = AgentTimings(
    poll_idle_seconds=0.05,
    poll_busy_seconds=0.05,
    lease_seconds=3600,  # renewals (every 1,200 s on the fake clock) never come in between
    registry_heartbeat_seconds=HEARTBEAT_SECONDS,
    drain_seconds=5,
)
_REGISTRY_TOPICS = frozenset(default_registry().topics())
#: Topics that run nothing on the network: the heartbeat, a MultiProbe of heartbeats, the claim topic.
SAFE_TOPICS = ("HeartbeatProbe", "MultiProbe", "queue.processing")

hostile_text = st.text(max_size=12) | st.sampled_from(
    ["\x01", "\x1b[2J", "\x9b31m", "\ud800", "\x00", "\ufffe", "[bold]x", "a\r\nb", "\U0001f600"]
)
unknown_topic = st.text(min_size=1, max_size=12).filter(
    lambda topic: topic.strip() and topic not in _REGISTRY_TOPICS
)


def _nested(depth: int) -> str:
    return "<parameters>" + "<a>" * depth + "</a>" * depth + "</parameters>"


hostile_payload = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=10, max_value=200_000).map(_nested),
    st.integers(min_value=1, max_value=3000).map(
        lambda count: "<parameters>" + '<parameter name="p" value="v"/>' * count + "</parameters>"
    ),
    st.sampled_from(
        [
            '<?xml version="1.0" encoding="no-such-codec"?><parameters/>',
            '<parameters><parameter name="" value="x"/></parameters>',
            '<parameters><parameter name="a"/><parameter name="a"/></parameters>',
            '<probes><parameters/><parameters/><probe topic="HeartbeatProbe"/></probes>',
            '<probes><probe topic="HeartbeatProbe"><parameters/></probe></probes>',
            '<!DOCTYPE x [<!ENTITY a "aaaa">]><parameters>&a;</parameters>',
            '<results probe_time="1"/>',
            "<parameters>\ud800</parameters>",
            '<parameters><parameter name="probe_timeout_ms" value="-1"/></parameters>',
        ]
    ),
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    """``("builder", kwargs)``: through ``new_output_record``; ``("record", kwargs)``: a raw record."""
    fields: dict[str, object] = {
        "topic": draw(st.sampled_from(SAFE_TOPICS) | unknown_topic),
        "name": draw(hostile_text),
        "source": draw(hostile_text),
        "agent_correlator": draw(hostile_text),
    }
    if draw(st.booleans()):
        fields["parameters"] = draw(st.lists(st.tuples(hostile_text, hostile_text), max_size=3))
        return "builder", fields
    fields["payload"] = draw(hostile_payload)
    return "record", fields


class FakeClock:
    """Time that moves only when told; the agent's heartbeat and lease timers sleep on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, float, asyncio.Future[None]]] = []  # (due, length, woken)
        self._set = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self.now + seconds, seconds, woken)
        self._timers.append(entry)
        self._set.set()
        try:
            await woken
        finally:
            self._timers.remove(entry)

    async def fire_next(self, length: float) -> float:
        """Wait until a timer of ``length`` seconds is set, move the time on to it and wake it; that time."""
        while not (due := [at for at, of, woken in self._timers if of == length and not woken.done()]):
            self._set.clear()
            await self._set.wait()
        self.now = max(self.now, min(due))
        for at, _, woken in self._timers:
            if at <= self.now and not woken.done():
                woken.set_result(None)
        return self.now


class CountingQueue:
    """A real queue that records, on the agent's clock, when the agent heartbeats."""

    def __init__(self, queue: EccQueue, clock: FakeClock) -> None:
        self._queue = queue
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        self._beat = asyncio.Event()
        self.heartbeats: list[float] = []

    def heartbeat_agent(self, name: str, **options: str | None) -> None:
        self._queue.heartbeat_agent(name, **options)
        stamp = self._clock.now
        self._loop.call_soon_threadsafe(self._noted, stamp)

    def _noted(self, stamp: float) -> None:
        self.heartbeats.append(stamp)
        self._beat.set()

    async def heartbeat_at(self, moment: float) -> None:
        while moment not in self.heartbeats:
            self._beat.clear()
            await self._beat.wait()

    def __getattr__(self, name: str) -> object:
        return getattr(self._queue, name)


class TickingRunner(ProbeRunner):
    """The real runner; each answer takes one heartbeat interval on the agent's clock, one at a time.

    The heartbeat falling due as a record's work starts must have been sent by the time the
    work is done (waited for, not timed: ``missed`` lists the due times whose heartbeat never
    came; ``NEVER_SECONDS`` only keeps a broken agent from hanging the test).
    """

    agent_clock: FakeClock
    queue: CountingQueue
    due: list[float]
    missed: list[float]
    turn: asyncio.Lock

    async def answer(
        self, output: EccRecord, payload: str | None = None, *, credentials: CredentialStore | None = None
    ) -> EccRecord:
        async with self.turn:
            try:
                due = await asyncio.wait_for(self.agent_clock.fire_next(HEARTBEAT_SECONDS), NEVER_SECONDS)
            except TimeoutError:  # no heartbeat timer is set: the heartbeat loop stopped
                self.missed.append(self.agent_clock.now)
                return await super().answer(output, payload, credentials=credentials)
            self.due.append(due)
            answer = await super().answer(output, payload, credentials=credentials)
            try:
                await asyncio.wait_for(self.queue.heartbeat_at(due), NEVER_SECONDS)
            except TimeoutError:
                self.missed.append(due)
            return answer


def _accept(queue: EccQueue, how: str, fields: dict[str, object]) -> EccRecord | None:
    """The record enqueued, or None when refused (only ever with a midprobe error)."""
    try:
        if how == "builder":
            record = new_output_record(agent="a1", **fields)  # type: ignore[arg-type]
        else:
            record = EccRecord(agent="a1", queue="output", **fields)  # type: ignore[arg-type]
        queue.enqueue(record)
    except MidprobeError as refused:
        refusal = str(refused)
    else:
        return record
    assert "\n" not in refusal, "a refusal is one line"
    return None


@pytest.fixture
def queue(queue_url: str) -> Iterator[EccQueue]:
    with open_queue(queue_url) as opened:
        yield opened


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(batch=st.lists(requests(), min_size=1, max_size=4))
@example(batch=[("record", {"topic": "HeartbeatProbe", "source": "\x00", "payload": "\x00"})])
@example(batch=[("record", {"topic": "queue.processing", "name": "\x1b[2J", "payload": _nested(200_000)})])
def test_every_accepted_record_ends_once_and_the_agent_stays_on_time(
    queue: EccQueue, batch: list[tuple[str, dict[str, object]]]
) -> None:
    accepted = [record for how, fields in batch if (record := _accept(queue, how, fields)) is not None]
    runner = TickingRunner(registry=default_registry(), identity=AgentIdentity("a1"), probe_timeout_seconds=5)
    runner.due, runner.missed = [], []

    async def run() -> None:
        runner.agent_clock, runner.turn = FakeClock(), asyncio.Lock()
        runner.queue = CountingQueue(queue, runner.agent_clock)
        agent = Agent(runner.queue, runner, AgentRegistration("a1"), timings=TIMINGS)  # type: ignore[arg-type]
        agent.timer = runner.agent_clock.sleep
        await agent.run(once=True, install_signal_handlers=False)
        assert runner.queue.heartbeats == runner.due, "one heartbeat at each due time, none late or extra"

    asyncio.run(run())

    for record in accepted:
        stored = queue.get(record.sys_id)
        assert stored is not None
        assert stored.state in ("processed", "error")
        answers = queue.list(queue_side="input", response_to=record.sys_id)
        assert len(answers) == 1
        assert (stored.state == "error") == bool(answers[0].error_string)
        decode_input_payload(queue.read_payload(answers[0]))  # the answer is readable
    assert runner.missed == [], "a heartbeat fell due during a record's work and was not sent"
    assert len(runner.due) == len(accepted), "every record's work took one heartbeat interval"

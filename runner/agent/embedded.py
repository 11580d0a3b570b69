"""An agent in this process on a private queue: ask it a topic, await its ECC answer.

``midprobe scan`` runs its probes this way: each request is an ECC output record put on a private
in-memory SQLite queue, claimed and run by the real agent (``daemon.Agent`` with its
``ProbeRunner``: parameter validation, the capability check, the safety policy, the deadline and the
result encoding), and its answer is the ECC input the agent wrote, decoded. Nothing polls: the
caller wakes the agent as it enqueues (:meth:`Agent.wake`) and the agent wakes the caller as it
answers (``Agent.on_answered``), so one round trip costs a few SQLite statements.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from midprobe.capabilities.errors import PayloadError, QueueError
from midprobe.runner.agent.daemon import Agent, AgentTimings
from midprobe.runner.agent.lifecycle import MidLifecycle
from midprobe.runner.agent.limits import PoolSizes
from midprobe.runner.agent.probe_runner import TIMEOUT_PARAMETER, ProbeRunner
from midprobe.runner.ecc.builders import new_output_record
from midprobe.runner.ecc.payload import ResultsPayload, decode_input_payload
from midprobe.runner.ecc.record import EccRecord
from midprobe.runner.queue.base import AgentRegistration, EccQueue
from midprobe.runner.queue.sqlite import SqliteQueue
from midprobe.runner.queue.url import open_queue

__all__ = ["Answer", "EmbeddedAgent"]

#: The embedded agent never waits on its own poll timer: every enqueue wakes it.
IDLE_POLL_SECONDS = 3600.0


@dataclass(frozen=True)
class Answer:
    """One ECC input: the decoded payload, and the error it carries (``None``: the probe ran)."""

    payload: ResultsPayload
    error: str | None


class EmbeddedAgent:
    """``async with EmbeddedAgent(runner) as agent: answer = await agent.ask(topic, source, parameters)``.

    The queue is private to this object (``sqlite:///:memory:``, each request deleted once its
    answer is read) unless ``queue_url`` names one (its records are kept, for ``midprobe ecc``
    to show); the agent registers under ``runner``'s identity and stops when the block ends.
    """

    def __init__(
        self,
        runner: ProbeRunner,
        *,
        pools: PoolSizes | None = None,
        queue_url: str | None = None,
        lease_seconds: float = 600.0,
    ) -> None:
        self._private: SqliteQueue | None = None
        queue: EccQueue
        if queue_url is None:
            self._private = queue = SqliteQueue(":memory:")
        else:
            queue = open_queue(queue_url)
        self._queue = queue
        registration = AgentRegistration(name=runner.identity.name, capabilities=())
        # The agent is this very process: validated as it registers, as `discover run --local` does.
        queue.register_agent(registration)
        queue.update_agent(registration.name, validated=True)
        self._agent = Agent(
            self._queue,
            runner,
            registration,
            timings=AgentTimings(
                poll_idle_seconds=IDLE_POLL_SECONDS,
                poll_busy_seconds=IDLE_POLL_SECONDS,
                lease_seconds=lease_seconds,
                drain_seconds=0.0,
            ),
            pools=pools or PoolSizes(),
            on_answered=self._answered,
            lifecycle=MidLifecycle(raises_issues=False),
        )
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._task: asyncio.Task[object] | None = None

    async def __aenter__(self) -> EmbeddedAgent:
        self._task = asyncio.create_task(
            self._agent.run(install_signal_handlers=False), name="embedded-agent"
        )
        # One turn of the loop: the task runs up to its first await, past the point where a stop
        # request is heard (a block that ends at once must still stop the agent).
        await asyncio.sleep(0)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._agent.request_stop()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        for waiter in self._waiting.values():
            waiter.cancel()
        self._queue.close()

    def _answered(self, sys_id: str) -> None:
        waiter = self._waiting.get(sys_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def ask(
        self,
        topic: str,
        source: str,
        parameters: Mapping[str, str],
        *,
        timeout_seconds: float | None = None,
    ) -> Answer:
        """Enqueue one ``topic`` request for ``source`` and return the agent's answer.

        ``timeout_seconds`` becomes the request's ``probe_timeout_ms`` (the runner cuts the probe
        there and answers with the time-out as its error).
        """
        given = dict(parameters)
        if timeout_seconds is not None:
            given[TIMEOUT_PARAMETER] = str(max(1, round(timeout_seconds * 1000)))
        record = new_output_record(agent=self._agent.name, topic=topic, source=source, parameters=given)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[record.sys_id] = waiter
        try:
            await asyncio.to_thread(self._queue.enqueue, record)
            self._agent.wake()
            await self._until_answered(waiter)
            return await asyncio.to_thread(self._read_answer, record)
        finally:
            self._waiting.pop(record.sys_id, None)

    async def _until_answered(self, waiter: asyncio.Future[None]) -> None:
        """Wait for the answer; an agent that stopped (a queue failure) ends the wait with its error."""
        assert self._task is not None, "EmbeddedAgent is used outside its async with block"
        either: set[asyncio.Future[Any]] = {waiter, self._task}
        done, _ = await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            failure = self._task.exception() if not self._task.cancelled() else None
            raise QueueError(f"the embedded agent stopped before answering: {failure or 'stopped'}")

    def _read_answer(self, record: EccRecord) -> Answer:
        answers = self._queue.list(queue_side="input", response_to=record.sys_id, limit=1)
        if not answers:
            raise QueueError(f"the embedded agent gave up on {record.topic} for {record.source}")
        answer = answers[0]
        text = self._queue.read_payload(answer)
        if self._private is not None:  # read: a long scan keeps no request in memory
            self._private.discard([record.sys_id])
        try:
            payload = decode_input_payload(text)
        except PayloadError as error:
            raise PayloadError(f"{record.topic} answer unreadable: {error}") from None
        return Answer(payload, answer.error_string or payload.error or None)

"""An agent in this process on a private queue: ask it a topic, await its ECC answer.

``midprobe scan`` runs its probes this way: each request is an ECC output record put on a private
in-memory SQLite queue, claimed and run by the real agent (``daemon.Agent`` with its
``ProbeRunner``: parameter validation, the capability check, the safety policy, the deadline and the
result encoding), and its answer is the ECC input the agent wrote, decoded. Nothing polls: the
caller wakes the agent as it enqueues (:meth:`Agent.wake`) and the agent wakes the caller as it
answers (``Agent.on_answered``), so one round trip costs a few SQLite statements.

A request whose answer comes in pages as the probe goes (``page_wait_ms``: the scan's port scan) is
read page by page (:meth:`EmbeddedAgent.ask_pages`): the agent tells as it stores each page
(``Agent.on_page``), and goes on to a page only when the reader is at most
:data:`PAGES_AHEAD` page behind (``Agent.page_gate``), so a slow reader holds the probe back
instead of filling the queue; past the first page (what preparing the request found) the probe goes
on only once the reader asks for the second.

Requests someone else enqueued on its queue (``midprobe scan``'s one-off discovery: the
orchestrator's outputs, addressed to this agent) run the same way once the agent is woken
(:meth:`EmbeddedAgent.wake`); ``on_stored`` hears of each of their answers and pages as they are
stored, and ``page_gate`` holds their pages back as the reader of pages above would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from midprobe.capabilities.errors import PayloadError, QueueError
from midprobe.runner.agent.daemon import Agent, AgentTimings
from midprobe.runner.agent.lifecycle import MidLifecycle
from midprobe.runner.agent.limits import PoolSizes
from midprobe.runner.agent.probe_runner import ProbeRunner
from midprobe.runner.ecc.builders import TIMEOUT_PARAMETER, new_output_record
from midprobe.runner.ecc.pages import merge_pages
from midprobe.runner.ecc.payload import ResultsPayload, decode_input_payload
from midprobe.runner.ecc.record import EccRecord
from midprobe.runner.queue.base import AgentRegistration, EccQueue
from midprobe.runner.queue.sqlite import SqliteQueue

__all__ = ["Answer", "AnswerPages", "EmbeddedAgent"]

#: The embedded agent never waits on its own poll timer: every enqueue wakes it.
IDLE_POLL_SECONDS = 3600.0
#: Pages of an answer in pages the agent may store ahead of the one its reader asked for.
PAGES_AHEAD = 1
#: The error that closes an answer in pages its reader left before the last page.
ABANDONED = "stopped before its end: the caller left"


@dataclass(frozen=True)
class Answer:
    """One ECC input: the decoded payload, and the error it carries (``None``: the probe ran)."""

    payload: ResultsPayload
    error: str | None


@dataclass
class _Paging:
    """One answer being read in pages: the pages stored and not read yet, the pages asked for."""

    stored: deque[str] = field(default_factory=deque)
    asked: int = 0
    #: The run is over (every page it will write is stored).
    ended: bool = False
    #: Set at every change of the above; whoever waits clears it and looks again.
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def note(self) -> None:
        self.changed.set()


class AnswerPages:
    """The pages of one answer, in order: ``while (page := await pages.next()) is not None``.

    Asking for a page lets the agent go on (:data:`PAGES_AHEAD`); :meth:`aclose` before the last
    page stops the probe and closes its answer with an error.
    """

    def __init__(self, owner: EmbeddedAgent, record: EccRecord, paging: _Paging) -> None:
        self._owner = owner
        self.record = record
        self._paging = paging
        self._done = False
        self._closed = False

    async def next(self) -> Answer | None:
        """The next page (its error, if any, with it); ``None`` after the last."""
        if self._done:
            return None
        paging = self._paging
        paging.asked += 1
        paging.note()
        while not paging.stored and not paging.ended:
            paging.changed.clear()
            await self._owner._until(paging.changed)
        if not paging.stored:
            # No page as it went: a probe that cannot stream answered in one piece (or the agent
            # gave up, which raises), the last page.
            self._done = True
            return await asyncio.to_thread(self._owner._read_answer, self.record)
        answer, last = await asyncio.to_thread(self._owner._read_page, self.record, paging.stored.popleft())
        self._done = last
        return answer

    async def aclose(self, reason: str = ABANDONED) -> None:
        """Stop reading: a run not at its end is stopped, its answer closed with ``reason`` as the
        error; the request is forgotten (private queue)."""
        owner = self._owner
        if self._closed:
            return
        self._closed = True
        if not self._done:
            self._done = True
            await owner._agent.abandon(self.record.sys_id, reason)
        owner._paging.pop(self.record.sys_id, None)
        if owner._private is not None:
            await asyncio.to_thread(owner._private.discard, [self.record.sys_id])


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
        on_stored: Callable[[str], None] | None = None,
        page_gate: Callable[[str, int], Awaitable[None]] | None = None,
    ) -> None:
        #: Told the output's sys_id as each answer, or page of one, is stored.
        self.on_stored = on_stored
        #: Awaited before each page past the first of a request not read through :meth:`ask_pages`.
        self.page_gate = page_gate
        self._private: SqliteQueue | None = None
        queue: EccQueue
        if queue_url is None:
            self._private = queue = SqliteQueue(":memory:")
        else:
            from midprobe.runner.queue.url import open_queue  # `--queue URL` only

            queue = open_queue(queue_url)
        self._queue = queue
        # The capabilities selection reads, as the daemon registers them (``Nmap``: detected, when
        # the runner was given it).
        held = runner.identity.capabilities
        registration = AgentRegistration(
            name=runner.identity.name,
            capabilities=tuple((name, "") for name in sorted(held)),
            nmap_installed="Nmap" in held,
        )
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
            on_page=self._page_stored,
            page_gate=self._page_gate,
            watch_queue=False,
            lifecycle=MidLifecycle(raises_issues=False),
        )
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._paging: dict[str, _Paging] = {}
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
        for paging in self._paging.values():
            paging.ended = True
            paging.note()
        self._queue.close()

    @property
    def queue(self) -> EccQueue:
        """The queue this agent answers on (private unless ``queue_url`` named one)."""
        return self._queue

    @property
    def private_queue(self) -> SqliteQueue | None:
        """The private in-memory queue (``None`` when ``queue_url`` named one, whose records are kept)."""
        return self._private

    @property
    def name(self) -> str:
        """The agent's name as records address it (``mid.server.NAME``)."""
        return self._agent.name

    def wake(self) -> None:
        """Look at the queue now: someone else enqueued work for this agent."""
        self._agent.wake()

    def _answered(self, sys_id: str) -> None:
        waiter = self._waiting.get(sys_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        paging = self._paging.get(sys_id)
        if paging is not None:
            paging.ended = True
            paging.note()
        elif waiter is None and self.on_stored is not None:
            self.on_stored(sys_id)

    def _page_stored(self, sys_id: str, page_sys_id: str) -> None:
        paging = self._paging.get(sys_id)
        if paging is not None:
            paging.stored.append(page_sys_id)
            paging.note()
        elif sys_id not in self._waiting and self.on_stored is not None:
            self.on_stored(sys_id)

    async def _page_gate(self, sys_id: str, number: int) -> None:
        """Hold the probe back before page ``number`` until the reader asked for page 2 (the first
        is the prepared request) and is at most :data:`PAGES_AHEAD` behind (a request enqueued by
        someone else: until ``page_gate`` lets it go)."""
        paging = self._paging.get(sys_id)
        if paging is None:
            if self.page_gate is not None and sys_id not in self._waiting:
                await self.page_gate(sys_id, number)
            return
        while not (paging.asked >= 2 and number <= paging.asked + PAGES_AHEAD):
            paging.changed.clear()
            await paging.changed.wait()

    async def until(self, event: asyncio.Event) -> None:
        """Wait for ``event``; an agent that stopped (a queue failure) ends the wait with its error."""
        await self._until(event)

    async def _until(self, event: asyncio.Event) -> None:
        """Wait for ``event``; an agent that stopped (a queue failure) ends the wait with its error."""
        waiter = asyncio.ensure_future(event.wait())
        try:
            await self._until_answered(waiter)
        finally:
            waiter.cancel()

    def _read_page(self, record: EccRecord, sys_id: str) -> tuple[Answer, bool]:
        """One stored page, decoded, and whether it is the last (read: gone from a private queue)."""
        page = self._queue.get(sys_id)
        if page is None:
            raise QueueError(f"a page of the {record.topic} answer for {record.source} is gone")
        text = self._queue.read_payload(page)
        if self._private is not None:
            self._private.discard([sys_id])
        try:
            payload = decode_input_payload(text)
        except PayloadError as error:
            raise PayloadError(f"{record.topic} answer unreadable: {error}") from None
        return Answer(payload, page.error_string or payload.error or None), payload.last_page

    async def ask_pages(
        self,
        topic: str,
        source: str,
        parameters: Mapping[str, str],
        *,
        timeout_seconds: float | None = None,
    ) -> AnswerPages:
        """Enqueue one ``topic`` request whose answer comes in pages as the probe goes (its
        ``parameters`` carry ``page_wait_ms``) and return its pages' reader (:meth:`ask`'s
        ``timeout_seconds``)."""
        record = self._request(topic, source, parameters, timeout_seconds)
        paging = self._paging[record.sys_id] = _Paging()
        try:
            await asyncio.to_thread(self._queue.enqueue, record)
        except BaseException:
            self._paging.pop(record.sys_id, None)
            raise
        self._agent.wake()
        return AnswerPages(self, record, paging)

    def _request(
        self, topic: str, source: str, parameters: Mapping[str, str], timeout_seconds: float | None
    ) -> EccRecord:
        given = dict(parameters)
        if timeout_seconds is not None:
            given[TIMEOUT_PARAMETER] = str(max(1, round(timeout_seconds * 1000)))
        return new_output_record(agent=self._agent.name, topic=topic, source=source, parameters=given)

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
        record = self._request(topic, source, parameters, timeout_seconds)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[record.sys_id] = waiter
        try:
            await asyncio.to_thread(self._queue.enqueue, record)
            self._agent.wake()
            await self._until_answered(waiter)
            return await asyncio.to_thread(self._read_answer, record)
        finally:
            self._waiting.pop(record.sys_id, None)

    async def _until_answered(self, waiter: asyncio.Future[Any]) -> None:
        """Wait for the answer; an agent that stopped (a queue failure) ends the wait with its error."""
        assert self._task is not None, "EmbeddedAgent is used outside its async with block"
        either: set[asyncio.Future[Any]] = {waiter, self._task}
        done, _ = await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            failure = self._task.exception() if not self._task.cancelled() else None
            raise QueueError(f"the embedded agent stopped before answering: {failure or 'stopped'}")

    def _read_answer(self, record: EccRecord) -> Answer:
        """The whole answer to ``record`` (its pages read as one, when the agent split it)."""
        answers = self._queue.results_of(record.sys_id)
        if not answers:
            raise QueueError(f"the embedded agent gave up on {record.topic} for {record.source}")
        texts = [self._queue.read_payload(answer) for answer in answers]
        if self._private is not None:  # read: a long scan keeps no request in memory
            self._private.discard([record.sys_id])
        try:
            payload = merge_pages([decode_input_payload(text) for text in texts])
        except PayloadError as error:
            raise PayloadError(f"{record.topic} answer unreadable: {error}") from None
        failed = next((answer.error_string for answer in answers if answer.error_string), None)
        return Answer(payload, failed or payload.error or None)

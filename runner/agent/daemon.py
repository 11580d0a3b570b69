"""The agent daemon: claims ECC outputs addressed to it, runs them, writes the answers.

It follows the MID Server's protocol (docs/ecc-reference.md section 1): register, claim work
(lowest priority number first, oldest first; at start-up also the work it held
before it stopped), run it in three priority pools, answer each output exactly
once, renew the leases of work in flight, heartbeat, and on SIGTERM finish or
release what it holds. Poll every 40 s when idle and 5 s while busy; back off on
queue errors. The queue is synchronous and is called through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from midprobe.capabilities.errors import ConfigError, MidprobeError, ProbeError, QueueError
from midprobe.runner.agent.lifecycle import MidLifecycle
from midprobe.runner.agent.limits import PoolSizes
from midprobe.runner.agent.logs import get_logger
from midprobe.runner.agent.probe_runner import ProbeRunner
from midprobe.runner.agent.results import ResultWriter
from midprobe.runner.ecc.builders import new_queue_stats_record
from midprobe.runner.ecc.pages import DEFAULT_PAGE_ITEMS, split_pages
from midprobe.runner.ecc.record import PRIORITY_EXPEDITED, PRIORITY_INTERACTIVE, PRIORITY_STANDARD, EccRecord
from midprobe.runner.queue.base import AgentNameInUse, AgentRegistration, EccQueue, PoolClaim
from midprobe.runner.queue.lifecycle import SETTING_MID_VERSION

if TYPE_CHECKING:  # the upgrade code loads only in an agent that upgrades itself (not an embedded one)
    from midprobe.runner.agent.upgrade import UpgradePlan, Upgrader

log = get_logger("midprobe.agent")

#: The priority pools, claimed in this order (docs/ecc-reference.md section 1).
POOLS = (PRIORITY_INTERACTIVE, PRIORITY_EXPEDITED, PRIORITY_STANDARD)
POOL_NAMES = {
    PRIORITY_INTERACTIVE: "interactive",
    PRIORITY_EXPEDITED: "expedited",
    PRIORITY_STANDARD: "standard",
}


def _pool_of(priority: int) -> int:
    return min(max(priority, PRIORITY_INTERACTIVE), PRIORITY_STANDARD)


#: How long in-flight work may run on after SIGTERM before it is released for another agent.
DEFAULT_DRAIN_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 60.0
#: Leases are renewed every third of their length, but never more often than this.
MIN_RENEW_SECONDS = 0.05
#: How often a MID that may not claim (waiting for validation, paused, draining) looks again.
LIFECYCLE_CHECK_SECONDS = 2.0
#: One wait for a queue notification; short, so a stopping agent never waits long for its watcher.
WATCH_SLICE_SECONDS = 1.0


class _PageRefused(MidprobeError):
    """The queue refused page ``number`` (from 1) of an answer in pages, for ``error``."""

    def __init__(self, number: int, error: MidprobeError) -> None:
        super().__init__(str(error))
        self.number = number
        self.error = error


@dataclass
class AgentStats:
    """What one agent run did (printed by ``midprobe agent --once``)."""

    claimed: int = 0
    answered: int = 0
    errors: int = 0
    duplicates: int = 0
    released: int = 0
    queue_errors: int = 0


@dataclass
class AgentTimings:
    poll_idle_seconds: float = 40.0
    poll_busy_seconds: float = 5.0
    lease_seconds: float = 120.0
    registry_heartbeat_seconds: float = 30.0
    drain_seconds: float = DEFAULT_DRAIN_SECONDS
    #: How often the agent reports ``queue.stats`` (our default: 5 minutes, as the MID's heartbeat).
    queue_stats_seconds: float = 300.0
    #: Most CIs one page of a multi-page result holds.
    page_items: int = DEFAULT_PAGE_ITEMS
    #: How often the agent asks whether the instance wants every MID on a version (``mid upgrade --all``).
    upgrade_check_seconds: float = 3600.0

    def __post_init__(self) -> None:
        # The lease must outlive the renewal interval, or live work would expire between renewals.
        if not self.lease_seconds > self.renew_seconds:
            raise ConfigError(
                f"{self.lease_seconds:g} s is not longer than the lease renewal interval"
                f" ({self.renew_seconds:g} s)",
                field="lease_seconds",
            )

    @property
    def renew_seconds(self) -> float:
        """How often leases of work in flight are renewed."""
        return max(MIN_RENEW_SECONDS, self.lease_seconds / 3)

    @property
    def name_held_seconds(self) -> float:
        """How long after its last heartbeat a name stays held by its process (then a restart takes it)."""
        return max(self.lease_seconds, 2 * self.registry_heartbeat_seconds)


@dataclass
class Agent:
    """One agent: a queue, a probe runner and how often to poll."""

    queue: EccQueue
    runner: ProbeRunner
    registration: AgentRegistration
    timings: AgentTimings = field(default_factory=AgentTimings)
    #: Runs at once per priority pool; the agent claims for each pool only what it can start.
    pools: PoolSizes = field(default_factory=PoolSizes)
    _in_flight: dict[str, asyncio.Task[None]] = field(default_factory=dict, init=False)
    _in_flight_pool: dict[str, int] = field(default_factory=dict, init=False)
    #: Pages of an answer in pages stored so far, by output, while it runs.
    _pages_written: dict[str, int] = field(default_factory=dict, init=False)
    _stopping: asyncio.Event | None = field(default=None, init=False)
    _wake: asyncio.Event | None = field(default=None, init=False)
    _results: ResultWriter | None = field(default=None, init=False)
    stats: AgentStats = field(default_factory=AgentStats, init=False)
    #: This process's token: stored with its registration and its leases (a restart gets a new one).
    instance: str = field(default_factory=lambda: uuid.uuid4().hex, init=False)
    #: How heartbeats and lease renewals wait for their next turn (tests give a fake clock's).
    timer: Callable[[float], Awaitable[None]] = asyncio.sleep
    #: Called with an output's sys_id once its run is over and its answer written (or given up):
    #: an embedded agent's caller (``runner/agent/embedded.py``) waits on it instead of polling.
    on_answered: Callable[[str], None] | None = None
    #: For an answer written in pages as the probe goes (``probe_runner.PAGE_WAIT_PARAMETER``):
    #: ``on_page`` is called with the output's and the page's sys_id once a page is stored;
    #: ``page_gate`` is awaited with the output's sys_id and a page's number before the probe goes
    #: on to that page (from page 2), so an embedded agent's caller holds the probe back until it
    #: has read enough of the pages before. ``None``: the pages are written as fast as they come.
    on_page: Callable[[str, str], None] | None = None
    page_gate: Callable[[str, int], Awaitable[None]] | None = None
    #: Whether a helper watches the queue for work other processes enqueue. An embedded agent
    #: answers only its own process, which wakes it as it enqueues (``wake``): no watch, so no
    #: thread polling the queue while it runs and none to wait for when it stops.
    watch_queue: bool = True
    #: Its key pair, validation, the operator's pause and drain, sealed credentials, issues.
    lifecycle: MidLifecycle = field(default_factory=MidLifecycle)
    #: How this MID upgrades itself (None: it does not; e.g. on a database queue, or embedded in a command).
    upgrader: Upgrader | None = None
    #: The upgrade this process finishes (it was exec'd into by the version before): Succeeded once registered.
    finishing_upgrade: str | None = None
    #: The upgrade this process came back from (its new version failed to start): sys_id, version, why.
    failed_upgrade: tuple[str, str, str] | None = None
    #: Whether the upgrade this process finishes is recorded Succeeded (it started as the new version).
    upgrade_finished: bool = field(default=False, init=False)
    #: Set once an upgrade passed its self-test: the interpreter to exec and the upgrade's sys_id.
    restart_into: tuple[Path, str] | None = field(default=None, init=False)
    _upgrading: asyncio.Task[None] | None = field(default=None, init=False)
    _stop_asked: bool = field(default=False, init=False)
    _upgrade_check_said: str = field(default="", init=False)
    #: Whether the next lifecycle round also asks for the instance-wide version (at start, then periodically).
    _upgrade_check_due: bool = field(default=True, init=False)
    #: Instance-wide versions this process failed to upgrade to (not tried again at every check).
    _given_up: set[str] = field(default_factory=set, init=False)
    _status: str = field(default="Up", init=False)
    _lifecycle_tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    #: One lifecycle check at a time (the heartbeat's and the poll loop's): a rekey happens once.
    _round_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    @property
    def name(self) -> str:
        return self.registration.name

    def wake(self) -> None:
        """Claim at once (work was just enqueued by this process, which no queue watch sees)."""
        if self._wake is not None:
            self._wake.set()

    def request_stop(self) -> None:
        """Stop claiming; finish or release what is in flight (the SIGTERM path; no restart into an upgrade)."""
        self._stop_asked = True
        self._halt()

    def _halt(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        if self._wake is not None:
            self._wake.set()

    async def run(self, *, once: bool = False, install_signal_handlers: bool = True) -> AgentStats:
        """Run until stopped (or, with ``once``, until nothing is ready and nothing is in flight)."""
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._round_lock = asyncio.Lock()
        self._results = ResultWriter(self.queue, on_queue_error=self._count_queue_error)
        loop = asyncio.get_running_loop()
        if install_signal_handlers:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self.request_stop)
        # Refused (AgentNameInUse) while another live process runs under this name.
        before = self.lifecycle.clock()
        await asyncio.to_thread(
            functools.partial(
                self.queue.register_agent,
                self.registration,
                instance=self.instance,
                live_within_seconds=self.timings.name_held_seconds,
            )
        )
        self._status = self.registration.status
        log.info(
            "agent started",
            agent=self.name,
            queue=self.queue.url,
            pools=vars(self.pools),
            version=self.registration.version,
        )
        await asyncio.to_thread(self.lifecycle.started, self.queue, self.registration)
        if self.finishing_upgrade is not None:
            await self._upgraded(self.finishing_upgrade)
        if self.failed_upgrade is not None:
            sys_id, version, reason = self.failed_upgrade
            self._given_up.add(version)
            log.warning(
                "back from a failed upgrade",
                agent=self.name,
                version=self.registration.version,
                reason=reason,
            )
            await self._upgrade_failed(sys_id, reason)
            if self.upgrader is not None:
                await asyncio.to_thread(self.upgrader.discard, version)
            with contextlib.suppress(MidprobeError):
                await self._show("Upgrade Failed")
        await self._lifecycle_round(before)
        helpers = [
            asyncio.create_task(self._renew_leases(), name="renew-leases"),
            asyncio.create_task(self._heartbeat(), name="heartbeat"),
            asyncio.create_task(self._report_queue_stats(), name="queue-stats"),
        ]
        if self.upgrader is not None:
            helpers.append(asyncio.create_task(self._upgrade_checks(), name="upgrade-checks"))
        # --once polls without delay; a long-running agent also claims "at once when notified"
        if not once and self.watch_queue:
            helpers.append(asyncio.create_task(self._watch_queue(), name="watch-queue"))
        try:
            await self._poll_loop(once)
            await self._drain()
        finally:
            await self._results.flush()
            if self._upgrading is not None:
                helpers.append(self._upgrading)
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self.runner.close()
            if self.restart_into is not None and self._stop_asked:  # SIGTERM came first: no restart
                await self._upgrade_failed(self.restart_into[1], "the agent was stopped before it restarted")
                self.restart_into = None
            # Restarting into an upgrade: the same process comes back as the new version.
            final = "Upgrading" if self.restart_into is not None else "Down"
            with contextlib.suppress(MidprobeError):
                await asyncio.to_thread(
                    functools.partial(self.queue.set_agent_status, self.name, final, instance=self.instance)
                )
            if install_signal_handlers:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(signum)
            log.info("agent stopped", agent=self.name, **vars(self.stats))
        return self.stats

    async def _poll_loop(self, once: bool) -> None:
        assert self._stopping is not None
        assert self._wake is not None
        # Pools whose work from before a restart (still leased to this name) is yet to be re-taken.
        restart_pools = set(POOLS)
        backoff = 0.0
        while not self._stopping.is_set():
            if not self.lifecycle.may_claim:
                # Not validated, paused, draining or refused its version: look again soon, claim nothing.
                await self._lifecycle_round(self.lifecycle.clock())
                if not self.lifecycle.may_claim:
                    if once:
                        return
                    await self._sleep(min(self.timings.poll_idle_seconds, LIFECYCLE_CHECK_SECONDS))
                    continue
            # A wake from here on (work enqueued, a slot freed while this round claims) is kept for
            # the wait after the round, which then returns at once: none is lost to the round.
            self._wake.clear()
            claimed: list[EccRecord] = []
            wanted: list[tuple[int, int, bool]] = []
            try:
                # Interactive first: each pool claims only what it can start now, so a backlog of
                # standard work never keeps an interactive request waiting in the queue.
                wanted = [
                    (pool, free, pool in restart_pools)
                    for pool in POOLS
                    if (free := self.pools.for_priority(pool) - self._running_in(pool)) > 0
                ]
                failure: QueueError | None = None
                asked = {pool: free for pool, free, _ in wanted}
                dry: set[int] = set()  # pools that gave less than they asked: nothing more is ready there
                for pool, records in await asyncio.to_thread(self._claim_pools, wanted):
                    if isinstance(records, QueueError):
                        failure = records
                        break
                    restart_pools.discard(pool)
                    self._start(records)  # before the failure is raised: it must not strand these
                    claimed += records
                    if len(records) < asked[pool]:
                        dry.add(pool)
                if failure is not None:
                    raise failure
                backoff = 0.0
            except QueueError as error:
                self.stats.queue_errors += 1
                backoff = min(MAX_BACKOFF_SECONDS, max(1.0, backoff * 2))
                log.warning("claim failed", agent=self.name, error=str(error), retry_in=backoff)
                await self._sleep(backoff)
                continue
            if claimed:
                log.info("claimed", agent=self.name, count=len(claimed))
            if once and not claimed and not self._in_flight:
                if len(wanted) == len(POOLS):
                    return
                continue  # a pool was full as the round began and has room now: ask it too
            if once:
                # Drain mode: claim again at once while a pool that may have more ready has room
                # (asking again a pool this round found dry would cost a request and find nothing);
                # else as soon as a run finishes and frees a slot, no polling delay.
                if claimed and any(
                    self.pools.for_priority(pool) > self._running_in(pool)
                    for pool in POOLS
                    if pool not in dry
                ):
                    continue
                await self._wait_for_progress(self.timings.poll_busy_seconds)
            else:
                busy = bool(claimed or self._in_flight)
                await self._wait_for_progress(
                    self.timings.poll_busy_seconds if busy else self.timings.poll_idle_seconds
                )

    def _claim_pools(
        self, wanted: list[tuple[int, int, bool]]
    ) -> list[tuple[int, list[EccRecord] | QueueError]]:
        """One claim per ``(pool, free slots, re-take own work)``, in order, in one thread hop
        (one request over HTTPS). A failed claim ends the round (the pools after it claim at
        the next poll); the records claimed before it come back with it, to be started."""
        claims = [PoolClaim(pool, free, restart) for pool, free, restart in wanted]
        outcomes = self.queue.claim_pools(
            self.name, claims, self.timings.lease_seconds, instance=self.instance
        )
        return [(claim.priority, outcome) for claim, outcome in zip(claims, outcomes, strict=False)]

    def _start(self, records: list[EccRecord]) -> None:
        for record in records:
            if record.sys_id in self._in_flight:  # never run twice what this process already runs
                log.warning("claimed work already in flight, ignored", sys_id=record.sys_id)
                continue
            self.stats.claimed += 1
            task = asyncio.create_task(self._process(record), name=f"probe-{record.sys_id}")
            self._in_flight[record.sys_id] = task
            self._in_flight_pool[record.sys_id] = _pool_of(record.priority)

    def _running_in(self, pool: int) -> int:
        return sum(1 for held in self._in_flight_pool.values() if held == pool)

    async def _wait_for_progress(self, seconds: float) -> None:
        """Sleep until the poll interval ends, a run finishes and frees a slot, work is enqueued or
        stop is asked, since the claim round began (``_poll_loop`` clears the wake before it)."""
        assert self._wake is not None
        if self._stopping is not None and self._stopping.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _sleep(self, seconds: float) -> None:
        assert self._stopping is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _process(self, record: EccRecord) -> None:
        try:
            payload = record.payload
            if record.payload_is_attachment:
                payload = await asyncio.to_thread(self.queue.read_payload, record)
            try:
                known, credentials = self.lifecycle.remembered_discovery_credentials(record)
                if not known:  # one thread hop per discovery, not per record
                    credentials = await asyncio.to_thread(
                        self.lifecycle.discovery_credentials, self.queue, self.name, record
                    )
            except QueueError:
                raise
            except MidprobeError as refused:  # sealed to another key of this MID, or refused it
                log.warning("discovery credentials not opened", sys_id=record.sys_id, error=str(refused))
                await self._write_answer(record, self.runner.refusal(record, refused))
                return
            answers = self.runner.answers(
                record, payload, page_items=self.timings.page_items, credentials=credentials
            )
            try:
                async for answer, page in answers:
                    if page is None:
                        await self._write_answer(record, answer)
                    elif not await self._write_page(record, answer, page):
                        break
            finally:
                await answers.aclose()
        except QueueError as error:
            # The queue failed us: leave the record leased; the lease expires and it is re-run.
            self.stats.queue_errors += 1
            log.error("could not write result", sys_id=record.sys_id, error=str(error))
        except MidprobeError as error:
            # Not even the error answer could be written: a bug, logged; retrying would loop for ever.
            self.stats.errors += 1
            log.error("record cannot be answered", sys_id=record.sys_id, error=str(error))
        except Exception as error:  # a bug outside the probe (the runner answers a probe's own)
            await self._answer_crash(record, error)
        finally:
            self._in_flight.pop(record.sys_id, None)
            self._pages_written.pop(record.sys_id, None)
            self._free_slot(record.sys_id)  # and wakes the poll loop: --once may be done now
            if self.on_answered is not None:
                self.on_answered(record.sys_id)

    async def _answer_crash(self, record: EccRecord, error: Exception) -> None:
        """End ``record`` as an error answer naming ``error``, which broke its run outside the probe:
        left leased, it would be run again after every lease, for ever."""
        log.error("run crashed, answering with an error", sys_id=record.sys_id, error=repr(error))
        pages = self._pages_written.get(record.sys_id, 0)
        try:
            answer = self.runner.refusal(record, error, page=(pages + 1, True) if pages else None)
            stored = await self._complete(record, answer)
        except QueueError as failed:  # an outage: the lease expires and the record is re-run
            self.stats.queue_errors += 1
            log.error("could not write result", sys_id=record.sys_id, error=str(failed))
            return
        except Exception as failed:  # the error answer is refused too: logged, as above
            self.stats.errors += 1
            log.error("record cannot be answered", sys_id=record.sys_id, error=repr(failed))
            return
        self._count_answer(record, answer, stored)

    async def _write_answer(self, record: EccRecord, answer: EccRecord) -> None:
        """Write the whole answer (in pages when it is large); a refused one becomes an error answer."""
        # The run is over: its pool slot is free for the next claim while the answer is being
        # written (the record stays in flight, its lease renewed, until it is).
        self._free_slot(record.sys_id)
        pages = split_pages(answer, self.timings.page_items)
        try:
            stored = await self._complete_pages(record, pages)
        except QueueError:
            raise
        except _PageRefused as refused:
            # The queue refused a page (not an outage: sent again, it would be refused again).
            # An error page takes its number, marked last, so the answer is whole and the
            # output ends in error now, with the reason, instead of waiting for its lease.
            log.warning(
                "a page of the result was refused, answering with an error page",
                sys_id=record.sys_id,
                page=refused.number,
                error=str(refused.error),
            )
            answer = self.runner.refusal(record, refused.error, page=(refused.number, True))
            stored = await self._complete(record, answer)
        except MidprobeError as refused:
            # The queue refused this answer (not an outage): answer with an error instead,
            # or the record would be re-run after every lease, for ever.
            log.warning("result refused, answering with an error", sys_id=record.sys_id, error=str(refused))
            answer = self.runner.refusal(record, refused)
            stored = await self._complete(record, answer)
        self._count_answer(record, answer, stored)

    async def _write_page(self, record: EccRecord, answer: EccRecord, page: tuple[int, bool]) -> bool:
        """Write one page of an answer given as the probe goes; False when no page may follow it (the
        last, or one the queue refused: then an error closes the answer)."""
        number, last = page
        try:
            stored = await self._complete(record, answer)
        except QueueError:
            raise
        except MidprobeError as refused:
            log.warning("page refused, answering with an error", sys_id=record.sys_id, error=str(refused))
            answer, last = self.runner.refusal(record, refused, page=(number, True)), True
            stored = await self._complete(record, answer)
        self._pages_written[record.sys_id] = number
        if self.on_page is not None:
            self.on_page(record.sys_id, answer.sys_id)
        if last:
            self._free_slot(record.sys_id)
            self._count_answer(record, answer, stored)
            return False
        if self.page_gate is not None:
            await self.page_gate(record.sys_id, number + 1)
        return True

    async def abandon(self, sys_id: str, reason: str) -> None:
        """Stop the run of ``sys_id`` (its caller no longer waits for it: an embedded agent's caller
        left) and close its answer with ``reason`` as the error, so it is never re-run."""
        task = self._in_flight.get(sys_id)
        if task is None:
            return
        pages = self._pages_written.get(sys_id, 0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if self._results is not None:
            await self._results.flush()
        record = await asyncio.to_thread(self.queue.get, sys_id)
        if record is None or record.state not in ("ready", "processing"):
            return
        answer = self.runner.refusal(record, ProbeError(reason), page=(pages + 1, True) if pages else None)
        with contextlib.suppress(MidprobeError):
            await self._complete(record, answer)

    def _free_slot(self, sys_id: str) -> None:
        self._in_flight_pool.pop(sys_id, None)
        if self._wake is not None:
            self._wake.set()

    def _count_answer(self, record: EccRecord, answer: EccRecord, stored: bool) -> None:
        if not stored:
            self.stats.duplicates += 1
            log.info("already answered", agent=self.name, sys_id=record.sys_id)
        elif answer.error_string:
            self.stats.errors += 1
            log.info(
                "answered with error", sys_id=record.sys_id, topic=record.topic, error=answer.error_string
            )
        else:
            self.stats.answered += 1
            log.info("answered", sys_id=record.sys_id, topic=record.topic, source=record.source)
        if stored:
            tell = self.lifecycle.answered(failed=bool(answer.error_string))
            if tell is not None:
                task = asyncio.create_task(asyncio.to_thread(tell, self.queue, self.name))
                self._lifecycle_tasks.add(task)
                task.add_done_callback(self._lifecycle_tasks.discard)

    async def _complete_pages(self, record: EccRecord, pages: list[EccRecord]) -> bool:
        """Write the answer's ``pages`` (``split_pages``: one when it fits); True if the first page was stored.

        The pages go to the writer together, in order (one batch when it is idle); an outage
        is raised as :meth:`_complete` raises it, and so is the refusal of a single page; the
        refusal of a page of several is raised as ``_PageRefused`` naming the first refused.
        """
        if len(pages) == 1:
            return await self._complete(record, pages[0])
        outcomes = await asyncio.gather(
            *(self._complete(record, page) for page in pages), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, QueueError) or not isinstance(outcome, bool | MidprobeError):
                raise outcome
        for number, outcome in enumerate(outcomes, start=1):
            if isinstance(outcome, MidprobeError):
                raise _PageRefused(number, outcome)
        return bool(outcomes[0])

    async def _complete(self, record: EccRecord, answer: EccRecord) -> bool:
        assert self._results is not None
        return await self._results.write(record.sys_id, answer)

    def _count_queue_error(self) -> None:
        self.stats.queue_errors += 1

    async def _renew_leases(self) -> None:
        interval = self.timings.renew_seconds
        while True:
            await self.timer(interval)
            held = list(self._in_flight)
            if not held:
                continue
            try:
                renewed = set(
                    await asyncio.to_thread(
                        functools.partial(
                            self.queue.renew,
                            self.name,
                            held,
                            self.timings.lease_seconds,
                            instance=self.instance,
                        )
                    )
                )
            except QueueError as error:
                self.stats.queue_errors += 1
                log.warning("lease renewal failed", agent=self.name, error=str(error))
                continue
            for sys_id in held:
                task = self._in_flight.get(sys_id)
                if sys_id not in renewed and task is not None and not task.done():
                    log.warning("lease lost, abandoning", sys_id=sys_id)
                    task.cancel()

    async def _watch_queue(self) -> None:
        """Wake the poll loop when the queue says work arrived (docs/ecc-reference.md: poll at once when notified)."""
        assert self._wake is not None
        while True:
            try:
                notified = await asyncio.to_thread(self.queue.wait_for_work, self.name, WATCH_SLICE_SECONDS)
            except QueueError as error:
                log.warning("queue watch failed", agent=self.name, error=str(error))
                await asyncio.sleep(WATCH_SLICE_SECONDS)
                continue
            if notified:
                self._wake.set()

    def queue_stats(self) -> EccRecord:
        """The ``queue.stats`` input: each pool's size and work in flight, and results waiting to be written."""
        assert self._results is not None
        return new_queue_stats_record(
            self.name,
            pools=[
                (POOL_NAMES[pool], pool, self.pools.for_priority(pool), self._running_in(pool))
                for pool in POOLS
            ],
            in_flight=len(self._in_flight),
            results_waiting=self._results.waiting,
        )

    async def _report_queue_stats(self) -> None:
        """Send ``queue.stats`` every ``queue_stats_seconds``, as the MID does (docs/ecc.md)."""
        while True:
            await self.timer(self.timings.queue_stats_seconds)
            try:
                await asyncio.to_thread(self.queue.send_input, self.queue_stats())
            except MidprobeError as error:
                log.warning("queue.stats not sent", agent=self.name, error=str(error))

    async def _heartbeat(self) -> None:
        while True:
            await self.timer(self.timings.registry_heartbeat_seconds)
            before = self.lifecycle.clock()
            try:
                await asyncio.to_thread(
                    functools.partial(self.queue.heartbeat_agent, self.name, instance=self.instance)
                )
            except AgentNameInUse as error:  # another process took the name over: it runs our work now
                log.error("agent name taken over, stopping", agent=self.name, error=str(error))
                self.request_stop()
                return
            except QueueError as error:
                log.warning("heartbeat failed", agent=self.name, error=str(error))
                continue
            await self._lifecycle_round(before)

    async def _upgrade_checks(self) -> None:
        """Every ``upgrade_check_seconds``: the next lifecycle round asks for the instance-wide version too."""
        while True:
            await self.timer(self.timings.upgrade_check_seconds)
            self._upgrade_check_due = True

    def _plan_upgrade(self) -> UpgradePlan | None:
        """The upgrade to start now, if any (from a worker thread); a request it refuses is ended Failed."""
        if self.upgrader is None or self._upgrading is not None or self.restart_into is not None:
            return None
        try:
            pending = self.queue.pending_upgrade(self.name)
            everywhere = ""
            if self._upgrade_check_due:
                everywhere = self.queue.get_setting(SETTING_MID_VERSION)
                self._upgrade_check_due = False
        except MidprobeError as error:  # e.g. an instance that serves no upgrades: said once
            if str(error) != self._upgrade_check_said:
                self._upgrade_check_said = str(error)
                log.warning("upgrade check failed", agent=self.name, error=str(error))
            return None
        from midprobe.runner.agent.upgrade import plan_upgrade

        running, pinned = self.registration.version, self.lifecycle.pinned_version
        plan, refusal = plan_upgrade(running, pinned, pending, everywhere, frozenset(self._given_up))
        if everywhere and pinned and everywhere != running and everywhere not in self._given_up:
            self._given_up.add(everywhere)  # said once per version
            log.info(
                "not upgrading: pinned", agent=self.name, version=running, wanted=everywhere, pinned=pinned
            )
        if pending is not None and refusal is not None:
            done = pending.to_version == running and not pinned
            self.queue.start_upgrade(self.name, running, pending.to_version, sys_id=pending.sys_id)
            self.queue.end_upgrade(pending.sys_id, succeeded=done, reason=refusal)
            log.info("upgrade request ended", agent=self.name, version=pending.to_version, reason=refusal)
        return plan

    async def _show(self, status: str) -> None:
        async with self._round_lock:
            await asyncio.to_thread(
                functools.partial(self.queue.set_agent_status, self.name, status, instance=self.instance)
            )
            self._status = status
        log.info("status", agent=self.name, status=status)

    async def _upgrade(self, plan: UpgradePlan) -> None:
        """Prepare ``plan``'s version beside this one; restart into it if its self-test passes, else stay."""
        from midprobe.runner.agent.upgrade import UpgradeFailed

        assert self.upgrader is not None
        running = self.registration.version
        request = None if plan.request is None else plan.request.sys_id
        try:
            started = await asyncio.to_thread(
                functools.partial(self.queue.start_upgrade, self.name, running, plan.version, sys_id=request)
            )
            await self._show("Upgrading")
        except MidprobeError as error:
            log.warning("upgrade not started", agent=self.name, version=plan.version, error=str(error))
            return
        log.info("upgrading", agent=self.name, version=running, to_version=plan.version)
        try:
            python = await asyncio.to_thread(self.upgrader.prepare, plan.version)
        except (UpgradeFailed, OSError) as error:
            reason = str(error) if isinstance(error, UpgradeFailed) else f"{error.strerror or error}"
            self._given_up.add(plan.version)
            log.warning(
                "upgrade failed, staying on this version", agent=self.name, version=running, reason=reason
            )
            await self._upgrade_failed(started.sys_id, reason)
            with contextlib.suppress(MidprobeError):
                await self._show("Upgrade Failed")
            return
        except asyncio.CancelledError:  # stopped while preparing: the attempt ends with the process
            await self._upgrade_failed(started.sys_id, "the agent was stopped during the upgrade")
            raise
        log.info(
            "self-test passed, restarting into the new version", agent=self.name, to_version=plan.version
        )
        self.restart_into = (python, started.sys_id)
        self._halt()

    async def _upgrade_failed(self, sys_id: str, reason: str) -> None:
        with contextlib.suppress(MidprobeError):
            await asyncio.to_thread(
                functools.partial(self.queue.end_upgrade, sys_id, succeeded=False, reason=reason)
            )

    async def _upgraded(self, sys_id: str) -> None:
        """This process is the new version of an upgrade: it succeeded."""
        try:
            await asyncio.to_thread(
                functools.partial(
                    self.queue.end_upgrade,
                    sys_id,
                    succeeded=True,
                    reason=f"running {self.registration.version}",
                )
            )
            self.upgrade_finished = True
            log.info("upgraded", agent=self.name, version=self.registration.version)
        except MidprobeError as error:
            log.warning("upgrade not recorded", agent=self.name, error=str(error))

    async def _lifecycle_round(self, before: datetime) -> None:
        """Act on what the instance decided (validation, rekey, pause, drain) and show the status it calls for."""

        def round_trip() -> UpgradePlan | None:
            registration, status = self.lifecycle.check(
                self.queue,
                self.registration,
                self.runner,
                in_flight=len(self._in_flight),
                instance=self.instance,
                before=before,
            )
            self.registration = registration
            if status is not None and status != self._status:
                self.queue.set_agent_status(self.name, status, instance=self.instance)
                self._status = status
                log.info("status", agent=self.name, status=status)
            return self._plan_upgrade()

        try:
            async with self._round_lock:
                plan = await asyncio.to_thread(round_trip)
            if plan is not None:
                self._upgrading = asyncio.create_task(self._upgrade(plan), name="upgrade")
                self._upgrading.add_done_callback(self._upgrade_done)
        except AgentNameInUse as error:
            log.error("agent name taken over, stopping", agent=self.name, error=str(error))
            self.request_stop()
        except MidprobeError as error:
            log.warning("lifecycle check failed", agent=self.name, error=str(error))

    def _upgrade_done(self, task: asyncio.Task[None]) -> None:
        if self._upgrading is task:
            self._upgrading = None
        if not task.cancelled() and task.exception() is not None:
            log.error("upgrade crashed", agent=self.name, error=repr(task.exception()))

    async def _drain(self) -> None:
        """Let in-flight runs finish within the drain time; release whatever is left."""
        if not self._in_flight:
            return
        tasks = list(self._in_flight.values())
        _done, pending = await asyncio.wait(tasks, timeout=self.timings.drain_seconds)
        if not pending:
            return
        left = [sys_id for sys_id, task in self._in_flight.items() if task in pending]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        try:
            released = await asyncio.to_thread(self.queue.release, self.name, left)
            self.stats.released += len(released)
            log.info("released unfinished work", agent=self.name, count=len(released))
        except QueueError as error:
            log.error("release failed; leases will expire", agent=self.name, error=str(error))

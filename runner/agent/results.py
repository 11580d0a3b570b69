"""Writes an agent's answers to the queue in batches: one transaction for every answer waiting.

An answer is written at once when the writer is idle; answers that finish while a batch
is being written go together in the next one, so a busy agent pays a few statements per
batch instead of a transaction per result, and an idle one adds no delay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from midprobe.capabilities.errors import MidprobeError, QueueError
from midprobe.runner.agent.logs import get_logger
from midprobe.runner.ecc.record import EccRecord
from midprobe.runner.queue.base import EccQueue

log = get_logger("midprobe.agent")

#: Most answers in one transaction.
MAX_BATCH = 500
#: Tries of one batch before its answers are given up (their leases expire and they are re-run).
ATTEMPTS = 5
FIRST_RETRY_SECONDS = 0.5


@dataclass
class ResultWriter:
    """Batches ``EccQueue.complete_many`` calls; :meth:`write` waits for its answer's outcome."""

    queue: EccQueue
    #: Called once per failed attempt (the agent counts queue errors).
    on_queue_error: Callable[[], None] = lambda: None
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    _waiting: list[tuple[str, EccRecord, asyncio.Future[bool]]] = field(default_factory=list, init=False)
    _worker: asyncio.Task[None] | None = field(default=None, init=False)

    async def write(self, output_sys_id: str, answer: EccRecord) -> bool:
        """Store ``answer`` for ``output_sys_id``: what ``EccQueue.complete`` returns or raises for it."""
        outcome: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((output_sys_id, answer, outcome))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._write_waiting(), name="write-results")
        # A run cancelled now cancels only its wait: the answer handed over is still written
        # (as a write already under way always was).
        return await outcome

    @property
    def waiting(self) -> int:
        """Answers handed over and not yet written."""
        return len(self._waiting)

    async def flush(self) -> None:
        """Wait until every answer handed to :meth:`write` is written (or given up)."""
        while self._worker is not None and not self._worker.done():
            await asyncio.shield(self._worker)

    async def _write_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            try:
                outcomes = await self._complete(batch)
            except Exception as error:  # every attempt failed, or a bug: each run learns it, none waits
                for _, _, outcome in batch:
                    if not outcome.done():
                        outcome.set_exception(error)
                continue
            for (_, _, future), result in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(result, MidprobeError):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def _complete(
        self, batch: list[tuple[str, EccRecord, asyncio.Future[bool]]]
    ) -> list[bool | MidprobeError]:
        pairs = [(output_sys_id, answer) for output_sys_id, answer, _ in batch]
        delay = FIRST_RETRY_SECONDS
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await asyncio.to_thread(self.queue.complete_many, pairs)
            except QueueError as error:
                self.on_queue_error()
                if attempt == ATTEMPTS:
                    raise
                log.warning("writing results failed, retrying", count=len(pairs), error=str(error))
                await self.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable: the last attempt raises")


__all__ = ["ResultWriter"]

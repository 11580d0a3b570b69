"""The one bounded fan-out: run an async function over a stream of items, at most N at once.

Shazzam's readers and ``midprobe scan``'s per-host enrichment both use it. Items are pulled only
while a slot is free, so a slow consumer or slow work holds the producer back (back-pressure),
and each result is handed on as soon as its work finishes, not in input order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["fan_out"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class _Fed:
    """Every item has been handed to ``work`` (or reading the items failed with ``error``)."""

    error: BaseException | None = None


async def fan_out(
    items: AsyncIterable[T], work: Callable[[T], Awaitable[R]], limit: int
) -> AsyncGenerator[R, None]:
    """Yield ``await work(item)`` for each item, at most ``limit`` of them running (or finished and
    not yet taken) at once, in the order they finish.

    The items are read by a task of their own, so a result never waits for the next item.
    An exception from ``work`` or from ``items`` ends the stream with that exception; leaving the
    ``async for`` early (or cancelling) cancels the running work and closes ``items``.
    """
    if limit < 1:
        raise ValueError("the fan-out limit must be at least 1")
    slots = asyncio.Semaphore(limit)
    finished: asyncio.Queue[asyncio.Future[R] | _Fed] = asyncio.Queue()
    running: set[asyncio.Future[R]] = set()

    async def feed() -> None:
        outcome = _Fed()
        try:
            async for item in items:
                await slots.acquire()  # released when the consumer takes a result
                task = asyncio.ensure_future(work(item))
                running.add(task)
                task.add_done_callback(finished.put_nowait)
        except Exception as error:
            outcome = _Fed(error)
        finished.put_nowait(outcome)

    feeder = asyncio.ensure_future(feed())
    fed: _Fed | None = None
    try:
        while fed is None or running:
            done = await finished.get()
            if isinstance(done, _Fed):
                if done.error is not None:
                    raise done.error
                fed = done
                continue
            running.discard(done)
            slots.release()
            yield done.result()
    finally:
        pending: list[asyncio.Future[None] | asyncio.Future[R]] = [feeder, *running]
        for future in pending:
            future.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        closer = getattr(items, "aclose", None)
        if closer is not None:
            await closer()

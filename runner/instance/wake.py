"""The agents' wake-up channel: a long poll that ends when work may be ready, or at its bound.

Waiters wait on an asyncio event in their own loop (never a thread of the shared pool).
``notify`` (an output enqueued through the API) wakes them at once; work written straight
into the database is seen by a periodic check that the caller supplies.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable

DEFAULT_CHECK_SECONDS = 1.0
"""How often a waiting long poll looks at the queue itself (work enqueued around the API)."""


class WorkSignal:
    """Wakes every waiting long poll; safe to notify from any thread or event loop."""

    def __init__(
        self, *, check_seconds: float = DEFAULT_CHECK_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._check_seconds = check_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._version = 0

    @property
    def check_seconds(self) -> float:
        """How often a waiting poll looks at the queue itself."""
        return self._check_seconds

    @property
    def version(self) -> int:
        """How many times ``notify`` was called: a poll that saw another number has news."""
        return self._version

    def notify(self) -> None:
        with self._lock:
            self._version += 1
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that loop has closed: its waiter is gone
                loop.call_soon_threadsafe(event.set)

    async def wait(self, seconds: float, check: Callable[[], Awaitable[bool]]) -> bool:
        """True when notified or when ``check()`` (run every few seconds) says so; False after ``seconds``."""
        event = asyncio.Event()
        waiter = (asyncio.get_running_loop(), event)
        with self._lock:
            self._waiters.add(waiter)
        deadline = self._clock() + seconds
        try:
            while (left := deadline - self._clock()) > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(left, self._check_seconds))
                if event.is_set() or await check():
                    return True
            return False
        finally:
            with self._lock:
                self._waiters.discard(waiter)


__all__ = ["DEFAULT_CHECK_SECONDS", "WorkSignal"]

"""Concurrency limits shared by probes and the runner: one semaphore per key, forgotten when idle.

The runner caps probe runs per topic and per target (``runner/agent/limits.py``); the SSH
layer caps connections per host (``probes/ssh/pool.py``). Both hold a ``KeyedLimiter``: a
key gets its semaphore on first use and loses it when its last holder leaves, so limiting
per address over a /16 never accumulates 65536 idle semaphores.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class KeyedLimiter(Generic[K]):
    """At most ``limit`` holders per key at once (``limit`` an int, or a function of the key).

    Semaphores are asyncio ones: use one limiter from one event loop.
    """

    def __init__(self, limit: int | Callable[[K], int]) -> None:
        self._limit = limit
        self._semaphores: dict[K, asyncio.Semaphore] = {}
        self._users: dict[K, int] = {}

    def limit_for(self, key: K) -> int:
        return self._limit(key) if callable(self._limit) else self._limit

    @contextlib.asynccontextmanager
    async def slot(self, key: K) -> AsyncIterator[None]:
        """Hold one of ``key``'s slots for the block (waiting while all are held)."""
        semaphore = self._semaphores.get(key)
        if semaphore is None:
            semaphore = self._semaphores[key] = asyncio.Semaphore(self.limit_for(key))
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with semaphore:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._semaphores[key]

    def holders(self, key: K) -> int:
        """Tasks holding or waiting for a slot of ``key`` (0 once the key is forgotten)."""
        return self._users.get(key, 0)

    def __len__(self) -> int:
        """Keys currently tracked (held or waited for)."""
        return len(self._semaphores)

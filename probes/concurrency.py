"""Concurrency limits shared by probes and the runner: one semaphore per key, forgotten when idle.

The runner caps probe runs per topic and per target (``runner/agent/limits.py``); the SSH
layer caps connections per host (``probes/ssh/pool.py``). Both hold a ``KeyedLimiter``: a
key gets its semaphore on first use and loses it when its last holder leaves, so limiting
per address over a /16 never accumulates 65536 idle semaphores.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from contextlib import AbstractAsyncContextManager
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

    def slot(self, key: K) -> AbstractAsyncContextManager[None]:
        """Hold one of ``key``'s slots for the block (waiting while all are held)."""
        return _Slot(self, key)

    def _enter(self, key: K) -> asyncio.Semaphore:
        semaphore = self._semaphores.get(key)
        if semaphore is None:
            semaphore = self._semaphores[key] = asyncio.Semaphore(self.limit_for(key))
        self._users[key] = self._users.get(key, 0) + 1
        return semaphore

    def _leave(self, key: K) -> None:
        self._users[key] -= 1
        if not self._users[key]:
            del self._users[key], self._semaphores[key]

    def holders(self, key: K) -> int:
        """Tasks holding or waiting for a slot of ``key`` (0 once the key is forgotten)."""
        return self._users.get(key, 0)

    def __len__(self) -> int:
        """Keys currently tracked (held or waited for)."""
        return len(self._semaphores)


class _Slot(Generic[K]):
    """One hold of a key's slot; a class, not a generator: the agent takes one per probe run."""

    __slots__ = ("_key", "_limiter", "_semaphore")

    def __init__(self, limiter: KeyedLimiter[K], key: K) -> None:
        self._limiter = limiter
        self._key = key

    async def __aenter__(self) -> None:
        semaphore = self._limiter._enter(self._key)
        try:
            await semaphore.acquire()
        except BaseException:  # cancelled while waiting: this hold never began
            self._limiter._leave(self._key)
            raise
        self._semaphore = semaphore

    async def __aexit__(self, *exc_info: object) -> None:
        self._semaphore.release()
        self._limiter._leave(self._key)

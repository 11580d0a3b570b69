"""Bounded concurrency for probe runs: priority pools, per-topic and per-target limits.

The MID Server runs three worker pools by priority (interactive 10, expedited 20,
standard 25 threads) so an interactive request never waits behind a long scan;
midprobe keeps the same pools as asyncio semaphores, and adds a cap per probe
kind (topic) and per target so one device is never flooded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from types import TracebackType

from midprobe.probes.concurrency import KeyedLimiter
from midprobe.runner.ecc.record import PRIORITY_EXPEDITED, PRIORITY_INTERACTIVE, PRIORITY_STANDARD

PRIORITY_NAMES = {
    PRIORITY_INTERACTIVE: "interactive",
    PRIORITY_EXPEDITED: "expedited",
    PRIORITY_STANDARD: "standard",
}


@dataclass(frozen=True)
class PoolSizes:
    """Worker pool sizes by priority (docs/ecc-reference.md section 1 defaults)."""

    interactive: int = 10
    expedited: int = 20
    standard: int = 25

    def for_priority(self, priority: int) -> int:
        if priority <= PRIORITY_INTERACTIVE:
            return self.interactive
        if priority == PRIORITY_EXPEDITED:
            return self.expedited
        return self.standard

    @property
    def total(self) -> int:
        return self.interactive + self.expedited + self.standard

    @classmethod
    def scaled(cls, total: int) -> PoolSizes:
        """Pools in the 10:20:25 proportion for ``--concurrency N`` (each at least 1)."""
        if total >= 55:
            extra = total / 55
            return cls(max(1, round(10 * extra)), max(1, round(20 * extra)), max(1, round(25 * extra)))
        return cls(max(1, total * 10 // 55), max(1, total * 20 // 55), max(1, total * 25 // 55))


@dataclass
class ConcurrencyLimits:
    """Semaphores per priority pool, per topic and per target. One instance per agent.

    Topics and targets are ``KeyedLimiter``s (``probes/concurrency.py``, the one the SSH
    layer also uses): a target's semaphore is forgotten when idle, so a /16 never accumulates.
    """

    pools: PoolSizes = field(default_factory=PoolSizes)
    per_topic: Mapping[str, int] = field(default_factory=dict)
    default_per_topic: int = 64
    per_target: int = 8
    _pool_semaphores: dict[int, asyncio.Semaphore] = field(default_factory=dict, init=False)
    _topics: KeyedLimiter[str] = field(init=False)
    _targets: KeyedLimiter[str] = field(init=False)

    def __post_init__(self) -> None:
        self._topics = KeyedLimiter(lambda topic: self.per_topic.get(topic, self.default_per_topic))
        self._targets = KeyedLimiter(self.per_target)

    def _pool(self, priority: int) -> asyncio.Semaphore:
        key = min(max(priority, PRIORITY_INTERACTIVE), PRIORITY_STANDARD)
        if key not in self._pool_semaphores:
            self._pool_semaphores[key] = asyncio.Semaphore(self.pools.for_priority(key))
        return self._pool_semaphores[key]

    def slot(self, priority: int, topic: str, target: str) -> AbstractAsyncContextManager[None]:
        """Hold one slot of the priority pool, the topic and the target for a probe run."""
        return _Slots((self._pool(priority), self._topics.slot(topic), self._targets.slot(target)))


class _Slots:
    """Several holds taken in order and given back in reverse (a class: one per probe run)."""

    __slots__ = ("_held", "_holds")

    def __init__(self, holds: tuple[AbstractAsyncContextManager[object], ...]) -> None:
        self._holds = holds
        self._held = 0

    async def __aenter__(self) -> None:
        try:
            for hold in self._holds:
                await hold.__aenter__()
                self._held += 1
        except BaseException:  # cancelled while waiting: give back what was taken
            await self._give_back(None, None, None)
            raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self._give_back(exc_type, exc, traceback)

    async def _give_back(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        while self._held:
            self._held -= 1
            await self._holds[self._held].__aexit__(exc_type, exc, traceback)

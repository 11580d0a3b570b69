"""A real queue with some of its methods replaced by a test (failures on purpose, counting)."""

from __future__ import annotations

from collections.abc import Sequence

from midprobe.capabilities.errors import QueueError
from midprobe.runner.ecc.record import EccRecord
from midprobe.runner.queue.base import EccQueue, PoolClaim, claim_each


class WrappedQueue:
    """Everything is ``queue``'s, except what a subclass defines; a claim round
    (``claim_pools``) goes through this object's ``claim``, so a replaced claim takes part."""

    def __init__(self, queue: EccQueue) -> None:
        self._queue = queue

    def claim(self, *args: object, **kwargs: object) -> list[EccRecord]:
        return self._queue.claim(*args, **kwargs)  # type: ignore[arg-type]

    def claim_pools(
        self, agent: str, claims: Sequence[PoolClaim], lease_seconds: float, *, instance: str | None = None
    ) -> list[list[EccRecord] | QueueError]:
        return claim_each(self, agent, claims, lease_seconds, instance=instance)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:
        return getattr(self._queue, name)

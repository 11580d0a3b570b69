"""Credential affinity kept in the ECC queue, so every agent on the queue shares it (docs/ecc-reference.md section 5)."""

from __future__ import annotations

from midprobe.runner.queue.base import EccQueue


class QueueAffinityStore:
    """The ``AffinityStore`` of ``midprobe.probes.credentials`` backed by the queue's affinity table."""

    def __init__(self, queue: EccQueue) -> None:
        self._queue = queue

    def get_affinity(self, address: str, protocol: str) -> str | None:
        found = self._queue.get_affinity(address, protocol)
        return found.credential_id if found is not None else None

    def set_affinity(self, address: str, protocol: str, credential_id: str) -> None:
        self._queue.set_affinity(address, protocol, credential_id)

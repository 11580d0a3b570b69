"""The instance's side of credentials: seal a credentials document to each MID that may have it.

The document (``probes.credentials.sealing.portable_document``) never reaches the queue or the
wire as it is: each MID gets it sealed to its own registered public key, stored in its
``ecc_agent`` row until it asks (a new key or an invalidation drops it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from midprobe.probes.credentials.sealing import seal_document
from midprobe.runner.queue.base import AgentRegistration, EccQueue
from midprobe.runner.queue.lifecycle import SETTING_ACCEPTED_MAJOR, credentials_refusal


def seal_for_agent(queue: EccQueue, agent: AgentRegistration, document: Mapping[str, Any]) -> str | None:
    """Seal ``document`` to ``agent``'s key and keep it for it; the sealed text, or None when it may have none."""
    if credentials_refusal(agent, queue.get_setting(SETTING_ACCEPTED_MAJOR)) is not None:
        return None
    sealed = seal_document(document, agent.public_key)
    return sealed if queue.store_sealed_credentials(agent.name, agent.public_key, sealed) else None


def deliver_credentials(
    queue: EccQueue, document: Mapping[str, Any], names: set[str] | None = None
) -> list[str]:
    """Seal ``document`` for every registered MID that may receive credentials (or those of ``names``).

    Returns the names it was sealed for.
    """
    delivered = []
    for agent in queue.list_agents():
        if names is not None and agent.name not in names and agent.short_name not in names:
            continue
        if seal_for_agent(queue, agent, document) is not None:
            delivered.append(agent.name)
    return delivered


__all__ = ["deliver_credentials", "seal_for_agent"]

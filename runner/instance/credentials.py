"""The instance's side of credentials: seal a credentials document to each MID that may have it.

The document (``probes.credentials.sealing.portable_document``) never reaches the queue or the
wire as it is: each MID gets it sealed to its own registered public key. The instance's own
credentials (``instance serve --credentials``) are stored sealed in the MID's ``ecc_agent`` row
until it asks (a new key or an invalidation drops it); a discovery's are sealed when a MID that
holds work of that discovery asks (:func:`seal_discovery_credentials`) and kept nowhere sealed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from midprobe.capabilities.errors import ConfigError
from midprobe.probes.credentials.sealing import seal_document
from midprobe.runner.ecc.record import normalize_agent_name
from midprobe.runner.instance.schedule_credentials import ScheduleCredentials
from midprobe.runner.queue.base import AgentRegistration, EccQueue
from midprobe.runner.queue.lifecycle import SETTING_ACCEPTED_MAJOR, credentials_refusal

log = logging.getLogger("midprobe.instance")


class NotHolding(ConfigError):
    """The MID asked for the credentials of work that is not its own (no such output, or another MID's)."""


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


def seal_discovery_credentials(
    queue: EccQueue, kept: ScheduleCredentials, name: str, output_sys_id: str
) -> str | None:
    """The credentials of the discovery ``output_sys_id`` belongs to, sealed to MID ``name``'s key.

    Only for the MID the output is addressed to (``NotHolding`` otherwise); None when the
    discovery brings no credentials (or has ended), or when the MID may receive none
    (not validated, no key, a version the instance refuses).
    """
    agent = normalize_agent_name(name)
    output = queue.get(output_sys_id)
    if output is None or output.queue != "output" or output.agent != agent:
        raise NotHolding(f"{agent} holds no output {output_sys_id}", field="sys_id")
    if not output.agent_correlator or not kept.has(output.agent_correlator):
        return None
    registration = queue.get_agent(agent)
    refusal = (
        "not registered"
        if registration is None
        else credentials_refusal(registration, queue.get_setting(SETTING_ACCEPTED_MAJOR))
    )
    if refusal is not None or registration is None:
        log.warning("%s gets no credentials of discovery %s: %s", agent, output.agent_correlator, refusal)
        return None
    document = kept.get(output.agent_correlator)
    return None if document is None else seal_document(document, registration.public_key)


__all__ = ["NotHolding", "deliver_credentials", "seal_discovery_credentials", "seal_for_agent"]

"""Who an agent is: its MID record, the capabilities it advertises, and its routing check.

The agent's entry in a capabilities file (``[[mid_server]]`` named like the agent)
gives its applications, IP ranges and capabilities; ``Nmap`` is added only when a
working nmap is detected on this host. Without a file the agent serves every
application and address with the special capability ``ALL``. Resolve DNS routing
uses the same selector code as ``midprobe select``.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from midprobe.capabilities.ipranges import IPRange
from midprobe.capabilities.model import (
    ALL_CAPABILITY,
    BUILTIN_CAPABILITY_NAMES,
    NMAP_CAPABILITY,
    Capability,
    CapabilityDefinition,
    MidServer,
    MidStatus,
)
from midprobe.capabilities.nmap import NmapDetection, advertised_capabilities, detect_nmap
from midprobe.capabilities.selection import MidSelector
from midprobe.runner.agent.config import AgentConfig
from midprobe.runner.agent.probe_runner import AgentIdentity
from midprobe.runner.ecc.record import agent_short_name
from midprobe.runner.queue.base import AgentRegistration
from midprobe.runner.queue.lifecycle import midprobe_version, version_refusal

RESOLVE_DNS = "Resolve DNS"
#: Resolve DNS is defined with its built-in value test even without a capabilities file.
RESOLVE_DNS_DEFINITION = CapabilityDefinition(RESOLVE_DNS, "resolve_dns")
#: Topics whose source is one or more DNS names to resolve: routed by the Resolve DNS capability.
NAME_RESOLUTION_TOPICS = frozenset({"DNSLookupProbe"})


@dataclass(frozen=True)
class AgentSetup:
    """Everything derived from the config before the agent starts."""

    mid: MidServer
    nmap: NmapDetection
    identity: AgentIdentity
    registration: AgentRegistration


def _default_mid(name: str) -> MidServer:
    return MidServer(
        name=name,
        status=MidStatus.UP,
        validated=True,
        applications=("ALL",),
        ip_ranges=(IPRange.parse("ALL"),),
        capabilities=(Capability(ALL_CAPABILITY),),
    )


def resolve_dns_routing(
    mid: MidServer, selector: MidSelector
) -> Callable[[str, str, Mapping[str, str]], str | None]:
    """A routing check: a name is resolved only by a MID whose Resolve DNS capability matches it."""

    def check(topic: str, source: str, parameters: Mapping[str, str]) -> str | None:
        if topic not in NAME_RESOLUTION_TOPICS or RESOLVE_DNS not in selector.defined_names:
            return None
        # Imported on first use: an agent that resolves no names never loads the DNS probes.
        from midprobe.probes.dns.lookup import requested_names

        for name in requested_names(source, parameters):
            if selector.match_step(mid, [Capability(RESOLVE_DNS, name)]) is None:
                values = [str(c) for c in mid.effective_capabilities if c.name == RESOLVE_DNS] or ["none"]
                return (
                    f"agent {mid.name} may not resolve {name!r}: its Resolve DNS capability "
                    f"({', '.join(values)}) does not match it"
                )
        return None

    return check


def detect_configured_nmap() -> NmapDetection:
    """Detect the nmap the probes will run: ``MIDPROBE_NMAP`` when set (as the nmap probes read it), else PATH."""
    return detect_nmap(os.environ.get("MIDPROBE_NMAP") or "nmap")


def build_agent_setup(
    config: AgentConfig,
    *,
    detect: Callable[[], NmapDetection] = detect_configured_nmap,
    public_key: str = "",
) -> AgentSetup:
    """Load the agent's MID record, detect nmap, and build its identity and registration.

    ``public_key``: the MID's key (credentials are sealed to it); the version is this midprobe's.
    """
    name = agent_short_name(config.name)
    if config.capabilities_file is not None:
        # Imported for a capabilities file only: an agent without one starts without the loader.
        from midprobe.capabilities.config import load_config

        capability_config = load_config(config.capabilities_file)
        assigned = capability_config.mid_server(name)
        selector = capability_config.selector()
    else:
        assigned = _default_mid(name)
        selector = MidSelector((RESOLVE_DNS_DEFINITION,))
    detection = detect()
    mid = MidServer(
        name=assigned.name,
        status=assigned.status,
        validated=assigned.validated,
        applications=assigned.applications,
        ip_ranges=assigned.ip_ranges,
        excluded_ip_ranges=assigned.excluded_ip_ranges,
        capabilities=assigned.capabilities,
        nmap_installed=detection.found,
    )
    advertised = advertised_capabilities(assigned, detection)
    identity = AgentIdentity(
        name=name,
        capabilities=frozenset(capability.name for capability in advertised),
        routing_check=resolve_dns_routing(mid, selector),
    )
    registration = AgentRegistration(
        name=name,
        status=str(mid.status),
        validated=mid.validated,
        applications=mid.applications,
        ip_ranges=tuple(str(r) for r in mid.ip_ranges),
        excluded_ip_ranges=tuple(str(r) for r in mid.excluded_ip_ranges),
        capabilities=tuple((c.name, c.value) for c in advertised),
        nmap_installed=detection.found,
        host=platform.node(),
        pid=os.getpid(),
        started_at=datetime.now(UTC),
        public_key=public_key,
        version=config.version or midprobe_version(),
    )
    return AgentSetup(mid=mid, nmap=detection, identity=identity, registration=registration)


def mid_server_from_registration(
    registration: AgentRegistration, *, live: bool, accepted_major: str | None = None
) -> MidServer:
    """The MID record of a registered agent; one that stopped heartbeating counts as Down.

    With ``accepted_major`` (the instance's), a MID of a version the instance refuses counts as
    not validated: selecting it would leave its work unclaimed.
    """
    refused = accepted_major is not None and (
        version_refusal(registration.version, registration.pinned_version, accepted_major) is not None
    )
    return MidServer(
        name=registration.short_name,
        status=MidStatus.parse(registration.status) if live else MidStatus.DOWN,
        validated=registration.validated and not refused,
        applications=registration.applications,
        ip_ranges=tuple(IPRange.parse(text) for text in registration.ip_ranges),
        excluded_ip_ranges=tuple(IPRange.parse(text) for text in registration.excluded_ip_ranges),
        capabilities=tuple(
            Capability(name, value) for name, value in registration.capabilities if name != NMAP_CAPABILITY
        ),
        nmap_installed=registration.nmap_installed,
    )


def definitions_from_registrations(
    registrations: Sequence[AgentRegistration], configured: Sequence[CapabilityDefinition] = ()
) -> tuple[CapabilityDefinition, ...]:
    """Defined capabilities for selecting among agents: the configured ones, plus every name an agent carries."""
    definitions = {definition.name: definition for definition in configured}
    definitions.setdefault(RESOLVE_DNS, RESOLVE_DNS_DEFINITION)
    for registration in registrations:
        for name, _value in registration.capabilities:
            if name not in BUILTIN_CAPABILITY_NAMES:
                definitions.setdefault(name, CapabilityDefinition(name))
    return tuple(definitions.values())

"""The topic -> probe registry (one per runner instance; duplicate topics are an error)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from midprobe.capabilities.errors import ProbeParameterError
from midprobe.probes.base import AnyProbe

#: Modules whose probes the default registry holds, in registration order: a probe package
#: exposes ``PROBES`` from its ``__init__`` (``dns``, ``ssh``, ``nmap``, ``snmp``, ``sweep``,
#: ``banner``); a single-module probe its ``PROBE``.
BUILTIN_PROBE_MODULES: tuple[str, ...] = (
    "midprobe.probes.heartbeat",
    "midprobe.probes.shazzam",
    "midprobe.probes.dns",
    "midprobe.probes.ssh",
    "midprobe.probes.nmap",
    "midprobe.probes.snmp",
    "midprobe.probes.sweep",
    "midprobe.probes.banner",
)


@dataclass
class ProbeRegistry:
    """Maps ECC topics to probes. Kept per instance, never on the class."""

    _probes: dict[str, AnyProbe] = field(default_factory=dict)

    def register(self, probe: AnyProbe) -> None:
        """Add ``probe``; a second probe for the same topic is a programming error (``ValueError``).

        Not a ``MidprobeError``: those are bad input or a failing device, told to the user in one
        line; two probes claiming one topic is a bug in the code that builds the registry.
        """
        if probe.topic in self._probes:
            raise ValueError(f"a probe is already registered for topic {probe.topic!r}")
        self._probes[probe.topic] = probe

    def get(self, topic: str) -> AnyProbe:
        try:
            return self._probes[topic]
        except KeyError:
            known = ", ".join(sorted(self._probes)) or "none"
            raise ProbeParameterError(f"no probe handles topic {topic!r} (known: {known})") from None

    def __contains__(self, topic: object) -> bool:
        return topic in self._probes

    def topics(self) -> list[str]:
        return sorted(self._probes)


def default_registry() -> ProbeRegistry:
    """A new registry holding every built-in probe."""
    registry = ProbeRegistry()
    for module_name in BUILTIN_PROBE_MODULES:
        module = importlib.import_module(module_name)
        for probe in getattr(module, "PROBES", None) or (module.PROBE,):  # PROBES: several topics
            registry.register(probe)
    return registry

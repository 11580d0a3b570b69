"""The topic -> probe registry (one per runner instance; duplicate topics are an error)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from midprobe.capabilities.errors import ProbeParameterError
from midprobe.probes.base import AnyProbe

#: Every built-in topic and the module whose probes hold it, in registration order: a probe
#: package exposes ``PROBES`` from its ``__init__`` (``dns``, ``ssh``, ``nmap``, ``snmp``,
#: ``sweep``, ``banner``); a single-module probe its ``PROBE``. A module is imported when one
#: of its topics is first asked for, so an agent answering heartbeats never loads paramiko or
#: pysnmp; the topics its probes have are checked against this table then.
BUILTIN_TOPICS: dict[str, str] = {
    "HeartbeatProbe": "midprobe.probes.heartbeat",
    "Shazzam": "midprobe.probes.shazzam",
    "DNS": "midprobe.probes.dns",
    "DNSLookupProbe": "midprobe.probes.dns",
    "DNSNameResolver": "midprobe.probes.dns",
    "SSHCommand": "midprobe.probes.ssh",
    "SSHClassify": "midprobe.probes.ssh",
    "SSHIdentity": "midprobe.probes.ssh",
    "SSHExplore": "midprobe.probes.ssh",
    "NmapHostScan": "midprobe.probes.nmap",
    "NmapApplicationScan": "midprobe.probes.nmap",
    "NmapDiscovery": "midprobe.probes.nmap",
    "NmapServiceScan": "midprobe.probes.nmap",
    "NmapOSScan": "midprobe.probes.nmap",
    "NmapScript": "midprobe.probes.nmap",
    "SNMP": "midprobe.probes.snmp",
    "SNMPClassify": "midprobe.probes.snmp",
    "SNMPIdentity": "midprobe.probes.snmp",
    "SNMPExplore": "midprobe.probes.snmp",
    "HostSweep": "midprobe.probes.sweep",
    "BannerSniff": "midprobe.probes.banner",
}
BUILTIN_PROBE_MODULES: tuple[str, ...] = tuple(dict.fromkeys(BUILTIN_TOPICS.values()))


@dataclass
class ProbeRegistry:
    """Maps ECC topics to probes. Kept per instance, never on the class."""

    _probes: dict[str, AnyProbe] = field(default_factory=dict)
    #: Topics whose module is not imported yet -> that module.
    _modules: dict[str, str] = field(default_factory=dict)

    def register(self, probe: AnyProbe) -> None:
        """Add ``probe``; a second probe for the same topic is a programming error (``ValueError``).

        Not a ``MidprobeError``: those are bad input or a failing device, told to the user in one
        line; two probes claiming one topic is a bug in the code that builds the registry.
        """
        self._check_new(probe.topic)
        self._probes[probe.topic] = probe

    def register_module(self, module_name: str, topics: tuple[str, ...]) -> None:
        """Add the probes of ``module_name`` (its ``PROBES``, or its ``PROBE``) under ``topics``.

        The module is imported when one of them is first asked for; the topics its probes
        have must then be exactly these (``ValueError`` otherwise, a bug like a duplicate).
        """
        for topic in topics:
            self._check_new(topic)
        self._modules.update(dict.fromkeys(topics, module_name))

    def _check_new(self, topic: str) -> None:
        if topic in self._probes or topic in self._modules:
            raise ValueError(f"a probe is already registered for topic {topic!r}")

    def _load(self, module_name: str) -> None:
        module = importlib.import_module(module_name)
        probes = getattr(module, "PROBES", None) or (module.PROBE,)
        expected = sorted(topic for topic, name in self._modules.items() if name == module_name)
        found = sorted(probe.topic for probe in probes)
        if found != expected:
            raise ValueError(f"module {module_name} has probes for {found}, registered as {expected}")
        for topic in expected:
            del self._modules[topic]
        for probe in probes:
            self.register(probe)

    def get(self, topic: str) -> AnyProbe:
        if topic in self._modules:
            self._load(self._modules[topic])
        try:
            return self._probes[topic]
        except KeyError:
            known = ", ".join(self.topics()) or "none"
            raise ProbeParameterError(f"no probe handles topic {topic!r} (known: {known})") from None

    def __contains__(self, topic: object) -> bool:
        return topic in self._probes or topic in self._modules

    def topics(self) -> list[str]:
        return sorted({*self._probes, *self._modules})


def default_registry() -> ProbeRegistry:
    """A new registry holding every built-in probe (each module imported when first needed)."""
    registry = ProbeRegistry()
    for module_name in BUILTIN_PROBE_MODULES:
        registry.register_module(module_name, tuple(t for t, m in BUILTIN_TOPICS.items() if m == module_name))
    return registry

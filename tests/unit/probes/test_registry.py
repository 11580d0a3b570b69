"""The probe registry: built-in probe modules imported when one of their topics is first asked for."""

from __future__ import annotations

import subprocess
import sys

import pytest

from midprobe.capabilities.errors import ProbeParameterError
from midprobe.probes.heartbeat import HeartbeatProbe
from midprobe.probes.registry import BUILTIN_TOPICS, ProbeRegistry, default_registry


def test_every_builtin_module_registers_exactly_the_topics_the_table_names() -> None:
    registry = default_registry()
    listed = registry.topics()

    probes = {topic: registry.get(topic) for topic in listed}  # imports every module, checked

    assert all(probe.topic == topic for topic, probe in probes.items())
    assert registry.topics() == listed == sorted(BUILTIN_TOPICS)


def test_an_agent_answering_a_heartbeat_loads_no_other_probe_nor_their_libraries() -> None:
    script = (
        "import sys\n"
        "import midprobe.runner.cli.agent\n"
        "from midprobe.probes.registry import default_registry\n"
        "registry = default_registry()\n"
        "assert 'SSHCommand' in registry\n"
        "registry.get('HeartbeatProbe')\n"
        "print(sorted(m for m in sys.modules if m in ('paramiko', 'pysnmp', 'dns') or m.startswith('midprobe.probes.')"
        " and m.split('.')[2] in ('ssh', 'snmp', 'nmap', 'dns', 'banner', 'sweep', 'shazzam')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_module_whose_probes_differ_from_its_entry_is_refused_naming_it() -> None:
    registry = ProbeRegistry()
    registry.register_module("midprobe.probes.heartbeat", ("HeartbeatProbe", "Pulse"))
    with pytest.raises(ValueError, match=r"midprobe\.probes\.heartbeat has probes for \['HeartbeatProbe'\]"):
        registry.get("Pulse")


def test_a_topic_is_registered_once_whether_by_probe_or_by_module() -> None:
    registry = ProbeRegistry()
    registry.register_module("midprobe.probes.heartbeat", ("HeartbeatProbe",))
    with pytest.raises(ValueError, match="already registered for topic 'HeartbeatProbe'"):
        registry.register(HeartbeatProbe())
    with pytest.raises(ValueError, match="already registered"):
        registry.register_module("midprobe.probes.other", ("HeartbeatProbe",))


def test_an_unknown_topic_names_the_known_ones_without_importing_them() -> None:
    registry = ProbeRegistry()
    registry.register_module("midprobe.probes.heartbeat", ("HeartbeatProbe",))
    with pytest.raises(ProbeParameterError, match=r"no probe handles topic 'Nope' \(known: HeartbeatProbe\)"):
        registry.get("Nope")

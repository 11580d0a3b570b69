"""The SNMP topics the default registry holds: ``SNMP`` and ``SNMPClassify``."""

from __future__ import annotations

from midprobe.probes.snmp import classify_probe, probe

PROBES = (probe.PROBE, classify_probe.PROBE)

"""SNMP: the ``SNMP`` probe (walks an ``oid_spec_list``), ``SNMPClassify``, ``SNMPIdentity`` and ``SNMPExplore``.

v1/v2c through a native codec, SNMPv3 through pysnmp 7; results as the ECC typed XML. ``query``
(SNMP) and ``classify`` (SNMPClassify) are probes with a ``PROBE``, as ``ssh/command`` and
``ssh/classify`` are, ``explore`` holds discovery's identification and exploration probes;
``facts`` reads what classification needs. See docs/snmp.md for the rest.
"""

from __future__ import annotations

from midprobe.probes.snmp.classify import PROBE as SNMP_CLASSIFY_PROBE
from midprobe.probes.snmp.explore import EXPLORE_PROBE as SNMP_EXPLORE_PROBE
from midprobe.probes.snmp.explore import IDENTITY_PROBE as SNMP_IDENTITY_PROBE
from midprobe.probes.snmp.query import PROBE as SNMP_PROBE

#: Every probe of this package, for the registry.
PROBES = (SNMP_PROBE, SNMP_CLASSIFY_PROBE, SNMP_IDENTITY_PROBE, SNMP_EXPLORE_PROBE)

__all__ = ["PROBES", "SNMP_CLASSIFY_PROBE", "SNMP_EXPLORE_PROBE", "SNMP_IDENTITY_PROBE", "SNMP_PROBE"]

"""Nmap probes: typed parameters to an allow-listed nmap argv, python-nmap to run it, our own XML parser.

One module per ECC topic (``host_scan``, ``application_scan``, ``discovery``, ``service_scan``,
``os_scan``, ``script_scan``); ``parse`` turns nmap's XML into typed results, ``encode`` turns those into
ECC ``<result>`` elements, ``options`` holds the allow-lists. See docs/nmap.md.
"""

from __future__ import annotations

from midprobe.probes.nmap.application_scan import PROBE as APPLICATION_SCAN_PROBE
from midprobe.probes.nmap.cmdb import cmdb_class_for_host, cmdb_class_for_os
from midprobe.probes.nmap.discovery import PROBE as DISCOVERY_PROBE
from midprobe.probes.nmap.host_scan import PROBE as HOST_SCAN_PROBE
from midprobe.probes.nmap.os_scan import PROBE as OS_SCAN_PROBE
from midprobe.probes.nmap.parse import NmapScan, parse_nmap_xml
from midprobe.probes.nmap.script_scan import PROBE as SCRIPT_SCAN_PROBE
from midprobe.probes.nmap.service_scan import PROBE as SERVICE_SCAN_PROBE

#: Every probe of this package, for the registry (one module per topic).
PROBES = (
    HOST_SCAN_PROBE,
    APPLICATION_SCAN_PROBE,
    DISCOVERY_PROBE,
    SERVICE_SCAN_PROBE,
    OS_SCAN_PROBE,
    SCRIPT_SCAN_PROBE,
)

__all__ = [
    "APPLICATION_SCAN_PROBE",
    "DISCOVERY_PROBE",
    "HOST_SCAN_PROBE",
    "OS_SCAN_PROBE",
    "PROBES",
    "SCRIPT_SCAN_PROBE",
    "SERVICE_SCAN_PROBE",
    "NmapScan",
    "cmdb_class_for_host",
    "cmdb_class_for_os",
    "parse_nmap_xml",
]

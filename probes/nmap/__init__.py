"""Nmap probes: typed parameters to an allow-listed nmap argv, python-nmap to run it, our own XML parser.

One module per ECC topic (``host_scan``, ``application_scan``, ``discovery``, ``service_scan``,
``os_scan``, ``script_scan``); ``parse`` turns nmap's XML into typed results, ``encode`` turns those into
ECC ``<result>`` elements, ``options`` holds the allow-lists. See docs/nmap.md.
"""

from __future__ import annotations

from midprobe.probes.nmap.cmdb import cmdb_class_for_host, cmdb_class_for_os
from midprobe.probes.nmap.parse import NmapScan, parse_nmap_xml

__all__ = ["NmapScan", "cmdb_class_for_host", "cmdb_class_for_os", "parse_nmap_xml"]

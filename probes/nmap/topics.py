"""Every Nmap topic, for the registry (``PROBES``): one module per topic, gathered here in one place."""

from __future__ import annotations

from midprobe.probes.nmap import application_scan, discovery, host_scan, os_scan, script_scan, service_scan

PROBES = (
    host_scan.PROBE,
    application_scan.PROBE,
    discovery.PROBE,
    service_scan.PROBE,
    os_scan.PROBE,
    script_scan.PROBE,
)

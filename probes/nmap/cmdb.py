"""The credential-less host scan's CMDB class: nmap's OS family -> ServiceNow class, as data (docs/ecc-reference.md section 4).

This is ServiceNow's own, documented mapping for the nmap host scan, kept apart from the shared
classifier (``midprobe.probes.classify``) on purpose: it reads only the most accurate OS class,
maps only general-purpose computers of six families and calls everything else ``cmdb_ci_hardware``,
where the shared table weighs every OS class by accuracy, sends BSDs to ``cmdb_ci_unix_server`` and
nmap's printers, switches and routers to their own classes. ``tests/unit/probes/classify/test_engine.py``
checks that both agree on every family this table names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from midprobe.probes.nmap.parse import NmapHost, NmapOSMatch

#: The class for a host nmap could not place in one of the families below.
FALLBACK_CMDB_CLASS: Final = "cmdb_ci_hardware"

#: nmap ``osfamily`` (lower case) -> CMDB class. nmap-os-db spells macOS three ways over the years.
OS_FAMILY_CMDB_CLASSES: Final[Mapping[str, str]] = {
    "linux": "cmdb_ci_linux_server",
    "windows": "cmdb_ci_win_server",
    "aix": "cmdb_ci_aix_server",
    "hp-ux": "cmdb_ci_hpux_server",
    "solaris": "cmdb_ci_solaris_server",
    "opensolaris": "cmdb_ci_solaris_server",
    "mac os x": "cmdb_ci_osx_server",
    "os x": "cmdb_ci_osx_server",
    "macos": "cmdb_ci_osx_server",
}

#: nmap device types that are computers; an embedded Linux in a printer or a switch stays hardware.
SERVER_DEVICE_TYPES: Final = frozenset({"general purpose"})


def cmdb_class_for_os(osmatch: NmapOSMatch | None) -> str:
    """The CMDB class for one nmap OS match: its most accurate OS class decides.

    The family maps through :data:`OS_FAMILY_CMDB_CLASSES` when the class's device type is a computer
    (:data:`SERVER_DEVICE_TYPES`, or none given); everything else is :data:`FALLBACK_CMDB_CLASS`.
    """
    if osmatch is None or not osmatch.classes:
        return FALLBACK_CMDB_CLASS
    best = max(osmatch.classes, key=lambda osclass: osclass.accuracy)
    if best.type is not None and best.type.lower() not in SERVER_DEVICE_TYPES:
        return FALLBACK_CMDB_CLASS
    return OS_FAMILY_CMDB_CLASSES.get((best.family or "").lower(), FALLBACK_CMDB_CLASS)


def cmdb_class_for_host(host: NmapHost) -> str:
    """The CMDB class for a scanned host: its most accurate OS match decides."""
    return cmdb_class_for_os(host.best_os_match)

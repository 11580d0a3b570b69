"""The midprobe lab: real hosts (sshd, snmpd, dnsmasq, TCP/HTTP listeners) in network namespaces.

``Lab.up()`` brings one up, ``namespace_thread()`` runs in-process code inside a namespace.
See docs/lab.md ("Network safety") for the rules the lab enforces.
"""

from midprobe.runner.lab.lab import (
    Lab,
    LabCredentials,
    LabHost,
    LabRecord,
    LargeNetwork,
    ScaleNetwork,
    cleanup_leftovers,
    list_labs,
)
from midprobe.runner.lab.netns import NamespaceThread, namespace_thread
from midprobe.runner.lab.profiles import DEFAULT_PROFILE, LabProfile, load_profile

__all__ = [
    "DEFAULT_PROFILE",
    "Lab",
    "LabCredentials",
    "LabHost",
    "LabProfile",
    "LabRecord",
    "LargeNetwork",
    "NamespaceThread",
    "ScaleNetwork",
    "cleanup_leftovers",
    "list_labs",
    "load_profile",
    "namespace_thread",
]

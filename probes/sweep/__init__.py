"""Host sweep (ECC topic ``HostSweep``): which addresses of a target spec are alive.

ARP on directly attached subnets, ICMP echo elsewhere (raw sockets), TCP-connect "ping" when
raw sockets are not allowed. The probe lives in ``host_sweep.py``; docs/sweep.md describes it.
"""

from __future__ import annotations

from midprobe.probes.sweep.host_sweep import PROBE as HOST_SWEEP_PROBE

#: Every probe of this package, for the registry.
PROBES = (HOST_SWEEP_PROBE,)

__all__ = ["HOST_SWEEP_PROBE", "PROBES"]

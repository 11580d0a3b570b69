"""Host sweep (ECC topic ``HostSweep``): which addresses of a target spec are alive.

ARP on directly attached subnets, ICMP echo elsewhere (raw sockets), TCP-connect "ping" when
raw sockets are not allowed. The probe lives in ``host_sweep.py``; docs/sweep.md describes it.
"""

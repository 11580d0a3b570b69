"""DNS probes: ``DNS`` (address to name, forward-confirmed), ``DNSLookupProbe``, ``DNSNameResolver``.

All three resolve whole batches concurrently through :mod:`.resolver`; see docs/dns.md.
"""

from __future__ import annotations

from midprobe.probes.dns.host_names import PROBE as DNS_PROBE
from midprobe.probes.dns.lookup import PROBE as LOOKUP_PROBE
from midprobe.probes.dns.name_resolver import PROBE as NAME_RESOLVER_PROBE

#: Every probe of this package, for the registry (one module, three topics).
PROBES = (DNS_PROBE, LOOKUP_PROBE, NAME_RESOLVER_PROBE)

__all__ = ["DNS_PROBE", "LOOKUP_PROBE", "NAME_RESOLVER_PROBE", "PROBES"]

"""Where probes may send packets: the target policy every probe checks before it sends.

In lab mode only the lab network (198.18.0.0/15, RFC 2544) and loopback are
allowed; see docs/architecture.md. A probe asked for anything else refuses. Host names resolve
through the policy's DNS server (``name_server``) when it names one; in lab mode only through it,
never the system resolver: see ``probes/resolve.py``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from midprobe.capabilities.errors import TargetNotAllowed

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LAB_NETWORKS: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("198.18.0.0/15"),
    ipaddress.ip_network("127.0.0.0/8"),
)


def _address_text(address: str | None) -> str | None:
    return None if address is None else str(ipaddress.ip_address(address))


@dataclass(frozen=True)
class TargetPolicy:
    """The networks a probe may reach; ``allowed=None`` means no restriction.

    ``name_server``: the one DNS server host names (and reverse lookups) go to, when set.
    ``lab_mode``: names resolve only through ``name_server`` (the lab's dnsmasq); with no
    ``name_server`` known, a host name is refused.
    """

    allowed: tuple[IPNetwork, ...] | None = None
    name: str = "unrestricted"
    lab_mode: bool = False
    #: The DNS server host names are resolved through (an address inside ``allowed``).
    name_server: str | None = None

    @classmethod
    def unrestricted(cls, name_server: str | None = None) -> TargetPolicy:
        """No restriction; ``name_server``, when given, is the DNS server names are resolved through
        (else the system resolver)."""
        return cls(None, "unrestricted", name_server=_address_text(name_server))

    @classmethod
    def lab(cls, name_server: str | None = None) -> TargetPolicy:
        """The lab policy; ``name_server`` is the lab's DNS server (without one, names are refused)."""
        return cls(LAB_NETWORKS, "lab", lab_mode=True, name_server=_address_text(name_server))

    @classmethod
    def only(cls, networks: Iterable[str | IPNetwork], name: str = "custom") -> TargetPolicy:
        return cls(tuple(ipaddress.ip_network(n) for n in networks), name)

    def permits(self, address: IPAddress | str) -> bool:
        if self.allowed is None:
            return True
        addr = ipaddress.ip_address(address)
        return any(addr in network for network in self.allowed)

    def check(self, address: IPAddress | str) -> None:
        """Raise ``TargetNotAllowed`` unless ``address`` is inside the allowed networks."""
        if not self.permits(address):
            assert self.allowed is not None
            allowed = ", ".join(str(n) for n in self.allowed)
            raise TargetNotAllowed(str(address), f"{self.name}: {allowed}")

    def check_network(self, network: IPNetwork) -> None:
        """Refuse a whole network unless every address of it is allowed."""
        if self.allowed is None:
            return
        if not any(network.version == n.version and network.subnet_of(n) for n in self.allowed):  # type: ignore[arg-type]
            allowed = ", ".join(str(n) for n in self.allowed)
            raise TargetNotAllowed(str(network), f"{self.name}: {allowed}")

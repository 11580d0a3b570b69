"""Where probes may send packets: the target policy every probe checks before it sends.

In lab mode only the lab networks (IPv4 198.18.0.0/15, RFC 2544; IPv6 2001:db8::/32, RFC 3849)
and loopback (127.0.0.0/8, ::1) are allowed; see docs/lab.md. IPv4-mapped IPv6 addresses
(``::ffff:198.18.0.10``) and link-local addresses (fe80::/10) are outside them, so refused. A probe asked for anything else refuses. Host names resolve
through the policy's DNS server (``name_server``) when it names one; in lab mode only through it,
never the system resolver: see ``probes/resolve.py``. And lab mode runs only inside a network
namespace with no route out of the lab (``require_lab_namespace``): the commands check it before
their first packet.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from midprobe.capabilities.errors import NotInLab, TargetNotAllowed

if TYPE_CHECKING:
    from midprobe.probes.targets import TargetSpec

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LAB_NETWORKS: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("198.18.0.0/15"),
    ipaddress.ip_network("2001:db8::/32"),
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
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


# --- the namespace lab mode runs in ---------------------------------------------------------

#: Loopback: lab mode may reach it from any namespace (packets to it never leave the host).
LOOPBACK: tuple[IPNetwork, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))

#: Where a lab namespace's routes may lead: the lab (IPv4 198.18.0.0/15, IPv6 2001:db8::/32).
LAB_ROUTES: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("198.18.0.0/15"),
    ipaddress.ip_network("2001:db8::/32"),
)
#: IPv6 routes every interface has that lead nowhere a lab target could be (link-local, multicast).
_LINK_ONLY = (
    ipaddress.IPv6Network("fe80::/10"),
    ipaddress.IPv6Network("ff00::/8"),
    ipaddress.IPv6Network("::1/128"),
)
_RTF_UP, _RTF_REJECT, _RTF_LOCAL = 0x0001, 0x0200, 0x80000000


def _leaves_the_lab(network: IPNetwork) -> bool:
    return not any(network.version == lab.version and network.subnet_of(lab) for lab in LAB_ROUTES)  # type: ignore[arg-type]


def routes_out(ipv4_table: str, ipv6_table: str) -> list[str]:
    """The routes of ``/proc/net/route`` and ``/proc/net/ipv6_route`` (their text) that lead
    outside the lab, as ``"0.0.0.0/0 dev eth0"``; a lab namespace has none.

    Reject (unreachable) routes send nothing and local ones deliver to this host: left out.
    """
    found: list[str] = []
    for line in ipv4_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        flags = int(fields[3], 16)
        if not flags & _RTF_UP or flags & _RTF_REJECT:
            continue
        destination = ipaddress.IPv4Address(int(fields[1], 16).to_bytes(4, sys.byteorder))
        mask = ipaddress.IPv4Address(int(fields[7], 16).to_bytes(4, sys.byteorder))
        network = ipaddress.IPv4Network(f"{destination}/{mask}", strict=False)
        if _leaves_the_lab(network):
            found.append(f"{network} dev {fields[0]}")
    for line in ipv6_table.splitlines():
        fields = line.split()
        if len(fields) < 10:
            continue
        flags = int(fields[8], 16)
        if not flags & _RTF_UP or flags & (_RTF_REJECT | _RTF_LOCAL):
            continue
        address6 = ipaddress.IPv6Address(bytes.fromhex(fields[0]))
        network6 = ipaddress.IPv6Network(f"{address6}/{int(fields[1], 16)}", strict=False)
        if not any(network6.subnet_of(link) for link in _LINK_ONLY) and _leaves_the_lab(network6):
            found.append(f"{network6} dev {fields[9]}")
    return found


def namespace_routes_out() -> list[str]:
    """:func:`routes_out` for the network namespace of the calling thread."""
    tables = []
    for name in ("route", "ipv6_route"):
        try:
            tables.append(Path("/proc/thread-self/net", name).read_text(encoding="ascii"))
        except OSError:
            tables.append("")  # no IPv6 (or no /proc): no routes of that family
    return routes_out(*tables)


def stays_on_loopback(targets: TargetSpec, name_server: str | None = None) -> bool:
    """Whether reaching ``targets`` (and asking ``name_server`` for their names) sends nothing
    beyond loopback: then lab mode may run in any namespace."""
    if targets.host_names or targets.first_outside(LOOPBACK) is not None:
        return False
    return name_server is None or ipaddress.ip_address(name_server).is_loopback


def require_lab_namespace() -> None:
    """Refuse lab mode in a namespace that routes outside the lab (``NotInLab``).

    ``--lab`` promises that nothing leaves the lab: run from the machine's own namespace, lab
    addresses would follow its default route out. Lab namespaces have no route out.
    """
    leaving = namespace_routes_out()
    if leaving:
        more = f" and {len(leaving) - 1} more" if len(leaving) > 1 else ""
        raise NotInLab(
            f"lab mode: this network namespace routes outside the lab ({leaving[0]}{more}); "
            "run the command inside the lab: midprobe lab exec -- midprobe ..."
        )

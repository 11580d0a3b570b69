"""The lab's shape: which namespaces exist, which address each one has, and how they are wired.

``plan()`` is pure (profile -> addresses); ``build()`` creates it with iproute2. One bridge in
its own namespace joins the scanner (198.18.0.1) and every host (198.18.0.10, .11, ...), each with
an IPv6 address too (2001:db8::1, 2001:db8::10, ...: :func:`ipv6_address`); no namespace has a
default route (IPv4 or IPv6), and the machine's root namespace holds no part of the lab.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from pathlib import Path

from . import netns
from .profiles import FIRST_HOST, HOST_NETWORK, LAST_HOST, LabProfile

SCANNER_ADDRESS = "198.18.0.1"
#: The lab's IPv6 host network (inside 2001:db8::/32, RFC 3849), on the same bridge as 198.18.0.0/24.
HOST_NETWORK6 = ipaddress.IPv6Network("2001:db8::/64")
MAX_HOSTS = LAST_HOST - FIRST_HOST + 1
BRIDGE = "br0"
LLDP_FORWARD_MASK = 1 << 14


@dataclass(frozen=True)
class PlannedHost:
    name: str
    profile: str
    subdomain: str | None
    address: str
    silent: bool
    interfaces: tuple[str, ...]
    routed_network: str | None = None

    @property
    def address6(self) -> str:
        return ipv6_address(self.address)


def ipv6_address(address: str) -> str:
    """A lab address's IPv6 twin: 198.18.0.10 -> 2001:db8::10 (the last octet's digits, read as hex)."""
    last = ipaddress.IPv4Address(address).packed[-1]
    return str(HOST_NETWORK6.network_address + int(str(last), 16))


@dataclass(frozen=True)
class PlannedLarge:
    network: str
    gateway: str
    alive: tuple[str, ...]
    open_ports: tuple[int, ...]


#: Scale mode: one namespace behind this gateway answers for a whole routed 198.19.0.0/N.
SCALE_GATEWAY = "198.18.0.253"
SCALE_BASE = ipaddress.IPv4Address("198.19.0.0")
SCALE_PREFIXES = range(16, 25)
SCALE_PORTS = (22, 80, 443)


@dataclass(frozen=True)
class PlannedScale:
    network: str
    gateway: str
    open_ports: tuple[int, ...]


@dataclass(frozen=True)
class Plan:
    hosts: tuple[PlannedHost, ...]
    large: PlannedLarge | None
    scale: PlannedScale | None = None


def scale_network(prefix_length: int) -> str:
    """The network scale mode routes: 198.19.0.0/N (inside 198.18.0.0/15, apart from every other
    lab network, which all lie in 198.18.0.0/16)."""
    return str(ipaddress.IPv4Network((SCALE_BASE, prefix_length)))


def namespace_name(prefix: str, role: str) -> str:
    """``<prefix>-<role>``: role is "scan", "br", "large", "scale" or a host name."""
    return f"{prefix}-{role}"


def reverse_zone() -> str:
    """The in-addr.arpa zone of the host network (198.18.0.0/24)."""
    return "0.18.198.in-addr.arpa"


def plan(profile: LabProfile, *, extra_hosts: int = 0, large: bool = False, scale: int | None = None) -> Plan:
    """Addresses for every host of ``profile`` plus ``extra_hosts`` extras, in order from .10."""
    entries = [(h.name, h.profile, h.subdomain) for h in profile.hosts]
    routed = {h.name: h.routed_network for h in profile.hosts}
    taken = {name for name, _, _ in entries}
    number = 0
    while len(entries) < len(profile.hosts) + extra_hosts:
        number += 1
        name = f"host{number:02d}"
        if name in taken:
            continue
        subdomain = profile.subdomains[number % len(profile.subdomains)] if profile.subdomains else None
        entries.append((name, profile.extra_host_profile, subdomain))
    base = int(HOST_NETWORK.network_address)
    hosts = tuple(
        PlannedHost(
            name=name,
            profile=kind,
            subdomain=subdomain,
            address=str(ipaddress.IPv4Address(base + FIRST_HOST + index)),
            silent=profile.profiles[kind].silent,
            interfaces=profile.profiles[kind].interfaces,
            routed_network=routed.get(name),
        )
        for index, (name, kind, subdomain) in enumerate(entries)
    )
    planned_large = None
    if large:
        settings = profile.large
        addresses = list(ipaddress.IPv4Network(settings.network).hosts())
        count = max(1, round(len(addresses) * settings.alive_fraction))
        alive = sorted(random.Random(settings.seed).sample(addresses, count))
        planned_large = PlannedLarge(
            network=settings.network,
            gateway=settings.gateway,
            alive=tuple(str(a) for a in alive),
            open_ports=settings.open_ports,
        )
    planned_scale = (
        PlannedScale(scale_network(scale), SCALE_GATEWAY, SCALE_PORTS) if scale is not None else None
    )
    return Plan(hosts, planned_large, planned_scale)


def namespaces(prefix: str, planned: Plan) -> tuple[str, ...]:
    roles = ["br", "scan", *(h.name for h in planned.hosts)]
    if planned.large is not None:
        roles.append("large")
    if planned.scale is not None:
        roles.append("scale")
    return tuple(namespace_name(prefix, role) for role in roles)


def build(prefix: str, planned: Plan, workdir: Path) -> None:
    """Create the namespaces, the bridge and one veth per member, and assign the addresses."""
    bridge_ns = namespace_name(prefix, "br")
    scanner_ns = namespace_name(prefix, "scan")
    for name in namespaces(prefix, planned):
        netns.add_namespace(name)

    # (namespace, address/prefixlen on its eth0) for every member of the bridge
    members: list[tuple[str, str]] = [(scanner_ns, f"{SCANNER_ADDRESS}/24")]
    members += [
        (namespace_name(prefix, h.name), f"{h.address}/32" if h.silent else f"{h.address}/24")
        for h in planned.hosts
    ]
    # The same for IPv6; a silent host's /128 answers neighbour discovery and nothing else.
    members6 = {scanner_ns: f"{ipv6_address(SCANNER_ADDRESS)}/64"}
    members6 |= {
        namespace_name(prefix, h.name): f"{h.address6}/128" if h.silent else f"{h.address6}/64"
        for h in planned.hosts
    }
    if planned.large is not None:
        members.append((namespace_name(prefix, "large"), f"{planned.large.gateway}/24"))
    if planned.scale is not None:
        members.append((namespace_name(prefix, "scale"), f"{planned.scale.gateway}/24"))

    bridge_lines = [
        # group_fwd_mask bit 14: forward LLDP (01:80:c2:00:00:0e), which a bridge keeps to itself by default.
        f"link add {BRIDGE} type bridge group_fwd_mask {LLDP_FORWARD_MASK:#x}",
        f"link set {BRIDGE} addrgenmode none",
        f"link set {BRIDGE} up",
    ]
    for index, (member, _) in enumerate(members):
        port = f"p{index}"
        bridge_lines += [
            f"link add {port} type veth peer name eth0 netns {member}",
            f"link set {port} addrgenmode none",
            f"link set {port} master {BRIDGE}",
            f"link set {port} up",
        ]
    netns.ip_batch(bridge_lines, namespace=bridge_ns)

    interfaces = {namespace_name(prefix, h.name): h.interfaces for h in planned.hosts}
    # Networks routed beyond the host network, by where they go: large mode's, and hosts' own.
    routed = [(planned.large.network, planned.large.gateway)] if planned.large is not None else []
    routed += [(h.routed_network, h.address) for h in planned.hosts if h.routed_network is not None]
    if planned.scale is not None:
        routed.append((planned.scale.network, planned.scale.gateway))
    routed_here = {namespace_name(prefix, h.name): h.routed_network for h in planned.hosts}
    for member, address in members:
        lines = ["link set eth0 addrgenmode none", f"addr add {address} dev eth0"]
        if member in members6:
            # nodad: the address is usable at once (no tentative state to wait for); the lab
            # assigns each address once, so duplicate detection has nothing to find.
            lines.append(f"addr add {members6[member]} dev eth0 nodad")
        lines.append("link set eth0 up")
        for interface in interfaces.get(member, ()):
            lines += [f"link add {interface} type ifb", f"link set {interface} up"]
        if member == scanner_ns:
            lines += [f"route add {network} via {via} dev eth0" for network, via in routed]
        if routed_here.get(member) is not None:
            # Addresses of the routed network that the host's services did not add: no answer at all.
            lines.append(f"route add blackhole {routed_here[member]}")
        if planned.large is not None and member == namespace_name(prefix, "large"):
            # Addresses of the network that are not alive are dropped without an ICMP answer.
            lines.append(f"route add blackhole {planned.large.network}")
            lines += [f"addr add {alive}/32 dev lo" for alive in planned.large.alive]
        if planned.scale is not None and member == namespace_name(prefix, "scale"):
            # A local route: the namespace takes every address of the network as its own, so each
            # answers ping, and TCP (listeners on 0.0.0.0; RST on the other ports) with no address
            # or neighbour entry per host.
            lines.append(f"route add local {planned.scale.network} dev lo")
        netns.ip_batch(lines, namespace=member)
    (workdir / "topology.txt").write_text(
        "".join(f"{member} {address} {members6.get(member, '-')}\n" for member, address in members)
    )

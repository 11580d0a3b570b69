"""What a device knows of the network around it, read from its SNMP tables (pure parsers).

- Neighbour caches (ARP, IPv6 ND): IP-MIB ``ipNetToPhysicalTable``, with RFC 1213's
  ``ipNetToMediaTable`` (IPv4 only) for the entries it lacks, each entry with its MAC's vendor
  (the IEEE OUI list).
- Forwarding databases: Q-BRIDGE-MIB ``dot1qTpFdbTable`` (per VLAN), else BRIDGE-MIB
  ``dot1dTpFdbTable``; bridge ports are mapped to ifIndexes by ``dot1dBasePortTable``.
- VLANs: Q-BRIDGE-MIB ``dot1qVlanStaticName``.
- Routes: IP-FORWARD-MIB ``inetCidrRouteTable`` (IPv4 and IPv6), else ``ipCidrRouteTable``,
  else RFC 1213's ``ipRouteTable``.
- TCP: TCP-MIB ``tcpListenerTable`` and ``tcpConnectionTable`` (IPv4 and IPv6), else RFC 1213's
  ``tcpConnTable``: the services a device listens on and its established connections.

Each ``TABLES`` entry names the columns to walk, in order of preference: the probe walks the
first and only walks the next when the first gave no rows. Every parser takes varbinds and
returns frozen rows; an agent without the table gives no rows.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from midprobe.probes.classify.ouis import mac_vendor
from midprobe.probes.snmp.names import table_rows
from midprobe.probes.snmp.values import Oid, SnmpValue, VarBind

ARP_PHYSICAL_COLUMNS = ("ipNetToPhysicalPhysAddress", "ipNetToPhysicalType")
ARP_MEDIA_COLUMNS = ("ipNetToMediaPhysAddress", "ipNetToMediaType")
FDB_Q_COLUMNS = ("dot1qTpFdbPort", "dot1qTpFdbStatus")
FDB_COLUMNS = ("dot1dTpFdbAddress", "dot1dTpFdbPort", "dot1dTpFdbStatus")
BRIDGE_PORT_COLUMNS = ("dot1dBasePortIfIndex",)
VLAN_COLUMNS = ("dot1qVlanStaticName",)
ROUTE_INET_COLUMNS = (
    "inetCidrRouteIfIndex",
    "inetCidrRouteType",
    "inetCidrRouteProto",
    "inetCidrRouteMetric1",
)
ROUTE_CIDR_COLUMNS = ("ipCidrRouteIfIndex", "ipCidrRouteType", "ipCidrRouteProto", "ipCidrRouteMetric1")
TCP_COLUMNS = ("tcpListenerProcess", "tcpConnectionState")
TCP_V1_COLUMNS = ("tcpConnState",)
ROUTE_V1_COLUMNS = (
    "ipRouteIfIndex",
    "ipRouteMetric1",
    "ipRouteNextHop",
    "ipRouteType",
    "ipRouteProto",
    "ipRouteMask",
)

#: Each table's column sets, preferred first (a later one is walked only when the earlier gave nothing).
TABLES: Mapping[str, tuple[tuple[str, ...], ...]] = {
    # Both neighbour tables: many agents keep IPv4 only in the older one, IPv6 only in the newer.
    "arp": ((*ARP_PHYSICAL_COLUMNS, *ARP_MEDIA_COLUMNS),),
    "fdb": (FDB_Q_COLUMNS, FDB_COLUMNS),
    "bridge_ports": (BRIDGE_PORT_COLUMNS,),
    "vlans": (VLAN_COLUMNS,),
    "routes": (ROUTE_INET_COLUMNS, ROUTE_CIDR_COLUMNS, ROUTE_V1_COLUMNS),
    "tcp": (TCP_COLUMNS, TCP_V1_COLUMNS),
}
#: At most this many rows of each table are read (a core switch's FDB can hold a hundred thousand MACs).
MAX_ROWS = 5000

#: ipNetToPhysicalType / ipNetToMediaType; ipNetToMediaType has no local(5).
_NEIGHBOUR_TYPES = {1: "other", 2: "invalid", 3: "dynamic", 4: "static", 5: "local"}
#: dot1dTpFdbStatus / dot1qTpFdbStatus.
_FDB_STATUSES = {1: "other", 2: "invalid", 3: "learned", 4: "self", 5: "mgmt"}
#: inetCidrRouteType; ipCidrRouteType has the first four.
_ROUTE_TYPES = {1: "other", 2: "reject", 3: "local", 4: "remote", 5: "blackhole"}
#: ipRouteType (RFC 1213).
_V1_ROUTE_TYPES = {1: "other", 2: "invalid", 3: "local", 4: "remote"}
#: IANA-RTPROTO-MIB IANAipRouteProtocol.
_PROTOCOLS = {
    1: "other",
    2: "local",
    3: "netmgmt",
    4: "icmp",
    5: "egp",
    6: "ggp",
    7: "hello",
    8: "rip",
    9: "isIs",
    10: "esIs",
    11: "ciscoIgrp",
    12: "bbnSpfIgp",
    13: "ospf",
    14: "bgp",
    15: "idpr",
    16: "ciscoEigrp",
    17: "dvmrp",
}
_INET_LENGTHS = {1: 4, 2: 16}


@dataclass(frozen=True)
class ArpEntry:
    """One neighbour-cache entry: ``address`` is at ``mac`` on interface ``if_index``."""

    if_index: int
    address: str
    mac: str
    kind: str | None = None
    vendor: str | None = None


@dataclass(frozen=True)
class FdbEntry:
    """One forwarding-database entry: frames for ``mac`` leave by bridge port ``port``."""

    mac: str
    port: int
    if_index: int | None = None
    vlan: int | None = None
    status: str | None = None
    vendor: str | None = None


@dataclass(frozen=True)
class TcpEndpoint:
    """A listening TCP socket (``remote_*`` None; ``local_address`` ``*`` for every address) or an
    established connection."""

    local_address: str
    local_port: int
    remote_address: str | None = None
    remote_port: int | None = None
    protocol: str = "tcp"


@dataclass(frozen=True)
class Vlan:
    id: int
    name: str | None = None


@dataclass(frozen=True)
class Route:
    """``destination`` (a network) is reached through ``next_hop`` (None: directly) on ``if_index``."""

    destination: str
    next_hop: str | None = None
    if_index: int | None = None
    kind: str | None = None
    protocol: str | None = None
    metric: int | None = None


def _number(value: SnmpValue | None) -> int | None:
    return value.as_int() if value is not None else None


#: MACs that stand for no adapter (an incomplete entry, the broadcast address).
_NO_MAC = frozenset({"00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"})


def _mac(value: SnmpValue | None) -> str | None:
    if value is None or not isinstance(value.value, bytes) or len(value.value) != 6:
        return None
    mac = value.value.hex(":")
    return mac if mac not in _NO_MAC else None


def _octets_mac(octets: Oid) -> str | None:
    if len(octets) != 6 or any(not 0 <= part <= 255 for part in octets):
        return None
    mac = bytes(octets).hex(":")
    return mac if mac not in _NO_MAC else None


def _address(value: SnmpValue | None) -> str | None:
    """An IpAddress (4 octets) value as text."""
    if value is None or not isinstance(value.value, bytes) or len(value.value) != 4:
        return None
    return str(ipaddress.IPv4Address(value.value))


def _ipv4(octets: Oid) -> str | None:
    if len(octets) != 4 or any(not 0 <= part <= 255 for part in octets):
        return None
    return str(ipaddress.IPv4Address(bytes(octets)))


def _inet(index: Oid) -> tuple[str | None, Oid]:
    """``type.length.octets...`` at the start of ``index``: the address (None if not IPv4/IPv6) and
    what follows it; an unknown type with its length is skipped whole."""
    if len(index) < 2:
        return None, ()
    kind, length = index[0], index[1]
    octets, rest = index[2 : 2 + length], index[2 + length :]
    if len(octets) != length or any(not 0 <= part <= 255 for part in octets):
        return None, ()
    if _INET_LENGTHS.get(kind) != length:
        return None, rest
    return str(ipaddress.ip_address(bytes(octets))), rest


def arp_from_varbinds(varbinds: Iterable[VarBind]) -> tuple[ArpEntry, ...]:
    """The neighbour cache: ipNetToPhysicalTable's rows, then ipNetToMediaTable's for the IPv4
    entries it lacks (many agents keep IPv4 only in the older table, IPv6 only in the newer) (pure).

    Invalid entries (type invalid(2)) and entries without an adapter's MAC are left out.
    """
    walked = tuple(varbinds)
    found: dict[tuple[int, str], ArpEntry] = {}

    def add(if_index: int, address: str | None, mac: str | None, kind: int | None) -> None:
        if address is not None and mac is not None and kind != 2 and (if_index, address) not in found:
            found[if_index, address] = ArpEntry(
                if_index, address, mac, _NEIGHBOUR_TYPES.get(kind or 0), mac_vendor(mac)
            )

    for instance, row in sorted(table_rows(walked, ARP_PHYSICAL_COLUMNS).items()):
        address, rest = _inet(instance[1:])
        if len(instance) > 1 and not rest:
            add(
                instance[0],
                address,
                _mac(row.get("ipNetToPhysicalPhysAddress")),
                _number(row.get("ipNetToPhysicalType")),
            )
    for instance, row in sorted(table_rows(walked, ARP_MEDIA_COLUMNS).items()):
        if len(instance) == 5:
            add(
                instance[0],
                _ipv4(instance[1:]),
                _mac(row.get("ipNetToMediaPhysAddress")),
                _number(row.get("ipNetToMediaType")),
            )
    return tuple(found.values())


def bridge_ports_from_varbinds(varbinds: Iterable[VarBind]) -> dict[int, int]:
    """dot1dBasePortTable: bridge port number -> ifIndex (pure)."""
    ports: dict[int, int] = {}
    for instance, row in table_rows(varbinds, BRIDGE_PORT_COLUMNS).items():
        if_index = _number(row.get("dot1dBasePortIfIndex"))
        if len(instance) == 1 and if_index:
            ports[instance[0]] = if_index
    return ports


def fdb_from_varbinds(varbinds: Iterable[VarBind]) -> tuple[FdbEntry, ...]:
    """The forwarding database: dot1qTpFdbTable's rows (with their FDB id, the VLAN on most
    switches), else dot1dTpFdbTable's; the bridge's own MACs (status self(4)) and invalid
    entries are left out, and ports 0 (unknown) too (pure)."""
    walked = tuple(varbinds)
    ports = bridge_ports_from_varbinds(walked)
    found: list[FdbEntry] = []

    def add(mac: str | None, port: int | None, vlan: int | None, status: int | None) -> None:
        if mac is None or not port or status in (2, 4):
            return
        found.append(
            FdbEntry(mac, port, ports.get(port), vlan, _FDB_STATUSES.get(status or 0), mac_vendor(mac))
        )

    for instance, row in sorted(table_rows(walked, FDB_Q_COLUMNS).items()):
        if len(instance) == 7:
            mac = _octets_mac(instance[1:])
            add(mac, _number(row.get("dot1qTpFdbPort")), instance[0], _number(row.get("dot1qTpFdbStatus")))
    if found:
        return tuple(found)
    for instance, row in sorted(table_rows(walked, FDB_COLUMNS).items()):
        mac = _mac(row.get("dot1dTpFdbAddress")) or _octets_mac(instance)
        add(mac, _number(row.get("dot1dTpFdbPort")), None, _number(row.get("dot1dTpFdbStatus")))
    return tuple(found)


def vlans_from_varbinds(varbinds: Iterable[VarBind]) -> tuple[Vlan, ...]:
    """dot1qVlanStaticTable: each configured VLAN with its name (pure)."""
    found: list[Vlan] = []
    for instance, row in sorted(table_rows(varbinds, VLAN_COLUMNS).items()):
        if len(instance) == 1 and 1 <= instance[0] <= 4094:
            name = row.get("dot1qVlanStaticName")
            text = (
                name.value.decode("utf-8", "replace").strip("\x00 \t\r\n")
                if name is not None and isinstance(name.value, bytes)
                else ""
            )
            found.append(Vlan(instance[0], text or None))
    return tuple(found)


#: tcpConnectionState / tcpConnState listen(2) and established(5).
_LISTEN, _ESTABLISHED = 2, 5


def _any(address: str) -> str:
    """The unspecified address (a wildcard listener) is written ``*``, as ``ss`` writes it."""
    return "*" if address == "*" or ipaddress.ip_address(address).is_unspecified else address


def _port(index: Oid) -> tuple[int | None, Oid]:
    return (index[0], index[1:]) if index and 0 < index[0] < 65536 else (None, ())


def tcp_from_varbinds(varbinds: Iterable[VarBind]) -> tuple[TcpEndpoint, ...]:
    """Listening sockets, then established connections: tcpListenerTable and tcpConnectionTable,
    else tcpConnTable (pure). A wildcard listener of the older table (``0.0.0.0``) is ``*``."""
    walked = tuple(varbinds)
    listening: list[TcpEndpoint] = []
    established: list[TcpEndpoint] = []
    for instance, _ in sorted(table_rows(walked, ("tcpListenerProcess",)).items()):
        # unknown(0) with length 0: every address of both families
        address, rest = ("*", instance[2:]) if instance[:2] == (0, 0) else _inet(instance)
        port, tail = _port(rest)
        if address is not None and port is not None and not tail:
            listening.append(TcpEndpoint(_any(address), port))
    for instance, row in sorted(table_rows(walked, ("tcpConnectionState",)).items()):
        local, rest = _inet(instance)
        local_port, rest = _port(rest)
        remote, rest = _inet(rest)
        remote_port, tail = _port(rest)
        if local is None or local_port is None or remote is None or remote_port is None or tail:
            continue
        if _number(row.get("tcpConnectionState")) == _ESTABLISHED:
            established.append(TcpEndpoint(local, local_port, remote, remote_port))
    if listening or established:
        return (*listening, *established)
    for instance, row in sorted(table_rows(walked, TCP_V1_COLUMNS).items()):
        local, remote = _ipv4(instance[0:4]), _ipv4(instance[5:9])
        if len(instance) != 10 or local is None or remote is None:
            continue
        state = _number(row.get("tcpConnState"))
        if state == _LISTEN:
            listening.append(TcpEndpoint(_any(local), instance[4]))
        elif state == _ESTABLISHED:
            established.append(TcpEndpoint(local, instance[4], remote, instance[9]))
    return (*listening, *established)


def _mask_prefix(mask: str | None) -> int | None:
    """A contiguous netmask's prefix length (``255.255.255.0`` -> 24); None for any other mask."""
    if mask is None:
        return None
    try:
        return ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen
    except ValueError:
        return None


def _network(address: str, prefix: int | None) -> str | None:
    if prefix is None:
        return None
    try:
        return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
    except ValueError:
        return None


def _next_hop(address: str | None) -> str | None:
    """A next hop of 0.0.0.0 or :: means "directly connected"."""
    return address if address is not None and not ipaddress.ip_address(address).is_unspecified else None


def _protocol(value: SnmpValue | None) -> str | None:
    number = _number(value)
    return _PROTOCOLS.get(number, str(number)) if number is not None else None


def routes_from_varbinds(varbinds: Iterable[VarBind]) -> tuple[Route, ...]:
    """The routing table: inetCidrRouteTable's rows, else ipCidrRouteTable's, else ipRouteTable's (pure)."""
    walked = tuple(varbinds)
    found: list[Route] = []
    for instance, row in sorted(table_rows(walked, ROUTE_INET_COLUMNS).items()):
        # destType.destLen.dest.pfxLen.policyLen.policy.nextHopType.nextHopLen.nextHop
        destination, rest = _inet(instance)
        if destination is None or len(rest) < 2 or len(rest) < 2 + rest[1]:
            continue
        prefix, policy_length = rest[0], rest[1]
        hop, tail = _inet(rest[2 + policy_length :])
        network = _network(destination, prefix)
        if network is None or tail:
            continue
        found.append(
            Route(
                network,
                _next_hop(hop),
                _number(row.get("inetCidrRouteIfIndex")) or None,
                _ROUTE_TYPES.get(_number(row.get("inetCidrRouteType")) or 0),
                _protocol(row.get("inetCidrRouteProto")),
                _number(row.get("inetCidrRouteMetric1")),
            )
        )
    if found:
        return tuple(found)
    for instance, row in sorted(table_rows(walked, ROUTE_CIDR_COLUMNS).items()):
        # dest(4).mask(4).tos.nextHop(4)
        destination, hop = _ipv4(instance[0:4]), _ipv4(instance[9:13])
        network = _network(destination, _mask_prefix(_ipv4(instance[4:8]))) if destination else None
        if len(instance) != 13 or network is None:
            continue
        found.append(
            Route(
                network,
                _next_hop(hop),
                _number(row.get("ipCidrRouteIfIndex")) or None,
                _ROUTE_TYPES.get(_number(row.get("ipCidrRouteType")) or 0),
                _protocol(row.get("ipCidrRouteProto")),
                _number(row.get("ipCidrRouteMetric1")),
            )
        )
    if found:
        return tuple(found)
    for instance, row in sorted(table_rows(walked, ROUTE_V1_COLUMNS).items()):
        destination, kind = _ipv4(instance), _number(row.get("ipRouteType"))
        network = (
            _network(destination, _mask_prefix(_address(row.get("ipRouteMask")))) if destination else None
        )
        if network is None or kind == 2:
            continue
        found.append(
            Route(
                network,
                _next_hop(_address(row.get("ipRouteNextHop"))),
                _number(row.get("ipRouteIfIndex")) or None,
                _V1_ROUTE_TYPES.get(kind or 0),
                _protocol(row.get("ipRouteProto")),
                _number(row.get("ipRouteMetric1")),
            )
        )
    return tuple(found)


__all__ = [
    "MAX_ROWS",
    "TABLES",
    "ArpEntry",
    "FdbEntry",
    "Route",
    "TcpEndpoint",
    "Vlan",
    "arp_from_varbinds",
    "bridge_ports_from_varbinds",
    "fdb_from_varbinds",
    "routes_from_varbinds",
    "tcp_from_varbinds",
    "vlans_from_varbinds",
]

"""``SNMPIdentity`` and ``SNMPExplore``: what a device is made of, read over SNMP.

``SNMPIdentity`` (a probe of discovery's identification MultiProbe) reads what makes the device
unique: sysName, the interfaces' names and MACs, the addresses, the chassis serial number.
``SNMPExplore`` reads the rest: interface status and speed, the IP-MIB address table (IPv6 too),
the chassis model and firmware (ENTITY-MIB) and the neighbours (LLDP-MIB lldpRemTable, and
CISCO-CDP-MIB cdpCacheTable on Cisco devices).
A printer's serial number comes from the Printer-MIB when it has no ENTITY-MIB. ``SNMPExplore``
also reads what the device knows of the network around it (``probes.snmp.network_tables``): its
ARP/neighbour cache, forwarding database, VLANs, routes and TCP listeners and connections, each
table walked on its own with a cap on its rows. Every table is optional: a device without one gives no rows, not an error. The
parsers (``exploration_from_varbinds`` and the ``*_from_varbinds`` it calls) are pure; the probe
walks every column side by side (one multi-column walk) and hands the varbinds to them.
Parameters: those of ``SNMP`` without ``oid_spec_list``.
"""

from __future__ import annotations

import ipaddress
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from midprobe.probes.base import ProbeContext
from midprobe.probes.snmp.classify import (
    ADDRESS_COLUMNS,
    Interface,
    IpAddressEntry,
    addresses_element,
    addresses_from_varbinds,
    interfaces_element,
    interfaces_from_varbinds,
)
from midprobe.probes.snmp.client import BulkSizeMemory, SessionOpener
from midprobe.probes.snmp.facts import SYS_NAME
from midprobe.probes.snmp.names import BY_NAME, table_rows
from midprobe.probes.snmp.network_tables import (
    MAX_ROWS,
    TABLES,
    ArpEntry,
    FdbEntry,
    Route,
    TcpEndpoint,
    Vlan,
    arp_from_varbinds,
    fdb_from_varbinds,
    routes_from_varbinds,
    tcp_from_varbinds,
    vlans_from_varbinds,
)
from midprobe.probes.snmp.query import ConnectionParams, open_client
from midprobe.probes.snmp.values import Oid, SnmpValue, VarBind, render

IDENTITY_TOPIC = "SNMPIdentity"
EXPLORE_TOPIC = "SNMPExplore"

IDENTITY_INTERFACE_COLUMNS = ("ifIndex", "ifDescr", "ifName", "ifPhysAddress", "ifType")
EXPLORE_INTERFACE_COLUMNS = (
    *IDENTITY_INTERFACE_COLUMNS,
    "ifMtu",
    "ifSpeed",
    "ifAdminStatus",
    "ifOperStatus",
    "ifHighSpeed",
    "ifAlias",
)
IP_ADDRESS_COLUMNS = ("ipAddressIfIndex", "ipAddressType", "ipAddressPrefix")
IDENTITY_ENTITY_COLUMNS = ("entPhysicalContainedIn", "entPhysicalClass", "entPhysicalSerialNum")
EXPLORE_ENTITY_COLUMNS = (
    *IDENTITY_ENTITY_COLUMNS,
    "entPhysicalDescr",
    "entPhysicalFirmwareRev",
    "entPhysicalSoftwareRev",
    "entPhysicalMfgName",
    "entPhysicalModelName",
)
LLDP_COLUMNS = (
    "lldpRemChassisIdSubtype",
    "lldpRemChassisId",
    "lldpRemPortIdSubtype",
    "lldpRemPortId",
    "lldpRemPortDesc",
    "lldpRemSysName",
)
CDP_COLUMNS = (
    "cdpCacheAddressType",
    "cdpCacheAddress",
    "cdpCacheDeviceId",
    "cdpCacheDevicePort",
    "cdpCachePlatform",
)
#: Printer-MIB prtGeneralSerialNumber: the serial number of a printer, which seldom has ENTITY-MIB.
PRINTER_SERIAL_COLUMNS = ("prtGeneralSerialNumber",)
#: The columns each topic walks (sysName is fetched with them).
COLUMNS: Mapping[str, tuple[str, ...]] = {
    IDENTITY_TOPIC: (
        *IDENTITY_INTERFACE_COLUMNS,
        *ADDRESS_COLUMNS,
        *IDENTITY_ENTITY_COLUMNS,
        *PRINTER_SERIAL_COLUMNS,
    ),
    EXPLORE_TOPIC: (
        *EXPLORE_INTERFACE_COLUMNS,
        *ADDRESS_COLUMNS,
        *IP_ADDRESS_COLUMNS,
        *EXPLORE_ENTITY_COLUMNS,
        *PRINTER_SERIAL_COLUMNS,
        *LLDP_COLUMNS,
        *CDP_COLUMNS,
    ),
}

#: ENTITY-MIB PhysicalClass chassis(3); IP-MIB IpAddressType unicast(1); InetAddressType ipv4(1), ipv6(2).
_CHASSIS = 3
_UNICAST = 1
_INET_ADDRESS_LENGTHS = {1: 4, 2: 16}
#: LLDP-MIB subtypes naming a MAC (chassis macAddress(4), port macAddress(3)) or an address (networkAddress).
_CHASSIS_MAC, _CHASSIS_NETWORK_ADDRESS = 4, 5
_PORT_MAC, _PORT_NETWORK_ADDRESS = 3, 4
_CHASSIS_SUBTYPES = {
    1: "chassisComponent",
    2: "interfaceAlias",
    3: "portComponent",
    4: "macAddress",
    5: "networkAddress",
    6: "interfaceName",
    7: "local",
}
_PORT_SUBTYPES = {
    1: "interfaceAlias",
    2: "portComponent",
    3: "macAddress",
    4: "networkAddress",
    5: "interfaceName",
    6: "agentCircuitId",
    7: "local",
}


@dataclass(frozen=True)
class Chassis:
    """The device's chassis as ENTITY-MIB describes it (the top chassis entity)."""

    index: int
    serial_number: str | None = None
    model: str | None = None
    manufacturer: str | None = None
    firmware_version: str | None = None
    software_version: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Neighbour:
    """One neighbour: the device seen on local port ``local_port`` (LLDP's port number, CDP's ifIndex)."""

    local_port: int
    chassis_id: str
    chassis_id_subtype: str
    port_id: str | None = None
    port_id_subtype: str | None = None
    port_description: str | None = None
    sys_name: str | None = None
    protocol: str = "lldp"
    #: The neighbour's address, when the protocol says it (CDP's cdpCacheAddress).
    address: str | None = None
    platform: str | None = None

    @property
    def chassis_mac(self) -> str | None:
        """The remote chassis id when it is a MAC address (``aa:bb:..``)."""
        return self.chassis_id if self.chassis_id_subtype == "macAddress" else None


@dataclass(frozen=True)
class Exploration:
    """What the walked tables say (pure data: no connection details)."""

    sys_name: str | None = None
    interfaces: tuple[Interface, ...] = ()
    ip_addresses: tuple[IpAddressEntry, ...] = ()
    chassis: Chassis | None = None
    neighbours: tuple[Neighbour, ...] = ()
    printer_serial: str | None = None
    arp: tuple[ArpEntry, ...] = ()
    fdb: tuple[FdbEntry, ...] = ()
    vlans: tuple[Vlan, ...] = ()
    routes: tuple[Route, ...] = ()
    tcp: tuple[TcpEndpoint, ...] = ()

    @property
    def serial_number(self) -> str | None:
        """The chassis serial number, else the printer's (Printer-MIB)."""
        return (self.chassis.serial_number if self.chassis else None) or self.printer_serial


@dataclass(frozen=True)
class SnmpExploreParams:
    connection: ConnectionParams


@dataclass(frozen=True)
class SnmpExploreResult:
    topic: str
    source: str
    address: str
    port: int
    version: str
    credential_id: str | None
    found: Exploration
    elapsed_ms: int = 0


def _text(value: SnmpValue | None) -> str | None:
    if value is None or not isinstance(value.value, bytes):
        return None
    text = render(value)[0].strip()
    return text or None


def _number(value: SnmpValue | None) -> int | None:
    return value.as_int() if value is not None else None


def chassis_from_varbinds(varbinds: Iterable[VarBind]) -> Chassis | None:
    """The top chassis of entPhysicalTable: a chassis contained in nothing, else the first chassis,
    else the first entity with a serial number; None when the agent has no ENTITY-MIB (pure)."""
    rows = table_rows(varbinds, EXPLORE_ENTITY_COLUMNS)
    entities = sorted((instance[0], row) for instance, row in rows.items() if len(instance) == 1)
    chassis = [(index, row) for index, row in entities if _number(row.get("entPhysicalClass")) == _CHASSIS]
    top = [(index, row) for index, row in chassis if _number(row.get("entPhysicalContainedIn")) == 0]
    with_serial = [(index, row) for index, row in entities if _text(row.get("entPhysicalSerialNum"))]
    for choice in (top, chassis, with_serial):
        if choice:
            index, row = choice[0]
            return Chassis(
                index=index,
                serial_number=_text(row.get("entPhysicalSerialNum")),
                model=_text(row.get("entPhysicalModelName")),
                manufacturer=_text(row.get("entPhysicalMfgName")),
                firmware_version=_text(row.get("entPhysicalFirmwareRev")),
                software_version=_text(row.get("entPhysicalSoftwareRev")),
                description=_text(row.get("entPhysicalDescr")),
            )
    return None


def _inet_address(instance: Oid) -> str | None:
    """``type.length.octets`` (an ipAddressTable index) -> the address text; None if malformed."""
    if len(instance) < 2 or instance[0] not in _INET_ADDRESS_LENGTHS:
        return None
    length = _INET_ADDRESS_LENGTHS[instance[0]]
    octets = instance[2:]
    if instance[1] != length or len(octets) != length or any(not 0 <= part <= 255 for part in octets):
        return None
    return str(ipaddress.ip_address(bytes(octets)))


def ip_address_table(varbinds: Iterable[VarBind]) -> tuple[IpAddressEntry, ...]:
    """IP-MIB ipAddressTable's unicast addresses (IPv4 and IPv6) with their ifIndex and prefix (pure)."""
    found: list[IpAddressEntry] = []
    for instance, row in sorted(table_rows(varbinds, IP_ADDRESS_COLUMNS).items()):
        address = _inet_address(instance)
        kind = _number(row.get("ipAddressType"))
        if address is None or (kind is not None and kind != _UNICAST):
            continue
        prefix_pointer = row.get("ipAddressPrefix")
        prefix = (
            prefix_pointer.value[-1]
            if prefix_pointer is not None
            and isinstance(prefix_pointer.value, tuple)
            and len(prefix_pointer.value) > 1  # zeroDotZero (0.0) means "unknown"
            else None
        )
        found.append(IpAddressEntry(address, _number(row.get("ipAddressIfIndex")), None, prefix))
    return tuple(found)


def _lldp_id(value: SnmpValue | None, subtype: int | None, mac: int, network: int) -> str | None:
    if value is None or not isinstance(value.value, bytes) or not value.value:
        return None
    raw = value.value
    if subtype == mac and len(raw) == 6:
        return raw.hex(":")
    if subtype == network and len(raw) in (5, 17) and raw[0] in (1, 2):  # IANA family, then the address
        return str(ipaddress.ip_address(raw[1:]))
    return _text(value)


def neighbours_from_varbinds(varbinds: Iterable[VarBind]) -> tuple[Neighbour, ...]:
    """LLDP-MIB lldpRemTable (index timeMark.localPortNum.remIndex): one neighbour per row (pure)."""
    found: list[Neighbour] = []
    for instance, row in sorted(table_rows(varbinds, LLDP_COLUMNS).items()):
        if len(instance) != 3:
            continue
        chassis_kind = _number(row.get("lldpRemChassisIdSubtype"))
        port_kind = _number(row.get("lldpRemPortIdSubtype"))
        chassis_id = _lldp_id(
            row.get("lldpRemChassisId"), chassis_kind, _CHASSIS_MAC, _CHASSIS_NETWORK_ADDRESS
        )
        if chassis_id is None:
            continue
        found.append(
            Neighbour(
                local_port=instance[1],
                chassis_id=chassis_id,
                chassis_id_subtype=_CHASSIS_SUBTYPES.get(chassis_kind or 0, str(chassis_kind)),
                port_id=_lldp_id(row.get("lldpRemPortId"), port_kind, _PORT_MAC, _PORT_NETWORK_ADDRESS),
                port_id_subtype=_PORT_SUBTYPES.get(port_kind, str(port_kind)) if port_kind else None,
                port_description=_text(row.get("lldpRemPortDesc")),
                sys_name=_text(row.get("lldpRemSysName")),
            )
        )
    return tuple(found)


def printer_serial_from_varbinds(varbinds: Iterable[VarBind]) -> str | None:
    """The first prtGeneralSerialNumber (Printer-MIB), if the agent has one (pure)."""
    for _, row in sorted(table_rows(varbinds, PRINTER_SERIAL_COLUMNS).items()):
        serial = _text(row.get("prtGeneralSerialNumber"))
        if serial:
            return serial
    return None


#: CISCO-CDP-MIB CiscoNetworkProtocol ip(1): cdpCacheAddress holds 4 octets of IPv4.
_CDP_IP = 1


def cdp_neighbours_from_varbinds(varbinds: Iterable[VarBind]) -> tuple[Neighbour, ...]:
    """CISCO-CDP-MIB cdpCacheTable (index ifIndex.deviceIndex): one neighbour per row (pure).

    The device id is what the neighbour calls itself (a host name, often followed by its serial
    number in parentheses, which is left out of ``sys_name``).
    """
    found: list[Neighbour] = []
    for instance, row in sorted(table_rows(varbinds, CDP_COLUMNS).items()):
        device_id = _text(row.get("cdpCacheDeviceId"))
        if len(instance) != 2 or device_id is None:
            continue
        raw = row.get("cdpCacheAddress")
        address = (
            str(ipaddress.IPv4Address(raw.value))
            if raw is not None
            and isinstance(raw.value, bytes)
            and len(raw.value) == 4
            and _number(row.get("cdpCacheAddressType")) in (_CDP_IP, None)
            else None
        )
        found.append(
            Neighbour(
                local_port=instance[0],
                chassis_id=device_id,
                chassis_id_subtype="cdpDeviceId",
                port_id=_text(row.get("cdpCacheDevicePort")),
                port_id_subtype="interfaceName" if row.get("cdpCacheDevicePort") else None,
                sys_name=device_id.split("(", 1)[0].strip() or device_id,
                protocol="cdp",
                address=address,
                platform=_text(row.get("cdpCachePlatform")),
            )
        )
    return tuple(found)


def _merged_addresses(*tables: Iterable[IpAddressEntry]) -> tuple[IpAddressEntry, ...]:
    """One entry per address; the first table that names it wins, later ones fill in what it lacked."""
    merged: dict[str, IpAddressEntry] = {}
    for table in tables:
        for entry in table:
            known = merged.get(entry.address)
            if known is None:
                merged[entry.address] = entry
            else:
                merged[entry.address] = IpAddressEntry(
                    known.address,
                    known.if_index if known.if_index is not None else entry.if_index,
                    known.netmask or entry.netmask,
                    known.prefix if known.prefix is not None else entry.prefix,
                )
    return tuple(merged.values())


def exploration_from_varbinds(varbinds: Iterable[VarBind]) -> Exploration:
    """Everything the walked tables say; a table the agent lacks is simply empty (pure)."""
    walked = tuple(varbinds)
    sys_name = dict(walked).get(SYS_NAME)
    return Exploration(
        sys_name=_text(sys_name),
        interfaces=interfaces_from_varbinds(walked),
        ip_addresses=_merged_addresses(addresses_from_varbinds(walked), ip_address_table(walked)),
        chassis=chassis_from_varbinds(walked),
        neighbours=(*neighbours_from_varbinds(walked), *cdp_neighbours_from_varbinds(walked)),
        printer_serial=printer_serial_from_varbinds(walked),
        arp=arp_from_varbinds(walked),
        fdb=fdb_from_varbinds(walked),
        vlans=vlans_from_varbinds(walked),
        routes=routes_from_varbinds(walked),
        tcp=tcp_from_varbinds(walked),
    )


def _rows_element(
    parent: ET.Element, tag: str, row_tag: str, rows: Iterable[object], keys: Sequence[str]
) -> None:
    """``<tag><row_tag key=..>...`` with each row's non-empty fields (pure)."""
    element = ET.SubElement(parent, tag)
    for row in rows:
        attributes = {key: str(value) for key in keys if (value := getattr(row, key)) is not None}
        ET.SubElement(element, row_tag, attributes)


def encode_exploration(result: SnmpExploreResult) -> ET.Element:
    """``<result><snmp_exploration ..><interfaces/><ip_addresses/><chassis/><neighbours/></..></result>``."""
    element = ET.Element("result")
    attributes = {
        "source": result.source,
        "address": result.address,
        "port": str(result.port),
        "version": result.version,
    }
    if result.credential_id:
        attributes["credential_id"] = result.credential_id
    found = result.found
    if found.sys_name:
        attributes["sys_name"] = found.sys_name
    if found.serial_number:
        attributes["serial_number"] = found.serial_number
    exploration = ET.SubElement(element, "snmp_exploration", attributes)
    exploration.append(interfaces_element(found.interfaces))
    exploration.append(addresses_element(found.ip_addresses))
    if found.chassis is not None:
        chassis = {"index": str(found.chassis.index)}
        for key in (
            "serial_number",
            "model",
            "manufacturer",
            "firmware_version",
            "software_version",
            "description",
        ):
            value = getattr(found.chassis, key)
            if value:
                chassis[key] = value
        ET.SubElement(exploration, "chassis", chassis)
    neighbours = ET.SubElement(exploration, "neighbours")
    for neighbour in found.neighbours:
        attributes = {
            "local_port": str(neighbour.local_port),
            "chassis_id": neighbour.chassis_id,
            "chassis_id_subtype": neighbour.chassis_id_subtype,
        }
        attributes["protocol"] = neighbour.protocol
        for key in ("port_id", "port_id_subtype", "port_description", "sys_name", "address", "platform"):
            value = getattr(neighbour, key)
            if value:
                attributes[key] = value
        ET.SubElement(neighbours, "neighbour", attributes)
    _rows_element(
        exploration, "arp_table", "arp_entry", found.arp, ("if_index", "address", "mac", "kind", "vendor")
    )
    _rows_element(
        exploration,
        "forwarding_table",
        "fdb_entry",
        found.fdb,
        ("mac", "port", "if_index", "vlan", "status", "vendor"),
    )
    _rows_element(exploration, "vlans", "vlan", found.vlans, ("id", "name"))
    endpoint = ("protocol", "local_address", "local_port", "remote_address", "remote_port")
    listening = [socket for socket in found.tcp if socket.remote_address is None]
    _rows_element(exploration, "listening", "socket", listening, endpoint)
    connected = [socket for socket in found.tcp if socket.remote_address is not None]
    _rows_element(exploration, "connections", "connection", connected, endpoint)
    _rows_element(
        exploration,
        "routes",
        "route",
        found.routes,
        ("destination", "next_hop", "if_index", "kind", "protocol", "metric"),
    )
    return element


def _capped(found: Exploration, rows: int) -> Exploration:
    """At most ``rows`` of each network table (a walk stops near its limit, a reply may overshoot it)."""
    return replace(
        found,
        arp=found.arp[:rows],
        fdb=found.fdb[:rows],
        vlans=found.vlans[:rows],
        routes=found.routes[:rows],
        tcp=found.tcp[:rows],
    )


@dataclass
class SnmpExploreProbe:
    """``SNMPIdentity`` or ``SNMPExplore`` (``topic`` picks the columns walked)."""

    topic: str = EXPLORE_TOPIC
    memory: BulkSizeMemory = field(default_factory=BulkSizeMemory)
    #: The sessions' opener; ``None``: the real backends (tests replay recorded walks).
    opener: SessionOpener | None = None
    #: At most this many rows of each network table (ARP, FDB, VLANs, routes) are read.
    max_rows: int = MAX_ROWS
    required_capabilities: tuple[str, ...] = ()

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> SnmpExploreParams:
        return SnmpExploreParams(ConnectionParams.parse(source, parameters))

    async def run(self, params: SnmpExploreParams, context: ProbeContext) -> SnmpExploreResult:
        started = time.monotonic()
        connection = params.connection
        async with open_client(
            connection,
            context.credentials,
            policy=context.policy,
            deadline=context.deadline,
            memory=self.memory,
            opener=self.opener,
        ) as (address, client):
            walked = list(await client.walk_many([BY_NAME[name].oid for name in COLUMNS[self.topic]]))
            if self.topic == EXPLORE_TOPIC:
                for choices in TABLES.values():
                    for columns in choices:  # the preferred table; an older one only when it is empty
                        table = await client.walk_many(
                            [BY_NAME[name].oid for name in columns], limit=self.max_rows * len(columns)
                        )
                        walked.extend(table)
                        if any(result.varbinds for result in table):
                            break
            fetched = await client.get([SYS_NAME])
            version, credential_id = client.auth.version, client.auth.credential_id
        varbinds = [varbind for result in walked for varbind in result.varbinds]
        varbinds.extend(varbind for varbind in fetched if not varbind[1].is_exception)
        return SnmpExploreResult(
            topic=self.topic,
            source=connection.source,
            address=address,
            port=connection.port,
            version=version,
            credential_id=credential_id,
            found=_capped(exploration_from_varbinds(varbinds), self.max_rows),
            elapsed_ms=round((time.monotonic() - started) * 1000),
        )

    def encode_results(self, result: SnmpExploreResult) -> Sequence[ET.Element]:
        return [encode_exploration(result)]


IDENTITY_PROBE = SnmpExploreProbe(topic=IDENTITY_TOPIC)
EXPLORE_PROBE = SnmpExploreProbe(topic=EXPLORE_TOPIC)
PROBES = (IDENTITY_PROBE, EXPLORE_PROBE)

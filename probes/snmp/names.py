"""A small OID <-> name table (system, interfaces, ifXTable, ip, host resources, ENTITY, LLDP, CDP, ...).

Enough for ``oid_spec_list`` names and the element names of the typed result XML, with
no MIB compiling: a dict lookup on the hot path. OIDs outside the table are still walked
and encoded, just without a name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from midprobe.probes.snmp.values import Oid, SnmpValue, VarBind


class NodeKind(Enum):
    ROOT = "root"  # a registration node above the data (iso, mib-2, enterprises): never an element
    GROUP = "group"  # a MIB group: an element holding its scalars and tables
    SCALAR = "scalar"  # one value, instance .0
    TABLE = "table"
    ENTRY = "entry"  # the row node under a table: always <table>.1
    COLUMN = "column"


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    oid: Oid
    kind: NodeKind


_R, _G, _S, _T, _E, _C = (
    NodeKind.ROOT,
    NodeKind.GROUP,
    NodeKind.SCALAR,
    NodeKind.TABLE,
    NodeKind.ENTRY,
    NodeKind.COLUMN,
)


def _table(prefix: str, table: str, entry: str, columns: str) -> list[tuple[str, str, NodeKind]]:
    """A table node, its entry (``.1``) and its columns numbered from 1 (``-`` skips a number)."""
    rows = [(table, prefix, _T), (entry, f"{prefix}.1", _E)]
    for number, column in enumerate(columns.split(), start=1):
        if column != "-":
            rows.append((column, f"{prefix}.1.{number}", _C))
    return rows


def _scalars(prefix: str, names: str, start: int = 1) -> list[tuple[str, str, NodeKind]]:
    return [
        (name, f"{prefix}.{number}", _S)
        for number, name in enumerate(names.split(), start=start)
        if name != "-"
    ]


_DEFINITIONS: list[tuple[str, str, NodeKind]] = [
    ("iso", "1", _R),
    ("org", "1.3", _R),
    ("dod", "1.3.6", _R),
    ("internet", "1.3.6.1", _R),
    ("mgmt", "1.3.6.1.2", _R),
    ("mib-2", "1.3.6.1.2.1", _R),
    ("private", "1.3.6.1.4", _R),
    ("enterprises", "1.3.6.1.4.1", _R),
    ("snmpV2", "1.3.6.1.6", _R),
    ("snmpModules", "1.3.6.1.6.3", _R),
    # SNMPv2-MIB system group
    ("system", "1.3.6.1.2.1.1", _G),
    *_scalars(
        "1.3.6.1.2.1.1",
        "sysDescr sysObjectID sysUpTime sysContact sysName sysLocation sysServices sysORLastChange",
    ),
    *_table("1.3.6.1.2.1.1.9", "sysORTable", "sysOREntry", "sysORIndex sysORID sysORDescr sysORUpTime"),
    # IF-MIB interfaces group
    ("interfaces", "1.3.6.1.2.1.2", _G),
    ("ifNumber", "1.3.6.1.2.1.2.1", _S),
    *_table(
        "1.3.6.1.2.1.2.2",
        "ifTable",
        "ifEntry",
        "ifIndex ifDescr ifType ifMtu ifSpeed ifPhysAddress ifAdminStatus ifOperStatus ifLastChange"
        " ifInOctets ifInUcastPkts ifInNUcastPkts ifInDiscards ifInErrors ifInUnknownProtos ifOutOctets"
        " ifOutUcastPkts ifOutNUcastPkts ifOutDiscards ifOutErrors ifOutQLen ifSpecific",
    ),
    # IP-MIB ip group
    ("ip", "1.3.6.1.2.1.4", _G),
    *_scalars(
        "1.3.6.1.2.1.4",
        "ipForwarding ipDefaultTTL ipInReceives ipInHdrErrors ipInAddrErrors ipForwDatagrams"
        " ipInUnknownProtos ipInDiscards ipInDelivers ipOutRequests ipOutDiscards ipOutNoRoutes"
        " ipReasmTimeout ipReasmReqds ipReasmOKs ipReasmFails ipFragOKs ipFragFails ipFragCreates",
    ),
    *_table(
        "1.3.6.1.2.1.4.20",
        "ipAddrTable",
        "ipAddrEntry",
        "ipAdEntAddr ipAdEntIfIndex ipAdEntNetMask ipAdEntBcastAddr ipAdEntReasmMaxSize",
    ),
    *_table(
        "1.3.6.1.2.1.4.22",
        "ipNetToMediaTable",
        "ipNetToMediaEntry",
        "ipNetToMediaIfIndex ipNetToMediaPhysAddress ipNetToMediaNetAddress ipNetToMediaType",
    ),
    ("ipRoutingDiscards", "1.3.6.1.2.1.4.23", _S),
    # RFC 1213 ipRouteTable (IPv4 routes, indexed by destination): the oldest routing table
    *_table(
        "1.3.6.1.2.1.4.21",
        "ipRouteTable",
        "ipRouteEntry",
        "ipRouteDest ipRouteIfIndex ipRouteMetric1 ipRouteMetric2 ipRouteMetric3 ipRouteMetric4"
        " ipRouteNextHop ipRouteType ipRouteProto ipRouteAge ipRouteMask ipRouteMetric5 ipRouteInfo",
    ),
    # IP-FORWARD-MIB: ipCidrRouteTable (RFC 2096, IPv4) and inetCidrRouteTable (RFC 4292, IPv4 and IPv6)
    ("ipForward", "1.3.6.1.2.1.4.24", _G),
    *_table(
        "1.3.6.1.2.1.4.24.4",
        "ipCidrRouteTable",
        "ipCidrRouteEntry",
        "ipCidrRouteDest ipCidrRouteMask ipCidrRouteTos ipCidrRouteNextHop ipCidrRouteIfIndex"
        " ipCidrRouteType ipCidrRouteProto ipCidrRouteAge ipCidrRouteInfo ipCidrRouteNextHopAS"
        " ipCidrRouteMetric1",
    ),
    *_table(
        "1.3.6.1.2.1.4.24.7",
        "inetCidrRouteTable",
        "inetCidrRouteEntry",
        "inetCidrRouteDestType inetCidrRouteDest inetCidrRoutePfxLen inetCidrRoutePolicy"
        " inetCidrRouteNextHopType inetCidrRouteNextHop inetCidrRouteIfIndex inetCidrRouteType"
        " inetCidrRouteProto inetCidrRouteAge inetCidrRouteNextHopAS inetCidrRouteMetric1",
    ),
    # IP-MIB (RFC 4293) ipAddressTable: IPv4 and IPv6 addresses, indexed by type and address
    *_table(
        "1.3.6.1.2.1.4.34",
        "ipAddressTable",
        "ipAddressEntry",
        "ipAddressAddrType ipAddressAddr ipAddressIfIndex ipAddressType ipAddressPrefix ipAddressOrigin"
        " ipAddressStatus ipAddressCreated ipAddressLastChanged ipAddressRowStatus ipAddressStorageType",
    ),
    # BRIDGE-MIB base group (a device that bridges: a switch)
    ("dot1dBridge", "1.3.6.1.2.1.17", _G),
    ("dot1dBase", "1.3.6.1.2.1.17.1", _G),
    *_scalars("1.3.6.1.2.1.17.1", "dot1dBaseBridgeAddress dot1dBaseNumPorts dot1dBaseType"),
    *_table(
        "1.3.6.1.2.1.17.1.4",
        "dot1dBasePortTable",
        "dot1dBasePortEntry",
        "dot1dBasePort dot1dBasePortIfIndex dot1dBasePortCircuit dot1dBasePortDelayExceededDiscards"
        " dot1dBasePortMtuExceededDiscards",
    ),
    # BRIDGE-MIB transparent bridging: the MACs learned on each bridge port (one forwarding database)
    ("dot1dTp", "1.3.6.1.2.1.17.4", _G),
    *_table(
        "1.3.6.1.2.1.17.4.3",
        "dot1dTpFdbTable",
        "dot1dTpFdbEntry",
        "dot1dTpFdbAddress dot1dTpFdbPort dot1dTpFdbStatus",
    ),
    # Q-BRIDGE-MIB: the forwarding database per VLAN (index fdbId.mac) and the configured VLANs
    ("qBridgeMIB", "1.3.6.1.2.1.17.7", _G),
    *_table(
        "1.3.6.1.2.1.17.7.1.2.2",
        "dot1qTpFdbTable",
        "dot1qTpFdbEntry",
        "dot1qTpFdbAddress dot1qTpFdbPort dot1qTpFdbStatus",
    ),
    *_table(
        "1.3.6.1.2.1.17.7.1.4.3",
        "dot1qVlanStaticTable",
        "dot1qVlanStaticEntry",
        "dot1qVlanStaticName dot1qVlanStaticEgressPorts dot1qVlanForbiddenEgressPorts"
        " dot1qVlanStaticUntaggedPorts dot1qVlanStaticRowStatus",
    ),
    # TCP-MIB: RFC 1213's tcpConnTable (IPv4; listeners are rows in state listen(2)), and RFC 4022's
    # tcpConnectionTable and tcpListenerTable (IPv4 and IPv6), indexed by the endpoints
    ("tcp", "1.3.6.1.2.1.6", _G),
    *_table(
        "1.3.6.1.2.1.6.13",
        "tcpConnTable",
        "tcpConnEntry",
        "tcpConnState tcpConnLocalAddress tcpConnLocalPort tcpConnRemAddress tcpConnRemPort",
    ),
    *_table(
        "1.3.6.1.2.1.6.19",
        "tcpConnectionTable",
        "tcpConnectionEntry",
        "tcpConnectionLocalAddressType tcpConnectionLocalAddress tcpConnectionLocalPort"
        " tcpConnectionRemAddressType tcpConnectionRemAddress tcpConnectionRemPort tcpConnectionState"
        " tcpConnectionProcess",
    ),
    *_table(
        "1.3.6.1.2.1.6.20",
        "tcpListenerTable",
        "tcpListenerEntry",
        "tcpListenerLocalAddressType tcpListenerLocalAddress tcpListenerLocalPort tcpListenerProcess",
    ),
    # IP-MIB (RFC 4293) ipNetToPhysicalTable: the ARP and IPv6 neighbour cache, ifIndex.type.length.address
    *_table(
        "1.3.6.1.2.1.4.35",
        "ipNetToPhysicalTable",
        "ipNetToPhysicalEntry",
        "ipNetToPhysicalIfIndex ipNetToPhysicalNetAddressType ipNetToPhysicalNetAddress"
        " ipNetToPhysicalPhysAddress ipNetToPhysicalLastUpdated ipNetToPhysicalType ipNetToPhysicalState"
        " ipNetToPhysicalRowStatus",
    ),
    # HOST-RESOURCES-MIB
    ("host", "1.3.6.1.2.1.25", _G),
    ("hrSystem", "1.3.6.1.2.1.25.1", _G),
    *_scalars(
        "1.3.6.1.2.1.25.1",
        "hrSystemUptime hrSystemDate hrSystemInitialLoadDevice hrSystemInitialLoadParameters"
        " hrSystemNumUsers hrSystemProcesses hrSystemMaxProcesses",
    ),
    ("hrStorage", "1.3.6.1.2.1.25.2", _G),
    ("hrMemorySize", "1.3.6.1.2.1.25.2.2", _S),
    *_table(
        "1.3.6.1.2.1.25.2.3",
        "hrStorageTable",
        "hrStorageEntry",
        "hrStorageIndex hrStorageType hrStorageDescr hrStorageAllocationUnits hrStorageSize hrStorageUsed"
        " hrStorageAllocationFailures",
    ),
    ("hrDevice", "1.3.6.1.2.1.25.3", _G),
    *_table(
        "1.3.6.1.2.1.25.3.2",
        "hrDeviceTable",
        "hrDeviceEntry",
        "hrDeviceIndex hrDeviceType hrDeviceDescr hrDeviceID hrDeviceStatus hrDeviceErrors",
    ),
    *_table("1.3.6.1.2.1.25.3.3", "hrProcessorTable", "hrProcessorEntry", "hrProcessorFrwID hrProcessorLoad"),
    *_table(
        "1.3.6.1.2.1.25.3.5",
        "hrPrinterTable",
        "hrPrinterEntry",
        "hrPrinterStatus hrPrinterDetectedErrorState",
    ),
    ("hrSWRun", "1.3.6.1.2.1.25.4", _G),
    *_table(
        "1.3.6.1.2.1.25.4.2",
        "hrSWRunTable",
        "hrSWRunEntry",
        "hrSWRunIndex hrSWRunName hrSWRunID hrSWRunPath hrSWRunParameters hrSWRunType hrSWRunStatus",
    ),
    # IF-MIB ifMIB objects
    ("ifMIB", "1.3.6.1.2.1.31", _G),
    ("ifMIBObjects", "1.3.6.1.2.1.31.1", _G),
    *_table(
        "1.3.6.1.2.1.31.1.1",
        "ifXTable",
        "ifXEntry",
        "ifName ifInMulticastPkts ifInBroadcastPkts ifOutMulticastPkts ifOutBroadcastPkts ifHCInOctets"
        " ifHCInUcastPkts ifHCInMulticastPkts ifHCInBroadcastPkts ifHCOutOctets ifHCOutUcastPkts"
        " ifHCOutMulticastPkts ifHCOutBroadcastPkts ifLinkUpDownTrapEnable ifHighSpeed ifPromiscuousMode"
        " ifConnectorPresent ifAlias ifCounterDiscontinuityTime",
    ),
    ("ifTableLastChange", "1.3.6.1.2.1.31.1.5", _S),
    # Printer-MIB general table
    ("printmib", "1.3.6.1.2.1.43", _G),
    ("prtGeneral", "1.3.6.1.2.1.43.5", _G),
    *_table(
        "1.3.6.1.2.1.43.5.1",
        "prtGeneralTable",
        "prtGeneralEntry",
        "prtGeneralConfigChanges prtGeneralCurrentLocalization prtGeneralReset prtGeneralCurrentOperator"
        " prtGeneralServicePerson prtInputDefaultIndex prtOutputDefaultIndex prtMarkerDefaultIndex"
        " prtMediaPathDefaultIndex prtConsoleLocalization prtConsoleNumberOfDisplayLines"
        " prtConsoleNumberOfDisplayChars prtConsoleDisable prtAuxiliarySheetStartupPage"
        " prtAuxiliarySheetBannerPage prtGeneralPrinterName prtGeneralSerialNumber",
    ),
    # ENTITY-MIB physical table
    ("entityMIB", "1.3.6.1.2.1.47", _G),
    ("entityMIBObjects", "1.3.6.1.2.1.47.1", _G),
    ("entityPhysical", "1.3.6.1.2.1.47.1.1", _G),
    *_table(
        "1.3.6.1.2.1.47.1.1.1",
        "entPhysicalTable",
        "entPhysicalEntry",
        "entPhysicalIndex entPhysicalDescr entPhysicalVendorType entPhysicalContainedIn entPhysicalClass"
        " entPhysicalParentRelPos entPhysicalName entPhysicalHardwareRev entPhysicalFirmwareRev"
        " entPhysicalSoftwareRev entPhysicalSerialNum entPhysicalMfgName entPhysicalModelName"
        " entPhysicalAlias entPhysicalAssetID entPhysicalIsFRU",
    ),
    # CISCO-CDP-MIB cache: the neighbours a Cisco device sees over CDP, indexed by ifIndex.deviceIndex
    ("ciscoCdpMIB", "1.3.6.1.4.1.9.9.23", _G),
    *_table(
        "1.3.6.1.4.1.9.9.23.1.2.1",
        "cdpCacheTable",
        "cdpCacheEntry",
        "cdpCacheIfIndex cdpCacheDeviceIndex cdpCacheAddressType cdpCacheAddress cdpCacheVersion"
        " cdpCacheDeviceId cdpCacheDevicePort cdpCachePlatform cdpCacheCapabilities",
    ),
    # LLDP-MIB (IEEE 802.1AB) remote systems: the neighbours a device sees on each port
    ("lldpMIB", "1.0.8802.1.1.2", _G),
    ("lldpRemoteSystemsData", "1.0.8802.1.1.2.1.4", _G),
    *_table(
        "1.0.8802.1.1.2.1.4.1",
        "lldpRemTable",
        "lldpRemEntry",
        "lldpRemTimeMark lldpRemLocalPortNum lldpRemIndex lldpRemChassisIdSubtype lldpRemChassisId"
        " lldpRemPortIdSubtype lldpRemPortId lldpRemPortDesc lldpRemSysName lldpRemSysDesc"
        " lldpRemSysCapSupported lldpRemSysCapEnabled",
    ),
    # SNMP-FRAMEWORK-MIB engine group
    ("snmpFrameworkMIB", "1.3.6.1.6.3.10", _G),
    ("snmpFrameworkMIBObjects", "1.3.6.1.6.3.10.2", _G),
    ("snmpEngine", "1.3.6.1.6.3.10.2.1", _G),
    *_scalars("1.3.6.1.6.3.10.2.1", "snmpEngineID snmpEngineBoots snmpEngineTime snmpEngineMaxMessageSize"),
]


def _build() -> tuple[dict[str, Node], dict[Oid, Node]]:
    by_name: dict[str, Node] = {}
    by_oid: dict[Oid, Node] = {}
    for name, dotted, kind in _DEFINITIONS:
        node = Node(name, tuple(int(part) for part in dotted.split(".")), kind)
        if name in by_name or node.oid in by_oid:
            raise RuntimeError(f"duplicate name table entry {name} {dotted}")  # a bug in the table above
        by_name[name] = node
        by_oid[node.oid] = node
    return by_name, by_oid


BY_NAME, BY_OID = _build()


def node_named(name: str) -> Node | None:
    return BY_NAME.get(name)


def node_at(oid: Oid) -> Node | None:
    return BY_OID.get(oid)


def nearest_node(oid: Oid) -> Node | None:
    """The known node with the longest OID that is a prefix of ``oid`` (itself included)."""
    for end in range(len(oid), 0, -1):
        node = BY_OID.get(oid[:end])
        if node is not None:
            return node
    return None


def parent_node(node: Node) -> Node | None:
    """The nearest known node strictly above ``node``."""
    return nearest_node(node.oid[:-1]) if len(node.oid) > 1 else None


def name_of(oid: Oid) -> str | None:
    node = BY_OID.get(oid)
    return node.name if node is not None else None


def table_rows(varbinds: Iterable[VarBind], columns: Sequence[str]) -> dict[Oid, dict[str, SnmpValue]]:
    """Rows by instance: ``{instance: {column name: value}}`` for the named columns (pure).

    Exceptions (noSuchObject, ...) are left out, so a table the agent lacks gives no rows.
    """
    by_oid = {BY_NAME[name].oid: name for name in columns}
    rows: dict[Oid, dict[str, SnmpValue]] = {}
    for oid, value in varbinds:
        if value.is_exception:
            continue
        for column, name in by_oid.items():
            if oid[: len(column)] == column and len(oid) > len(column):
                rows.setdefault(oid[len(column) :], {})[name] = value
                break
    return rows

"""``SNMPClassify``: read what identifies a device over SNMP and classify it.

Collects the system group, the interfaces (ifTable with ifXTable's name, alias and speed),
the IP addresses (ipAddrTable) and the capability hints (ipForwarding, BRIDGE-MIB ports,
Printer-MIB), all in one multi-column walk plus one GET, then hands the facts (``classify.py``) to
the shared classifier (``midprobe.probes.classify``). Parameters: those of ``SNMP`` without
``oid_spec_list``.
"""

from __future__ import annotations

import ipaddress
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from midprobe.probes.base import ProbeContext
from midprobe.probes.classify import Classification, Classifier
from midprobe.probes.classify.ouis import mac_vendor
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.snmp.client import BulkSizeMemory, SessionOpener, SnmpClient
from midprobe.probes.snmp.facts import (
    DOT1D_BASE_NUM_PORTS,
    ENT_PHYSICAL_MODEL_NAME_1,
    IP_FORWARDING,
    UPS_IDENT_MANUFACTURER,
    UPS_IDENT_MODEL,
    DeviceFacts,
    capabilities,
    capability_evidence,
    classify,
    facts_from_varbinds,
)
from midprobe.probes.snmp.names import BY_NAME, table_rows
from midprobe.probes.snmp.query import ConnectionParams, open_client, snmp_element
from midprobe.probes.snmp.values import Oid, SnmpValue, VarBind, format_oid, render

TOPIC = "SNMPClassify"


def _column(name: str) -> Oid:
    return BY_NAME[name].oid


SYSTEM = BY_NAME["system"].oid
INTERFACE_COLUMNS = (
    "ifIndex",
    "ifDescr",
    "ifType",
    "ifMtu",
    "ifSpeed",
    "ifPhysAddress",
    "ifAdminStatus",
    "ifOperStatus",
    "ifName",
    "ifHighSpeed",
    "ifAlias",
)
ADDRESS_COLUMNS = ("ipAdEntAddr", "ipAdEntIfIndex", "ipAdEntNetMask")
#: Printer-MIB prtGeneralPrinterName and hrPrinterStatus: any row means "this prints".
PRINTER_COLUMNS = ("prtGeneralPrinterName", "hrPrinterStatus")
WALK_ROOTS: tuple[Oid, ...] = (
    SYSTEM,
    *(_column(name) for name in (*INTERFACE_COLUMNS, *ADDRESS_COLUMNS, *PRINTER_COLUMNS)),
)
SCALARS: tuple[Oid, ...] = (
    IP_FORWARDING,
    DOT1D_BASE_NUM_PORTS,
    UPS_IDENT_MANUFACTURER,
    UPS_IDENT_MODEL,
    ENT_PHYSICAL_MODEL_NAME_1,
)

_IF_STATUS = {
    1: "up",
    2: "down",
    3: "testing",
    4: "unknown",
    5: "dormant",
    6: "notPresent",
    7: "lowerLayerDown",
}


@dataclass(frozen=True)
class Interface:
    index: int
    descr: str | None = None
    name: str | None = None
    alias: str | None = None
    type: int | None = None
    mtu: int | None = None
    speed_bps: int | None = None
    mac: str | None = None
    admin_status: str | None = None
    oper_status: str | None = None


@dataclass(frozen=True)
class IpAddressEntry:
    address: str
    if_index: int | None
    netmask: str | None
    #: The prefix length when the agent gives it directly (IP-MIB ipAddressPrefix), not as a mask.
    prefix: int | None = None

    @property
    def prefix_length(self) -> int | None:
        if self.prefix is not None:
            return self.prefix
        if self.netmask is None:
            return None
        try:
            return ipaddress.IPv4Network(f"0.0.0.0/{self.netmask}").prefixlen
        except ValueError:
            return None


@dataclass(frozen=True)
class SnmpClassifyParams:
    connection: ConnectionParams


@dataclass(frozen=True)
class SnmpClassifyResult:
    source: str
    address: str
    port: int
    version: str
    credential_id: str | None
    facts: DeviceFacts
    classification: Classification
    interfaces: tuple[Interface, ...]
    ip_addresses: tuple[IpAddressEntry, ...]
    varbinds: tuple[VarBind, ...]
    elapsed_ms: int = 0

    @property
    def capabilities(self) -> tuple[str, ...]:
        """What the device showed it does: ``printing``, ``switching``, ``routing``."""
        return capabilities(self.facts)[0]


def _text(value: SnmpValue | None) -> str | None:
    return render(value)[0] if value is not None and not value.is_exception else None


def _number(value: SnmpValue | None) -> int | None:
    return value.as_int() if value is not None else None


def _mac(value: SnmpValue | None) -> str | None:
    if value is None or not isinstance(value.value, bytes) or not value.value:
        return None
    return value.value.hex(":")


def _ipv4(value: SnmpValue | None) -> str | None:
    if value is None or not isinstance(value.value, bytes) or len(value.value) != 4:
        return None
    return str(ipaddress.IPv4Address(value.value))


def interfaces_from_varbinds(varbinds: Iterable[VarBind]) -> tuple[Interface, ...]:
    """ifTable rows joined with ifXTable's (same ifIndex instance), by ifIndex (pure)."""
    rows = table_rows(varbinds, INTERFACE_COLUMNS)
    found: list[Interface] = []
    for instance, row in sorted(rows.items()):
        index = _number(row.get("ifIndex"))
        if index is None:
            index = instance[0] if len(instance) == 1 else None
        if index is None:
            continue
        high_speed = _number(row.get("ifHighSpeed"))
        speed = _number(row.get("ifSpeed"))
        if high_speed and (speed is None or speed >= 0xFFFFFFFF):
            speed = high_speed * 1_000_000
        admin = _number(row.get("ifAdminStatus"))
        oper = _number(row.get("ifOperStatus"))
        found.append(
            Interface(
                index=index,
                descr=_text(row.get("ifDescr")),
                name=_text(row.get("ifName")),
                alias=_text(row.get("ifAlias")) or None,
                type=_number(row.get("ifType")),
                mtu=_number(row.get("ifMtu")),
                speed_bps=speed,
                mac=_mac(row.get("ifPhysAddress")),
                admin_status=_IF_STATUS.get(admin, str(admin)) if admin is not None else None,
                oper_status=_IF_STATUS.get(oper, str(oper)) if oper is not None else None,
            )
        )
    return tuple(found)


def addresses_from_varbinds(varbinds: Iterable[VarBind]) -> tuple[IpAddressEntry, ...]:
    rows = table_rows(varbinds, ADDRESS_COLUMNS)
    found: list[IpAddressEntry] = []
    for instance, row in sorted(rows.items()):
        address = _ipv4(row.get("ipAdEntAddr"))
        if address is None and len(instance) == 4:
            address = ".".join(map(str, instance))
        if address is None:
            continue
        found.append(
            IpAddressEntry(address, _number(row.get("ipAdEntIfIndex")), _ipv4(row.get("ipAdEntNetMask")))
        )
    return tuple(found)


async def collect(client: SnmpClient) -> tuple[VarBind, ...]:
    """Everything classification needs, in one multi-column walk and one GET."""
    walked = await client.walk_many(WALK_ROOTS)
    fetched = await client.get(SCALARS)
    varbinds: dict[Oid, SnmpValue] = {}
    for result in walked:
        varbinds.update(result.varbinds)
    varbinds.update((oid, value) for oid, value in fetched if not value.is_exception)
    return tuple(sorted(varbinds.items()))


def interfaces_element(interfaces: Iterable[Interface]) -> ET.Element:
    """``<interfaces><interface index=.. name=.. mac=.. vendor=.. oper_status=.. speed_bps=../>...``
    (pure; ``vendor``: the MAC's organisation in the IEEE OUI list)."""
    element = ET.Element("interfaces")
    for interface in interfaces:
        attributes = {"index": str(interface.index)}
        for key in ("name", "descr", "alias", "mac", "admin_status", "oper_status"):
            value = getattr(interface, key)
            if value:
                attributes[key] = str(value)
        vendor = mac_vendor(interface.mac)
        if vendor:
            attributes["vendor"] = vendor
        for key in ("type", "mtu", "speed_bps"):
            number = getattr(interface, key)
            if number is not None:
                attributes[key] = str(number)
        ET.SubElement(element, "interface", attributes)
    return element


def addresses_element(entries: Iterable[IpAddressEntry]) -> ET.Element:
    """``<ip_addresses><ip_address address=.. if_index=.. netmask=.. prefix_length=../>...`` (pure)."""
    element = ET.Element("ip_addresses")
    for entry in entries:
        attributes = {"address": entry.address}
        if entry.if_index is not None:
            attributes["if_index"] = str(entry.if_index)
        if entry.netmask is not None:
            attributes["netmask"] = entry.netmask
        if entry.prefix_length is not None:
            attributes["prefix_length"] = str(entry.prefix_length)
        ET.SubElement(element, "ip_address", attributes)
    return element


def encode_classify_result(result: SnmpClassifyResult) -> ET.Element:
    """``<result>`` with the typed ``<snmp>`` data, ``<classification>`` and the parsed tables."""
    element = ET.Element("result")
    element.append(snmp_element(result))
    found = result.classification
    summary = {"confidence": f"{found.confidence:.2f}"}
    if found.ci_class is not None:
        summary["ci_class"] = found.ci_class
    if found.vendor:
        summary["vendor"] = found.vendor
    if result.facts.sys_object_id is not None:
        summary["sys_object_id"] = format_oid(result.facts.sys_object_id, leading_dot=True)
    if result.facts.sys_name:
        summary["sys_name"] = result.facts.sys_name
    if result.facts.model:
        summary["model"] = result.facts.model
    classification = ET.SubElement(element, "classification", summary)
    if result.facts.sys_descr:
        ET.SubElement(classification, "sys_descr").text = result.facts.sys_descr
    for capability, how in capability_evidence(result.facts).items():
        ET.SubElement(classification, "capability", name=capability, evidence=how)
    for reason in found.evidence:
        ET.SubElement(classification, "evidence").text = reason
    element.append(interfaces_element(result.interfaces))
    element.append(addresses_element(result.ip_addresses))
    return element


@dataclass
class SnmpClassifyProbe:
    """The ``SNMPClassify`` topic."""

    memory: BulkSizeMemory = field(default_factory=BulkSizeMemory)
    #: The rules table to classify with; ``None``: the one shipped (``probes/classify/rules.toml``).
    classifier: Classifier | None = None
    #: The sessions' opener; ``None``: the real backends (tests replay recorded walks).
    opener: SessionOpener | None = None
    topic: str = TOPIC
    required_capabilities: tuple[str, ...] = ()

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> SnmpClassifyParams:
        return SnmpClassifyParams(ConnectionParams.parse(source, parameters))

    async def run(self, params: SnmpClassifyParams, context: ProbeContext) -> SnmpClassifyResult:
        return await classify_host(
            params.connection,
            credentials=context.credentials,
            policy=context.policy,
            deadline=context.deadline,
            memory=self.memory,
            classifier=self.classifier,
            opener=self.opener,
        )

    def encode_results(self, result: SnmpClassifyResult) -> Sequence[ET.Element]:
        return [encode_classify_result(result)]


async def classify_host(
    connection: ConnectionParams,
    *,
    credentials: object,
    policy: TargetPolicy,
    deadline: float,
    memory: BulkSizeMemory | None = None,
    classifier: Classifier | None = None,
    opener: SessionOpener | None = None,
) -> SnmpClassifyResult:
    """Connect with the first credential that works, collect, classify (for ``midprobe scan`` too)."""
    started = time.monotonic()
    async with open_client(
        connection,
        credentials,
        policy=policy,
        deadline=deadline,
        memory=memory if memory is not None else BulkSizeMemory(),
        opener=opener,
    ) as (address, client):
        varbinds = await collect(client)
        version = client.auth.version
        credential_id = client.auth.credential_id
    facts = facts_from_varbinds(varbinds)
    return SnmpClassifyResult(
        source=connection.source,
        address=address,
        port=connection.port,
        version=version,
        credential_id=credential_id,
        facts=facts,
        classification=classify(facts, classifier, address=address),
        interfaces=interfaces_from_varbinds(varbinds),
        ip_addresses=addresses_from_varbinds(varbinds),
        varbinds=varbinds,
        elapsed_ms=round((time.monotonic() - started) * 1000),
    )


PROBE = SnmpClassifyProbe()

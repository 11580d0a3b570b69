"""SNMP facts for classification (pure): what the walked objects say a device is and does.

``facts_from_varbinds`` reads sysObjectID, sysDescr, sysServices, ipForwarding, BRIDGE-MIB ports,
the Printer-MIB and the UPS-MIB out of whatever was walked; ``capabilities`` turns them into printing,
switching, routing and UPS power; ``observations`` hands all of it to the shared classifier (``midprobe.probes.classify``),
whose table (``rules.toml``) holds the sysObjectID rules and the by-capability order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from midprobe.probes.classify import Classification, Classifier, Observations, default_classifier
from midprobe.probes.snmp.values import (
    Oid,
    SnmpType,
    SnmpValue,
    VarBind,
    format_oid,
    is_prefix,
)

#: CMDB classes SNMP classification gives (names only: the rules live in ``probes/classify/rules.toml``).
SWITCH = "cmdb_ci_ip_switch"
ROUTER = "cmdb_ci_ip_router"
PRINTER = "cmdb_ci_printer"
LINUX_SERVER = "cmdb_ci_linux_server"
NETGEAR = "cmdb_ci_netgear"

ROUTING = "routing"
SWITCHING = "switching"
PRINTING = "printing"
UPS_POWER = "ups_power"

SYS_DESCR = (1, 3, 6, 1, 2, 1, 1, 1, 0)
SYS_OBJECT_ID = (1, 3, 6, 1, 2, 1, 1, 2, 0)
SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)
SYS_SERVICES = (1, 3, 6, 1, 2, 1, 1, 7, 0)
IP_FORWARDING = (1, 3, 6, 1, 2, 1, 4, 1, 0)
DOT1D_BASE_NUM_PORTS = (1, 3, 6, 1, 2, 1, 17, 1, 2, 0)
PRINTER_MIB = (1, 3, 6, 1, 2, 1, 43)
HR_PRINTER_TABLE = (1, 3, 6, 1, 2, 1, 25, 3, 5)
HR_DEVICE_TYPE = (1, 3, 6, 1, 2, 1, 25, 3, 2, 1, 2)
HR_DEVICE_PRINTER = (1, 3, 6, 1, 2, 1, 25, 3, 1, 5)
#: UPS-MIB (RFC 1628): upsIdentManufacturer and upsIdentModel; any answer under it means "a UPS".
UPS_MIB = (1, 3, 6, 1, 2, 1, 33)
UPS_IDENT_MANUFACTURER = (1, 3, 6, 1, 2, 1, 33, 1, 1, 1, 0)
UPS_IDENT_MODEL = (1, 3, 6, 1, 2, 1, 33, 1, 1, 2, 0)
#: ENTITY-MIB entPhysicalModelName of the first entity (index 1: the chassis on most agents).
ENT_PHYSICAL_MODEL_NAME_1 = (1, 3, 6, 1, 2, 1, 47, 1, 1, 1, 1, 13, 1)


@dataclass(frozen=True)
class DeviceFacts:
    """What classification looks at, read from the agent."""

    sys_descr: str = ""
    sys_object_id: Oid | None = None
    sys_name: str | None = None
    sys_services: int | None = None
    ip_forwarding: int | None = None
    bridge_ports: int | None = None
    printer_mib: bool = False
    ups_mib: bool = False
    #: The model as the agent names it (upsIdentModel, else entPhysicalModelName.1), if it does.
    model: str | None = None


def _text(value: SnmpValue | None) -> str | None:
    if value is None or value.type is not SnmpType.OCTET_STRING:
        return None
    return value.as_text()


def _int(value: SnmpValue | None) -> int | None:
    return value.as_int() if value is not None else None


def facts_from_varbinds(varbinds: Iterable[VarBind]) -> DeviceFacts:
    """The classification facts found among ``varbinds`` (whatever was walked or fetched)."""
    found = dict(varbinds)
    object_id = found.get(SYS_OBJECT_ID)
    printer = any(
        (is_prefix(PRINTER_MIB, oid) or is_prefix(HR_PRINTER_TABLE, oid)) and not value.is_exception
        for oid, value in found.items()
    ) or any(
        is_prefix(HR_DEVICE_TYPE, oid) and value.value == HR_DEVICE_PRINTER for oid, value in found.items()
    )
    ups = any(is_prefix(UPS_MIB, oid) and not value.is_exception for oid, value in found.items())
    model = (_text(found.get(UPS_IDENT_MODEL)) or "").strip() or (
        _text(found.get(ENT_PHYSICAL_MODEL_NAME_1)) or ""
    ).strip()
    return DeviceFacts(
        sys_descr=_text(found.get(SYS_DESCR)) or "",
        sys_object_id=object_id.value
        if object_id is not None
        and object_id.type is SnmpType.OBJECT_ID
        and isinstance(object_id.value, tuple)
        else None,
        sys_name=_text(found.get(SYS_NAME)),
        sys_services=_int(found.get(SYS_SERVICES)),
        ip_forwarding=_int(found.get(IP_FORWARDING)),
        bridge_ports=_int(found.get(DOT1D_BASE_NUM_PORTS)),
        printer_mib=printer,
        ups_mib=ups,
        model=model or None,
    )


def capabilities(facts: DeviceFacts) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(capabilities, evidence)`` from the facts."""
    found: list[str] = []
    evidence: list[str] = []
    if facts.printer_mib:
        found.append(PRINTING)
        evidence.append("Printer-MIB / hrPrinterTable objects present")
    if facts.bridge_ports:
        found.append(SWITCHING)
        evidence.append(f"dot1dBaseNumPorts = {facts.bridge_ports} (BRIDGE-MIB)")
    if facts.ups_mib:
        found.append(UPS_POWER)
        evidence.append("UPS-MIB (1.3.6.1.2.1.33) objects present")
    # A BRIDGE-MIB that counts 0 ports says "no bridge" louder than sysServices' layer-2 bit.
    if (
        facts.sys_services is not None
        and facts.sys_services & 0x02
        and SWITCHING not in found
        and facts.bridge_ports is None
    ):
        found.append(SWITCHING)
        evidence.append(f"sysServices = {facts.sys_services} (layer 2 set)")
    if facts.ip_forwarding == 1:
        found.append(ROUTING)
        evidence.append("ipForwarding = 1 (forwarding)")
    if facts.sys_services is not None and facts.sys_services & 0x04 and ROUTING not in found:
        found.append(ROUTING)
        evidence.append(f"sysServices = {facts.sys_services} (layer 3 set)")
    return tuple(found), tuple(evidence)


def capability_evidence(facts: DeviceFacts) -> Mapping[str, str]:
    """``{capability: what showed it}``, as ``Observations.snmp_capabilities`` takes it."""
    found, evidence = capabilities(facts)
    return dict(zip(found, evidence, strict=True))


def observations(facts: DeviceFacts, address: str = "") -> Observations:
    """What the shared classifier needs from an agent that answered (so ``logged_in`` holds ``snmp``)."""
    return Observations(
        address=address,
        sys_object_id=format_oid(facts.sys_object_id, leading_dot=True)
        if facts.sys_object_id is not None
        else None,
        sys_descr=facts.sys_descr or None,
        snmp_capabilities=capability_evidence(facts),
        logged_in=frozenset({"snmp"}),
    )


def classify(
    facts: DeviceFacts, classifier: Classifier | None = None, *, address: str = ""
) -> Classification:
    """The shared classifier's verdict on the device (``classifier``: the shipped table by default)."""
    return (classifier or default_classifier()).classify(observations(facts, address))

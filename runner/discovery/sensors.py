"""Sensors: what each phase's ECC input says, read into typed values, and what runs next.

Pure (no queue, no network): the orchestrator hands a decoded input payload to the sensor of
its topic and acts on the answer. Shazzam's sensor lists the hosts that answered and their
open ports, and ``classification_order`` picks the classifiers that apply to each
(``runner/discovery/scanning.py``, which ``midprobe scan`` decides with too); classification sensors turn a classify probe's result into a
:class:`~midprobe.runner.cmdb.model.DiscoveredDevice` for the CMDB; the identification and
exploration sensor (``read_findings``) reads what the identity and exploration probes found
(serial numbers, interfaces with MACs, addresses, model, CPUs, memory, LLDP and CDP neighbours), which
``with_findings`` lays over the classified device, and the rows of the CMDB's exploration tables
(ARP entries, forwarding database, VLANs, routes, sockets, disks, packages, processes).
"""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from midprobe.capabilities.errors import ConfigError
from midprobe.runner.cmdb.model import (
    CI_CLASSES,
    EXPLORATION_TABLES,
    DiscoveredDevice,
    NetworkInterface,
    TableRows,
    normalize_mac,
)
from midprobe.runner.discovery.scanning import (
    CLASSIFIERS,
    HTTP_PORTS,
    SSH_PORTS,
    WINDOWS_PORTS,
    ScannedHost,
    classification_order,
    read_shazzam,
)
from midprobe.runner.ecc.payload import ResultsPayload


def _text(element: ET.Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    text = element.text.strip()
    return text or None


def _class_or_none(name: str | None) -> str | None:
    return name if name in CI_CLASSES else None


def device_name(candidates: Iterable[str | None], ip: str) -> str:
    for candidate in candidates:
        if candidate and candidate.strip() and candidate.isprintable():
            return candidate.strip()[:255]
    return ip


def read_ssh_classify(payload: ResultsPayload, ip: str, dns_name: str = "") -> DiscoveredDevice | None:
    """The device an SSHClassify input describes, or None when it found no class."""
    facts = next(
        (r for r in payload.results if r.get("classification") is not None or r.find("os") is not None), None
    )
    if facts is None:
        return None
    ci_class = _class_or_none(facts.get("classification"))
    if ci_class is None:
        return None
    os_element = facts.find("os")
    kernel = facts.find("kernel")
    cpu = facts.find("cpu")
    memory = facts.find("memory")
    attributes: dict[str, str] = {}
    if os_element is not None:
        if os_element.get("name"):
            attributes["os"] = os_element.get("name", "")
        if os_element.get("version"):
            attributes["os_version"] = os_element.get("version", "")
    if kernel is not None and kernel.get("name") and "os" not in attributes:
        attributes["os"] = kernel.get("name", "")
    if cpu is not None and cpu.get("count"):
        attributes["cpu_count"] = cpu.get("count", "")
    if cpu is not None and cpu.get("model"):
        attributes["cpu_type"] = cpu.get("model", "")
    if memory is not None and memory.get("mb"):
        attributes["ram"] = memory.get("mb", "")
    host_name = _text(facts.find("hostname"))
    if host_name:
        attributes["host_name"] = host_name
    by_interface: dict[str, list[str]] = {}
    for address in facts.iter("address"):
        value, interface = address.get("ip"), address.get("interface") or "unknown"
        if value and address.get("scope") not in ("host",):
            try:
                by_interface.setdefault(interface, []).append(str(ipaddress.ip_address(value)))
            except ValueError:
                continue
    interfaces = tuple(
        NetworkInterface(name, None, tuple(addresses)) for name, addresses in sorted(by_interface.items())
    )
    return DiscoveredDevice(
        ci_class,
        device_name((host_name, dns_name), ip),
        ip_address=ip,
        interfaces=interfaces,
        attributes=attributes,
    )


def read_snmp_classify(payload: ResultsPayload, ip: str, dns_name: str = "") -> DiscoveredDevice | None:
    """The device an SNMPClassify input describes, or None when it found no class."""
    result = next((r for r in payload.results if r.find("classification") is not None), None)
    if result is None:
        return None
    found = result.find("classification")
    assert found is not None
    ci_class = _class_or_none(found.get("ci_class"))
    if ci_class is None:
        return None
    attributes: dict[str, str] = {}
    for key, attribute in (
        ("manufacturer", "vendor"),
        ("sys_object_id", "sys_object_id"),
        ("model_id", "model"),
    ):
        if found.get(attribute):
            attributes[key] = found.get(attribute, "")
    description = _text(found.find("sys_descr"))
    if description:
        attributes["description"] = description[:1000]
    for key in ("os", "os_version", "firmware_version"):
        if found.get(key):
            attributes[key] = found.get(key, "")
    return DiscoveredDevice(
        ci_class,
        device_name((found.get("sys_name"), dns_name), ip),
        ip_address=ip,
        serial_number=found.get("serial_number") or None,
        interfaces=_snmp_interfaces(result),
        attributes=attributes,
    )


def read_nmap_host_scan(payload: ResultsPayload, ip: str, dns_name: str = "") -> DiscoveredDevice | None:
    """The device a credential-less NmapHostScan input describes (OS family -> class), or None."""
    for result in payload.results:
        for host in result.iter("host"):
            if host.get("address") != ip or host.get("status") != "up":
                continue
            ci_class = _class_or_none(host.get("ci_class"))
            if ci_class is None:
                return None
            best = host.find("os")
            attributes = {"os": best.get("name", "")} if best is not None and best.get("name") else {}
            mac = host.get("mac")
            interfaces = (NetworkInterface("nmap", normalize_mac(mac), (ip,)),) if mac else ()
            return DiscoveredDevice(
                ci_class,
                device_name((host.get("hostname"), dns_name), ip),
                ip_address=ip,
                interfaces=interfaces,
                attributes=attributes,
            )
    return None


#: The identity probe set (one MultiProbe) and the exploration probe, by the classifier that found
#: the class: the device answers that protocol with the credential classification found.
IDENTITY_PROBES: Final[Mapping[str, tuple[str, ...]]] = {
    "SSHClassify": ("SSHIdentity",),
    "SNMPClassify": ("SNMPIdentity",),
}
EXPLORATION_PROBES: Final[Mapping[str, str]] = {"SSHClassify": "SSHExplore", "SNMPClassify": "SNMPExplore"}
#: IF-MIB ifType softwareLoopback(24): not a network adapter of the device.
_SOFTWARE_LOOPBACK = "24"


@dataclass(frozen=True)
class Neighbour:
    """A device seen on one of this device's ports (LLDP or CDP): its ids and what it calls itself."""

    chassis_id: str
    chassis_mac: str | None = None
    sys_name: str | None = None
    port_id: str | None = None
    local_port: str | None = None
    protocol: str = "lldp"
    address: str | None = None


@dataclass(frozen=True)
class Findings:
    """What identity and exploration probes found; empty fields were not found."""

    serial_number: str | None = None
    host_name: str | None = None
    interfaces: tuple[NetworkInterface, ...] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)
    neighbours: tuple[Neighbour, ...] = ()
    #: Rows for the CMDB's exploration tables (``EXPLORATION_TABLES``), by table.
    tables: Mapping[str, TableRows] = field(default_factory=dict)
    #: The probes that answered, and those that failed with why.
    answered: tuple[str, ...] = ()
    failed: Mapping[str, str] = field(default_factory=dict)


def connection_hints(payload: ResultsPayload) -> dict[str, str]:
    """What the later phases reuse from a classify result: the credential and SNMP version that worked."""
    for result in payload.results:
        for element in (result, result.find("snmp")):
            if element is not None and element.get("credential_id"):
                hints = {"credential_id": element.get("credential_id", "")}
                if element.tag == "snmp" and element.get("version"):
                    hints["version"] = element.get("version", "")
                return hints
    return {}


def _usable_address(text: str | None) -> str | None:
    """An address that can stand for the device: not loopback, link-local or unspecified."""
    try:
        address = ipaddress.ip_address(text or "")
    except ValueError:
        return None
    if address.is_loopback or address.is_link_local or address.is_unspecified:
        return None
    return str(address)


def _mac_or_none(text: str | None) -> str | None:
    try:
        return normalize_mac(text) if text else None
    except ConfigError:
        return None


def _snmp_interfaces(found: ET.Element) -> tuple[NetworkInterface, ...]:
    """``<interfaces>`` + ``<ip_addresses>`` (SNMPClassify, SNMPIdentity, SNMPExplore) as adapters."""
    by_index: dict[str, list[str]] = {}
    addresses = found.find("ip_addresses")
    for entry in addresses.iter("ip_address") if addresses is not None else ():
        usable = _usable_address(entry.get("address"))
        if usable is not None:
            by_index.setdefault(entry.get("if_index") or "", []).append(usable)
    interfaces: list[NetworkInterface] = []
    seen: set[str] = set()
    listed = found.find("interfaces")
    for interface in listed.iter("interface") if listed is not None else ():
        if interface.get("type") == _SOFTWARE_LOOPBACK:
            continue
        name = interface.get("name") or interface.get("descr") or f"if{interface.get('index', '?')}"
        if name in seen or not name.isprintable():
            continue
        seen.add(name)
        on_it = tuple(dict.fromkeys(by_index.get(interface.get("index") or "?", [])))
        interfaces.append(NetworkInterface(name[:255], _mac_or_none(interface.get("mac")), on_it))
    return tuple(interfaces)


def _host_interfaces(found: ET.Element) -> tuple[NetworkInterface, ...]:
    """``<host_exploration>``'s interfaces (loopback left out) with the usable addresses on each."""
    by_name: dict[str, list[str]] = {}
    addresses = found.find("ip_addresses")
    for entry in addresses.iter("ip_address") if addresses is not None else ():
        usable = _usable_address(entry.get("address"))
        if usable is not None and entry.get("scope") != "host":
            by_name.setdefault(entry.get("interface") or "", []).append(usable)
    interfaces: list[NetworkInterface] = []
    listed = found.find("interfaces")
    for interface in listed.iter("interface") if listed is not None else ():
        name = interface.get("name") or ""
        if not name or interface.get("kind") == "loopback" or not name.isprintable():
            continue
        on_it = tuple(dict.fromkeys(by_name.get(name, [])))
        interfaces.append(NetworkInterface(name[:255], _mac_or_none(interface.get("mac")), on_it))
    return tuple(interfaces)


def _copied(element: ET.Element, names: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The CMDB attributes ``(key, XML attribute)`` that ``element`` carries, each cut to 255 characters."""
    return {key: element.get(attribute, "")[:255] for key, attribute in names if element.get(attribute)}


#: Where each exploration table's rows are in a probe's XML: (table, path of the rows, fixed
#: columns, (column, XML attribute) pairs). Several entries may fill one table.
_Layout = tuple[tuple[str, str, Mapping[str, str], tuple[tuple[str, str], ...]], ...]
#: Listening sockets and established connections, as SSHExplore and SNMPExplore both write them.
_TCP_TABLES: Final[_Layout] = tuple(
    (
        "cmdb_tcp_connection",
        path,
        {"type": kind},
        (
            ("protocol", "protocol"),
            ("local_address", "local_address"),
            ("local_port", "local_port"),
            ("remote_address", "remote_address"),
            ("remote_port", "remote_port"),
            ("process", "process"),
            ("pid", "pid"),
        ),
    )
    for kind, path in (("listening", "listening/socket"), ("established", "connections/connection"))
)
_SNMP_TABLES: Final[_Layout] = (
    (
        "discovery_net_arp_table",
        "arp_table/arp_entry",
        {},
        (("ip_address", "address"), ("mac_address", "mac"), ("kind", "kind"), ("vendor", "vendor")),
    ),
    (
        "discovery_switch_fwd_table",
        "forwarding_table/fdb_entry",
        {},
        (
            ("mac_address", "mac"),
            ("port", "port"),
            ("vlan", "vlan"),
            ("status", "status"),
            ("vendor", "vendor"),
        ),
    ),
    ("cmdb_ci_vlan", "vlans/vlan", {}, (("vlan_id", "id"), ("name", "name"))),
    *_TCP_TABLES,
    (
        "cmdb_ci_ip_route",
        "routes/route",
        {},
        (
            ("destination", "destination"),
            ("next_hop", "next_hop"),
            ("route_type", "kind"),
            ("protocol", "protocol"),
            ("metric", "metric"),
        ),
    ),
)
_HOST_TABLES: Final[_Layout] = (
    (
        "discovery_net_arp_table",
        "neighbours/neighbour",
        {},
        (
            ("ip_address", "address"),
            ("mac_address", "mac"),
            ("interface", "device"),
            ("kind", "state"),
            ("vendor", "vendor"),
        ),
    ),
    (
        "cmdb_ci_ip_route",
        "routes/route",
        {},
        (
            ("destination", "destination"),
            ("next_hop", "gateway"),
            ("interface", "device"),
            ("protocol", "protocol"),
            ("metric", "metric"),
        ),
    ),
    *_TCP_TABLES,
    (
        "cmdb_ci_disk",
        "disks/disk",
        {},
        (
            ("name", "name"),
            ("size_bytes", "size_bytes"),
            ("model", "model"),
            ("serial_number", "serial_number"),
            ("transport", "transport"),
            ("rotational", "rotational"),
        ),
    ),
    (
        "cmdb_sam_sw_install",
        "packages/package",
        {},
        (("name", "name"), ("version", "version"), ("architecture", "architecture")),
    ),
    (
        "cmdb_running_process",
        "processes/process",
        {},
        (("pid", "pid"), ("ppid", "ppid"), ("user_name", "user"), ("command", "command")),
    ),
)


def _tables(
    found: ET.Element,
    layout: _Layout,
    interface_names: Mapping[str, str] | None = None,
) -> dict[str, TableRows]:
    """The exploration tables' rows in ``found`` (a table whose element is absent is left out:
    the probe did not read it, so the CMDB keeps what it had)."""
    tables: dict[str, list[dict[str, str | None]]] = {}
    for table, path, fixed, columns in layout:
        parent_path = path.rsplit("/", 1)[0]
        if found.find(parent_path) is None:
            continue
        rows = tables.setdefault(table, [])
        for element in found.iterfind(path):
            row: dict[str, str | None] = {**fixed, **_copied(element, columns)}
            if interface_names is not None and element.get("if_index"):
                row["interface"] = interface_names.get(element.get("if_index", ""), element.get("if_index"))
            rows.append(row)
    assert set(tables) <= set(EXPLORATION_TABLES)
    return {table: tuple(rows) for table, rows in tables.items()}


def _interface_names(found: ET.Element) -> dict[str, str]:
    """ifIndex -> the interface's name (ifName, else ifDescr)."""
    return {
        interface.get("index", ""): name[:255]
        for interface in found.iterfind("interfaces/interface")
        if (name := interface.get("name") or interface.get("descr") or "")
    }


def _snmp_findings(found: ET.Element) -> Findings:
    chassis = found.find("chassis")
    attributes = (
        _copied(
            chassis,
            (
                ("model_id", "model"),
                ("manufacturer", "manufacturer"),
                ("firmware_version", "firmware_version"),
            ),
        )
        if chassis is not None
        else {}
    )
    neighbours = found.find("neighbours")
    return Findings(
        serial_number=found.get("serial_number"),
        host_name=found.get("sys_name"),
        interfaces=_snmp_interfaces(found),
        attributes=attributes,
        neighbours=tuple(
            Neighbour(
                chassis_id=n.get("chassis_id", ""),
                chassis_mac=_mac_or_none(n.get("chassis_id"))
                if n.get("chassis_id_subtype") == "macAddress"
                else None,
                sys_name=n.get("sys_name"),
                port_id=n.get("port_id"),
                local_port=n.get("local_port"),
                protocol=n.get("protocol") or "lldp",
                address=_usable_address(n.get("address")),
            )
            for n in (neighbours.iter("neighbour") if neighbours is not None else ())
            if n.get("chassis_id")
        ),
        tables=_tables(found, _SNMP_TABLES, _interface_names(found)),
    )


def _host_findings(found: ET.Element) -> Findings:
    attributes = _copied(
        found,
        (
            ("model_id", "model"),
            ("manufacturer", "manufacturer"),
            ("host_name", "hostname"),
            ("os", "os_name"),
            ("os_version", "os_version"),
        ),
    )
    cpu, memory = found.find("cpu"), found.find("memory")
    if cpu is not None and cpu.get("count"):
        attributes["cpu_count"] = cpu.get("count", "")
    if cpu is not None and cpu.get("model"):
        attributes["cpu_type"] = cpu.get("model", "")
    if memory is not None and memory.get("mb"):
        attributes["ram"] = memory.get("mb", "")
    return Findings(
        serial_number=found.get("serial_number"),
        host_name=found.get("hostname"),
        interfaces=_host_interfaces(found),
        attributes=attributes,
        tables=_tables(found, _HOST_TABLES),
    )


def _merge(first: Findings, second: Findings) -> Findings:
    """``first`` wins where both found something (the identity set lists the preferred probe first)."""
    return Findings(
        serial_number=first.serial_number or second.serial_number,
        host_name=first.host_name or second.host_name,
        interfaces=first.interfaces or second.interfaces,
        attributes={**second.attributes, **first.attributes},
        neighbours=first.neighbours or second.neighbours,
        tables={**second.tables, **first.tables},
        answered=(*first.answered, *second.answered),
        failed={**second.failed, **first.failed},
    )


def read_findings(payload: ResultsPayload) -> Findings:
    """What an identification MultiProbe (or one exploration probe) found, merged in probe order."""
    merged = Findings()
    for result in payload.results:
        probe = result.get("probe", "")
        if result.get("error") is not None:
            merged = _merge(merged, Findings(failed={probe or "?": result.get("error", "")}))
            continue
        for found, read in (
            (result.find("snmp_exploration"), _snmp_findings),
            (result.find("host_exploration"), _host_findings),
        ):
            if found is not None:
                merged = _merge(merged, replace(read(found), answered=(probe,) if probe else ()))
    return merged


def with_findings(device: DiscoveredDevice, findings: Findings) -> DiscoveredDevice:
    """The classified device with what identification or exploration found laid over it."""
    attributes = {**device.attributes, **findings.attributes}
    named_by_address = device.name == device.ip_address
    return replace(
        device,
        name=device_name((findings.host_name,), device.name) if named_by_address else device.name,
        serial_number=findings.serial_number or device.serial_number,
        interfaces=findings.interfaces or device.interfaces,
        attributes=attributes,
    )


def device_to_json(device: DiscoveredDevice) -> dict[str, object]:
    """The device as JSON data (kept in a planned output's meta until the next phase senses)."""
    return {
        "sys_class_name": device.sys_class_name,
        "name": device.name,
        "ip_address": device.ip_address,
        "serial_number": device.serial_number,
        "interfaces": [[i.name, i.mac_address, list(i.ip_addresses)] for i in device.interfaces],
        "attributes": dict(device.attributes),
    }


def device_from_json(data: Mapping[str, object]) -> DiscoveredDevice:
    """``device_to_json`` read back (``ConfigError`` on anything else)."""
    interfaces = data.get("interfaces", [])
    attributes = data.get("attributes", {})
    if not isinstance(interfaces, list) or not isinstance(attributes, dict):
        raise ConfigError("a planned output's device is not readable", field="meta")
    try:
        return DiscoveredDevice(
            str(data["sys_class_name"]),
            str(data["name"]),
            ip_address=str(data["ip_address"]) if data.get("ip_address") else None,
            serial_number=str(data["serial_number"]) if data.get("serial_number") else None,
            interfaces=tuple(
                NetworkInterface(str(name), mac, tuple(map(str, addresses)))
                for name, mac, addresses in interfaces
            ),
            attributes={str(k): str(v) for k, v in attributes.items()},
        )
    except (KeyError, TypeError, ValueError):
        raise ConfigError("a planned output's device is not readable", field="meta") from None


#: Each classification topic's sensor.
READERS: Final = {
    "SSHClassify": read_ssh_classify,
    "SNMPClassify": read_snmp_classify,
    "NmapHostScan": read_nmap_host_scan,
}

__all__ = [
    "CLASSIFIERS",
    "EXPLORATION_PROBES",
    "HTTP_PORTS",
    "IDENTITY_PROBES",
    "READERS",
    "SSH_PORTS",
    "WINDOWS_PORTS",
    "Findings",
    "Neighbour",
    "ScannedHost",
    "classification_order",
    "connection_hints",
    "device_from_json",
    "device_name",
    "device_to_json",
    "read_findings",
    "read_nmap_host_scan",
    "read_shazzam",
    "read_snmp_classify",
    "read_ssh_classify",
    "with_findings",
]

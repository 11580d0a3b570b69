"""Sensors: what each phase's ECC input says, read into typed values, and what runs next.

Pure (no queue, no network): the orchestrator hands a decoded input payload to the sensor of
its topic and acts on the answer. Shazzam's sensor lists the hosts that answered and their
open ports; classification sensors turn a classify probe's result into a
:class:`~midprobe.runner.cmdb.model.DiscoveredDevice` for the CMDB.
"""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from midprobe.capabilities.errors import ConfigError
from midprobe.runner.cmdb.model import CI_CLASSES, DiscoveredDevice, NetworkInterface, normalize_mac
from midprobe.runner.ecc.payload import ResultsPayload

#: Windows classification ports (noted and skipped: midprobe has no WMI/WinRM probe yet).
WINDOWS_PORTS: Final = frozenset({135, 5985, 5986})
SSH_PORTS: Final = frozenset({22})
HTTP_PORTS: Final = frozenset({80, 443})
#: Classification topics in ServiceNow's port priority, with the behaviour protocol each needs.
CLASSIFIERS: Final = (("ssh", "SSHClassify"), ("snmp", "SNMPClassify"), ("nmap", "NmapHostScan"))


@dataclass(frozen=True)
class ScannedHost:
    """One host of a Shazzam result."""

    ip: str
    alive: bool
    active: bool
    host_name: str
    open_ports: frozenset[int]


def read_shazzam(payload: ResultsPayload) -> list[ScannedHost]:
    """The hosts a Shazzam input reports, in the order given (silent ones are not listed)."""
    hosts = []
    for result in payload.results:
        for host in result.iter("host"):
            ip = host.get("ip", "")
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                continue
            open_ports = frozenset(
                int(port)
                for scanner in host.iter("scanner")
                if scanner.get("result") == "open"
                and (port := scanner.get("port", "")).isdecimal()
                and scanner.get("protocol", "tcp") == "tcp"
            )
            name = host.get("hostName", "") or ""
            domain = host.get("domainName", "") or ""
            full = f"{name}.{domain}" if name and domain and "." not in name else name
            hosts.append(
                ScannedHost(
                    ip=ip,
                    alive=host.get("alive") == "true",
                    active=host.get("active") == "true",
                    host_name=full,
                    open_ports=open_ports,
                )
            )
    return hosts


def classification_order(
    host: ScannedHost, behaviour: Sequence[str], *, nmap_available: bool
) -> tuple[list[str], list[str]]:
    """The classify topics to try for ``host`` in order, and notes on what was skipped and why."""
    topics: list[str] = []
    notes: list[str] = []
    if host.open_ports & WINDOWS_PORTS:
        notes.append(
            f"Windows ports {sorted(host.open_ports & WINDOWS_PORTS)} open: Windows classification is not implemented, skipped"
        )
    for protocol, topic in CLASSIFIERS:
        if protocol not in behaviour:
            notes.append(f"{topic} skipped: {protocol} is not in the schedule's behaviour")
        elif protocol == "ssh" and not host.open_ports & SSH_PORTS:
            notes.append("SSHClassify skipped: port 22 is not open")
        elif protocol == "nmap" and not nmap_available:
            notes.append("NmapHostScan skipped: no suitable MID has the Nmap capability")
        else:
            topics.append(topic)
    if host.open_ports & HTTP_PORTS and "http" in behaviour:
        notes.append("HTTP answered: HTTP classification adds no class on its own, noted")
    return topics, notes


def _text(element: ET.Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    text = element.text.strip()
    return text or None


def _class_or_none(name: str | None) -> str | None:
    return name if name in CI_CLASSES else None


def _device_name(candidates: Iterable[str | None], ip: str) -> str:
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
        _device_name((host_name, dns_name), ip),
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
    interfaces = []
    seen: set[str] = set()
    interfaces_element = result.find("interfaces")
    for interface in interfaces_element.iter("interface") if interfaces_element is not None else ():
        name = interface.get("name") or interface.get("descr") or f"if{interface.get('index', '?')}"
        if name in seen:
            continue
        seen.add(name)
        mac = interface.get("mac")
        try:
            normalized = normalize_mac(mac) if mac else None
        except ConfigError:
            normalized = None
        interfaces.append(NetworkInterface(name, normalized))
    return DiscoveredDevice(
        ci_class,
        _device_name((found.get("sys_name"), dns_name), ip),
        ip_address=ip,
        serial_number=found.get("serial_number") or None,
        interfaces=tuple(interfaces),
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
                _device_name((host.get("hostname"), dns_name), ip),
                ip_address=ip,
                interfaces=interfaces,
                attributes=attributes,
            )
    return None


#: Each classification topic's sensor.
READERS: Final = {
    "SSHClassify": read_ssh_classify,
    "SNMPClassify": read_snmp_classify,
    "NmapHostScan": read_nmap_host_scan,
}

__all__ = [
    "CLASSIFIERS",
    "READERS",
    "ScannedHost",
    "classification_order",
    "read_nmap_host_scan",
    "read_shazzam",
    "read_snmp_classify",
    "read_ssh_classify",
]

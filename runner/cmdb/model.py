"""Typed CMDB records: what discovery found about a device, and what the CMDB keeps.

Field names are ServiceNow's where it has them (``sys_class_name``, ``serial_number``,
``model_id``, ``first_discovered``, ...), so ``cmdb list --json`` reads like a Table API answer.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from midprobe.capabilities.errors import ConfigError

#: The classes discovery assigns (ServiceNow table names); ``cmdb_ci_netgear`` when nothing better is known.
CI_CLASSES: Final = frozenset(
    {
        "cmdb_ci_computer",
        "cmdb_ci_server",
        "cmdb_ci_linux_server",
        "cmdb_ci_win_server",
        "cmdb_ci_unix_server",
        "cmdb_ci_aix_server",
        "cmdb_ci_hpux_server",
        "cmdb_ci_solaris_server",
        "cmdb_ci_osx_server",
        "cmdb_ci_esx_server",
        "cmdb_ci_netgear",
        "cmdb_ci_ip_switch",
        "cmdb_ci_ip_router",
        "cmdb_ci_ip_firewall",
        "cmdb_ci_wap_network",
        "cmdb_ci_ups",
        "cmdb_ci_printer",
        "cmdb_ci_storage_server",
        "cmdb_ci_hardware",
        "cmdb_ci_appl",
    }
)

#: Relation types as ``parent descriptor::child descriptor``.
RELATION_TYPES: Final = frozenset({"Runs on::Runs", "Connects to::Connected by", "Depends on::Used by"})

#: Attributes a CI carries besides its identity, with ServiceNow's field names.
ATTRIBUTE_FIELDS: Final = (
    "manufacturer",
    "model_id",
    "os",
    "os_version",
    "cpu_count",
    "cpu_type",
    "ram",
    "disk_space",
    "host_name",
    "dns_domain",
    "firmware_version",
    "uuid",
    "sys_object_id",
    "description",
)

#: What exploration finds beside a CI's identity, one table each (ServiceNow's names where it has
#: them): the columns of each row after ``cmdb_ci``, all text. Each exploration of a CI replaces
#: its rows. ``cmdb_tcp_connection.type`` is ``listening`` (a service: local address and port) or
#: ``established`` (a connection: both ends).
EXPLORATION_TABLES: Final[Mapping[str, tuple[str, ...]]] = {
    "discovery_net_arp_table": ("ip_address", "mac_address", "interface", "kind", "vendor"),
    "discovery_switch_fwd_table": ("mac_address", "port", "interface", "vlan", "status", "vendor"),
    "cmdb_ci_vlan": ("vlan_id", "name"),
    "cmdb_ci_ip_route": ("destination", "next_hop", "interface", "route_type", "protocol", "metric"),
    "cmdb_tcp_connection": (
        "type",
        "protocol",
        "local_address",
        "local_port",
        "remote_address",
        "remote_port",
        "process",
        "pid",
    ),
    "cmdb_ci_disk": ("name", "size_bytes", "model", "serial_number", "transport", "rotational"),
    "cmdb_sam_sw_install": ("name", "version", "architecture"),
    "cmdb_running_process": ("pid", "ppid", "user_name", "command"),
}
#: One table's rows: each a mapping of its columns (absent or None: not known).
TableRows = tuple[Mapping[str, str | None], ...]

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
#: Serial numbers that vendors ship as placeholders: never an identity.
_PLACEHOLDER_SERIALS: Final = frozenset(
    {
        "",
        "0",
        "none",
        "n/a",
        "na",
        "null",
        "unknown",
        "default string",
        "system serial number",
        "to be filled by o.e.m.",
        "not specified",
        "not available",
        "0123456789",
        "123456789",
    }
)


def normalize_mac(text: str) -> str:
    """``AA-BB-CC-DD-EE-FF``, ``aabb.ccdd.eeff`` or ``aa:bb:...`` -> ``aa:bb:cc:dd:ee:ff``; ConfigError if not a MAC."""
    raw = re.sub(r"[^0-9a-fA-F]", "", text) if isinstance(text, str) else ""
    if len(raw) != 12 or not re.fullmatch(r"[0-9A-Fa-f:.\- ]+", text.strip() or "x"):
        raise ConfigError(f"{text!r} is not a MAC address", field="mac_address")
    mac = ":".join(raw[i : i + 2] for i in range(0, 12, 2)).lower()
    assert _MAC.match(mac)
    return mac


#: MAC prefixes that several devices carry at once: the virtual router MACs of VRRP (RFC 5798, IPv4
#: and IPv6) and Cisco HSRP (v1, v2). Two routers sharing one must never merge into one CI.
SHARED_MAC_PREFIXES: Final = ("00:00:5e:00:01:", "00:00:5e:00:02:", "00:00:0c:07:ac:", "00:00:0c:9f:f")


def is_identifying_mac(mac: str) -> bool:
    """Whether a MAC can identify a device: not all zeros, not broadcast or multicast, not shared
    by a redundancy protocol (VRRP, HSRP)."""
    first = int(mac[:2], 16)
    return (
        mac not in ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff")
        and not first & 1
        and not mac.startswith(SHARED_MAC_PREFIXES)
    )


def usable_serial(serial: str | None) -> str | None:
    """The serial number as an identity (trimmed), or None for blanks and vendor placeholders."""
    if serial is None:
        return None
    text = " ".join(serial.split())
    if text.lower() in _PLACEHOLDER_SERIALS or set(text) <= {"0", "x", "X", "-", "."}:
        return None
    return text


def normalize_address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise ConfigError(f"{text!r} is not an IP address", field="ip_address") from None


@dataclass(frozen=True)
class NetworkInterface:
    """A network adapter of a device: its name, MAC and the addresses on it."""

    name: str
    mac_address: str | None = None
    ip_addresses: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mac_address is not None:
            object.__setattr__(self, "mac_address", normalize_mac(self.mac_address))
        object.__setattr__(self, "ip_addresses", tuple(normalize_address(a) for a in self.ip_addresses))


@dataclass(frozen=True)
class DiscoveredDevice:
    """What one discovery learned about one device, ready for identification."""

    sys_class_name: str
    name: str
    ip_address: str | None = None
    serial_number: str | None = None
    interfaces: tuple[NetworkInterface, ...] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sys_class_name not in CI_CLASSES:
            raise ConfigError(f"{self.sys_class_name!r} is not a CMDB class", field="sys_class_name")
        if self.ip_address is not None:
            object.__setattr__(self, "ip_address", normalize_address(self.ip_address))
        unknown = sorted(set(self.attributes) - set(ATTRIBUTE_FIELDS))
        if unknown:
            raise ConfigError(f"unknown CI attribute {unknown[0]!r}", field="attributes")
        object.__setattr__(self, "attributes", {k: str(v) for k, v in self.attributes.items() if v != ""})

    @property
    def identity_serial(self) -> str | None:
        return usable_serial(self.serial_number)

    @property
    def mac_addresses(self) -> frozenset[str]:
        """The MACs that can identify the device (multicast, zero and broadcast left out)."""
        return frozenset(
            i.mac_address for i in self.interfaces if i.mac_address and is_identifying_mac(i.mac_address)
        )

    @property
    def ip_addresses(self) -> frozenset[str]:
        found = {a for i in self.interfaces for a in i.ip_addresses}
        if self.ip_address:
            found.add(self.ip_address)
        return frozenset(found)

    @property
    def primary_mac(self) -> str | None:
        """The MAC of the interface holding the primary address, else the first identifying one."""
        for interface in self.interfaces:
            if self.ip_address in interface.ip_addresses and interface.mac_address:
                return interface.mac_address
        macs = sorted(self.mac_addresses)
        return macs[0] if macs else None


@dataclass(frozen=True)
class ConfigurationItem:
    """A CI as the CMDB holds it."""

    sys_id: str
    sys_class_name: str
    name: str
    ip_address: str | None
    mac_address: str | None
    serial_number: str | None
    attributes: Mapping[str, str]
    first_discovered: str
    last_discovered: str
    last_discovery: str | None
    interfaces: tuple[NetworkInterface, ...] = ()
    ip_addresses: tuple[str, ...] = ()

    def as_row(self) -> dict[str, object]:
        """The CI keyed by ServiceNow's field names (what ``cmdb list --json`` prints)."""
        row: dict[str, object] = {
            "sys_id": self.sys_id,
            "sys_class_name": self.sys_class_name,
            "name": self.name,
            "ip_address": self.ip_address,
            "mac_address": self.mac_address,
            "serial_number": self.serial_number,
        }
        for key in ATTRIBUTE_FIELDS:
            row[key] = self.attributes.get(key)
        row.update(
            first_discovered=self.first_discovered,
            last_discovered=self.last_discovered,
            last_discovery=self.last_discovery,
        )
        return row


@dataclass(frozen=True)
class Change:
    """One attribute change of a CI (the per-attribute history)."""

    ci: str
    field_name: str
    old_value: str | None
    new_value: str | None
    at: str
    discovery: str | None


@dataclass(frozen=True)
class Relation:
    """``parent`` -[type]-> ``child``, with the discovery that found it."""

    sys_id: str
    parent: str
    child: str
    type: str
    discovery: str | None
    first_seen: str
    last_seen: str

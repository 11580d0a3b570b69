"""Lab profiles: the TOML file that says which hosts a lab has and what each one runs.

``load_profile(path)`` validates once at the edge and returns frozen dataclasses; every
error is a ``ConfigError`` naming the file, the entry and the field.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from midprobe.capabilities.errors import ConfigError

DEFAULT_PROFILE = Path(__file__).resolve().parents[2] / "fixtures" / "lab" / "default.toml"
LAB_NETWORK = ipaddress.IPv4Network("198.18.0.0/15")
HOST_NETWORK = ipaddress.IPv4Network("198.18.0.0/24")
FIRST_HOST = 10
LAST_HOST = 249  # .250-.254 are the lab's own infrastructure (the large-mode gateway)
ListenerKind = Literal["http", "raw"]
SNMP_TYPES = ("integer", "unsigned", "counter", "octet_str", "object_id", "ipaddress", "timeticks")
_NAME = re.compile(r"^[a-z][a-z0-9]{0,23}$")
_INTERFACE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$")


@dataclass(frozen=True)
class SnmpOverride:
    """One extra OID snmpd serves (its ``override`` directive), e.g. Printer-MIB values."""

    oid: str
    type: str
    value: str


@dataclass(frozen=True)
class SnmpSettings:
    sys_descr: str
    sys_object_id: str
    sys_location: str
    sys_contact: str
    sys_services: int
    overrides: tuple[SnmpOverride, ...]


@dataclass(frozen=True)
class SshSettings:
    banner: str | None  # pre-login banner text (what a network OS prints)
    version_addendum: str | None  # appended to the SSH version string


@dataclass(frozen=True)
class Listener:
    port: int
    kind: ListenerKind  # "http": answers HTTP/1.0 requests; "raw": accepts, optional banner, reads
    banner: str | None  # raw: sent on connect; http: the Server header


@dataclass(frozen=True)
class Connection:
    """A TCP connection a host keeps open to another lab host's service (something for
    application dependency mapping to find)."""

    host: str
    port: int


@dataclass(frozen=True)
class HostProfile:
    name: str
    ssh: SshSettings | None
    snmp: SnmpSettings | None
    dns: bool
    listeners: tuple[Listener, ...]
    interfaces: tuple[str, ...]  # extra interfaces in the host's namespace (ifTable rows)
    silent: bool  # the address exists (answers ARP) but drops every IP packet
    #: snmpsim serving snmpsim-data's recordings, one per address of the host's routed_network
    zoo: bool = False
    #: lldpd sending and receiving LLDP on eth0 (and serving LLDP-MIB through snmpd over AgentX)
    lldp: bool = False
    connects_to: tuple[Connection, ...] = ()

    @property
    def services(self) -> tuple[str, ...]:
        found: list[str] = []
        if self.ssh is not None:
            found.append("ssh")
        if self.snmp is not None:
            found.append("snmp")
        if any(listener.kind == "http" for listener in self.listeners):
            found.append("http")
        if any(listener.kind == "raw" for listener in self.listeners):
            found.append("tcp")
        if self.dns:
            found.append("dns")
        return tuple(found)

    @property
    def open_tcp_ports(self) -> tuple[int, ...]:
        ports = {listener.port for listener in self.listeners}
        if self.ssh is not None:
            ports.add(22)
        if self.dns:
            ports.add(53)
        return tuple(sorted(ports))


@dataclass(frozen=True)
class HostSpec:
    name: str
    profile: str
    subdomain: str | None
    #: A network the lab routes to this host (the scanner reaches it via the host's address); the
    #: host's own services add the addresses of it they answer on (the zoo: one per recording).
    routed_network: str | None = None


@dataclass(frozen=True)
class LargeSettings:
    """Large mode: one namespace holding a whole network, a fraction of it alive."""

    network: str
    gateway: str  # the large namespace's address on the host network
    alive_fraction: float
    open_ports: tuple[int, ...]
    seed: int


@dataclass(frozen=True)
class LabProfile:
    source: str
    zone: str
    subdomains: tuple[str, ...]
    profiles: Mapping[str, HostProfile]
    hosts: tuple[HostSpec, ...]
    extra_host_profile: str
    large: LargeSettings


def load_profile(path: Path | None = None) -> LabProfile:
    """Read and validate a lab profile TOML file (``None``: the default lab)."""
    path = DEFAULT_PROFILE if path is None else path
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        hint = (
            " (the default profile ships in the source tree; pass --profile FILE)"
            if path == DEFAULT_PROFILE
            else ""
        )
        raise ConfigError(f"cannot read the lab profile: {error.strerror}{hint}", source=source) from error
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"not valid TOML: {error}", source=source) from error
    return parse_profile(data, source=source)


def parse_profile(data: Mapping[str, Any], *, source: str = "<profile>") -> LabProfile:
    """Validate an already-parsed TOML document (pure; used by ``load_profile``)."""
    _only(data, {"lab", "profiles", "hosts"}, source, "")
    lab = _table(data, "lab", source, "", required=False)
    _only(lab, {"zone", "subdomains", "extra_host_profile", "large"}, source, "lab")
    zone = _str(lab, "zone", source, "lab", default="lab.example.test")
    if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", zone):
        raise ConfigError("must be a dotted DNS name in lower case", source=source, entry="lab", field="zone")
    subdomains = tuple(_str_list(lab, "subdomains", source, "lab", default=["sandiego", "sanjose"]))
    for sub in subdomains:
        if not re.fullmatch(r"[a-z0-9-]+", sub):
            raise ConfigError(f"{sub!r} is not a DNS label", source=source, entry="lab", field="subdomains")

    raw_profiles = _table(data, "profiles", source, "", required=True)
    profiles = {
        name: _host_profile(name, _as_table(value, source, f"profiles.{name}"), source)
        for name, value in raw_profiles.items()
    }
    if not profiles:
        raise ConfigError("at least one profile is needed", source=source, entry="profiles")

    raw_hosts = data.get("hosts", [])
    if not isinstance(raw_hosts, list) or not all(isinstance(h, dict) for h in raw_hosts):
        raise ConfigError("must be an array of tables ([[hosts]])", source=source, entry="hosts")
    hosts: list[HostSpec] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_hosts):
        entry = f"hosts[{index}]"
        _only(raw, {"name", "profile", "subdomain", "routed_network"}, source, entry)
        name = _str(raw, "name", source, entry)
        if not _NAME.fullmatch(name) or name in {"scan", "br", "large", "scale"}:
            raise ConfigError(
                f"{name!r} must be lower-case letters and digits, starting with a letter",
                source=source,
                entry=entry,
                field="name",
            )
        if name in seen:
            raise ConfigError(f"host {name!r} is defined twice", source=source, entry=entry, field="name")
        seen.add(name)
        profile = _str(raw, "profile", source, entry)
        if profile not in profiles:
            raise ConfigError(
                f"unknown profile {profile!r} (defined: {', '.join(sorted(profiles))})",
                source=source,
                entry=entry,
                field="profile",
            )
        subdomain = raw.get("subdomain")
        if subdomain is not None and subdomain not in subdomains:
            raise ConfigError(
                f"{subdomain!r} is not one of lab.subdomains {list(subdomains)}",
                source=source,
                entry=entry,
                field="subdomain",
            )
        routed = raw.get("routed_network")
        if routed is not None:
            routed = str(_lab_network(routed, source, entry, "routed_network"))
        elif profiles[profile].zoo:
            raise ConfigError(
                "a zoo host needs a routed_network (its devices' addresses)",
                source=source,
                entry=entry,
                field="routed_network",
            )
        hosts.append(HostSpec(name, profile, subdomain, routed))
    if len(hosts) > LAST_HOST - FIRST_HOST + 1:
        raise ConfigError(f"at most {LAST_HOST - FIRST_HOST + 1} hosts", source=source, entry="hosts")
    by_name = {host.name: host for host in hosts}
    for name, profile_ in profiles.items():
        for index, connection in enumerate(profile_.connects_to):
            target = by_name.get(connection.host)
            if target is None or connection.port not in profiles[target.profile].open_tcp_ports:
                raise ConfigError(
                    f"{connection.host}:{connection.port} is no open TCP port of a lab host",
                    source=source,
                    entry=f"profiles.{name}.connects_to[{index}]",
                    field="host",
                )
    if sum(1 for h in hosts if profiles[h.profile].dns) > 1:
        raise ConfigError("only one host may run the DNS server", source=source, entry="hosts")

    extra = _str(lab, "extra_host_profile", source, "lab", default=next(iter(profiles)))
    if extra not in profiles:
        raise ConfigError(
            f"unknown profile {extra!r}", source=source, entry="lab", field="extra_host_profile"
        )
    large = _large(_table(lab, "large", source, "lab", required=False), source)
    _check_routed_networks(hosts, large, source)
    return LabProfile(
        source=source,
        zone=zone,
        subdomains=subdomains,
        profiles=profiles,
        hosts=tuple(hosts),
        extra_host_profile=extra,
        large=large,
    )


def _check_routed_networks(hosts: list[HostSpec], large: LargeSettings, source: str) -> None:
    """No two routed networks (hosts' or large mode's) may overlap: each goes to one place."""
    taken = [("lab.large", ipaddress.IPv4Network(large.network))]
    for index, host in enumerate(hosts):
        if host.routed_network is None:
            continue
        network = ipaddress.IPv4Network(host.routed_network)
        for owner, other in taken:
            if network.overlaps(other):
                raise ConfigError(
                    f"overlaps {other} ({owner})",
                    source=source,
                    entry=f"hosts[{index}]",
                    field="routed_network",
                )
        taken.append((f"hosts[{index}]", network))


def _host_profile(name: str, raw: Mapping[str, Any], source: str) -> HostProfile:
    entry = f"profiles.{name}"
    _only(
        raw,
        {"ssh", "snmp", "dns", "listeners", "interfaces", "silent", "zoo", "lldp", "connects_to"},
        source,
        entry,
    )
    ssh: SshSettings | None = None
    raw_ssh = raw.get("ssh", False)
    if raw_ssh is True:
        ssh = SshSettings(None, None)
    elif isinstance(raw_ssh, dict):
        _only(raw_ssh, {"banner", "version_addendum"}, source, f"{entry}.ssh")
        addendum = _opt_str(raw_ssh, "version_addendum", source, f"{entry}.ssh")
        if addendum is not None and not re.fullmatch(r"[A-Za-z0-9._-]+", addendum):
            raise ConfigError(
                "letters, digits, '.', '_' and '-' only",
                source=source,
                entry=entry,
                field="ssh.version_addendum",
            )
        ssh = SshSettings(_opt_str(raw_ssh, "banner", source, f"{entry}.ssh"), addendum)
    elif raw_ssh is not False:
        raise ConfigError("must be true, false or a table", source=source, entry=entry, field="ssh")

    snmp: SnmpSettings | None = None
    if "snmp" in raw:
        s = _as_table(raw["snmp"], source, f"{entry}.snmp")
        sub = f"{entry}.snmp"
        _only(
            s,
            {"sys_descr", "sys_object_id", "sys_location", "sys_contact", "sys_services", "overrides"},
            source,
            sub,
        )
        object_id = _str(s, "sys_object_id", source, sub)
        if not re.fullmatch(r"(\.\d+)+", object_id):
            raise ConfigError(
                "must be a numeric OID with a leading dot", source=source, entry=sub, field="sys_object_id"
            )
        services = s.get("sys_services", 72)
        if not isinstance(services, int) or not 0 <= services <= 127:
            raise ConfigError("must be an integer 0..127", source=source, entry=sub, field="sys_services")
        overrides = []
        raw_overrides = s.get("overrides", [])
        if not isinstance(raw_overrides, list):
            raise ConfigError("must be an array of tables", source=source, entry=sub, field="overrides")
        for index, item in enumerate(raw_overrides):
            oentry = f"{sub}.overrides[{index}]"
            o = _as_table(item, source, oentry)
            _only(o, {"oid", "type", "value"}, source, oentry)
            oid = _str(o, "oid", source, oentry)
            kind = _str(o, "type", source, oentry)
            if not re.fullmatch(r"(\.\d+)+", oid):
                raise ConfigError(
                    "must be a numeric OID with a leading dot", source=source, entry=oentry, field="oid"
                )
            if kind not in SNMP_TYPES:
                raise ConfigError(
                    f"must be one of {', '.join(SNMP_TYPES)}", source=source, entry=oentry, field="type"
                )
            value = o.get("value")
            if not isinstance(value, str | int) or isinstance(value, bool):
                raise ConfigError(
                    "must be a string or an integer", source=source, entry=oentry, field="value"
                )
            overrides.append(SnmpOverride(oid, kind, str(value)))
        snmp = SnmpSettings(
            sys_descr=_str(s, "sys_descr", source, sub),
            sys_object_id=object_id,
            sys_location=_str(s, "sys_location", source, sub, default=""),
            sys_contact=_str(s, "sys_contact", source, sub, default=""),
            sys_services=services,
            overrides=tuple(overrides),
        )

    listeners: list[Listener] = []
    raw_listeners = raw.get("listeners", [])
    if not isinstance(raw_listeners, list):
        raise ConfigError("must be an array of tables", source=source, entry=entry, field="listeners")
    for index, item in enumerate(raw_listeners):
        lentry = f"{entry}.listeners[{index}]"
        lraw = _as_table(item, source, lentry)
        _only(lraw, {"port", "kind", "banner"}, source, lentry)
        port = lraw.get("port")
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535 or port in (22, 53):
            raise ConfigError(
                "must be a TCP port 1..65535 other than 22 and 53", source=source, entry=lentry, field="port"
            )
        kind = _str(lraw, "kind", source, lentry, default="raw")
        if kind not in ("http", "raw"):
            raise ConfigError("must be 'http' or 'raw'", source=source, entry=lentry, field="kind")
        listeners.append(
            Listener(port, "http" if kind == "http" else "raw", _opt_str(lraw, "banner", source, lentry))
        )
    if len({listener.port for listener in listeners}) != len(listeners):
        raise ConfigError("two listeners on one port", source=source, entry=entry, field="listeners")

    interfaces = tuple(_str_list(raw, "interfaces", source, entry, default=[]))
    for interface in interfaces:
        if not _INTERFACE.fullmatch(interface) or interface in ("lo", "eth0"):
            raise ConfigError(
                f"{interface!r} is not a usable interface name (15 characters, no '/')",
                source=source,
                entry=entry,
                field="interfaces",
            )
    silent = raw.get("silent", False)
    dns = raw.get("dns", False)
    zoo = raw.get("zoo", False)
    lldp = raw.get("lldp", False)
    if not all(isinstance(flag, bool) for flag in (silent, dns, zoo, lldp)):
        raise ConfigError("silent, dns, zoo and lldp must be true or false", source=source, entry=entry)
    connections = []
    raw_connections = raw.get("connects_to", [])
    if not isinstance(raw_connections, list):
        raise ConfigError("must be an array of tables", source=source, entry=entry, field="connects_to")
    for index, item in enumerate(raw_connections):
        centry = f"{entry}.connects_to[{index}]"
        craw = _as_table(item, source, centry)
        _only(craw, {"host", "port"}, source, centry)
        port = craw.get("port")
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise ConfigError("must be a TCP port 1..65535", source=source, entry=centry, field="port")
        connections.append(Connection(_str(craw, "host", source, centry), port))
    if silent and (ssh or snmp or dns or listeners or zoo or lldp or connections):
        raise ConfigError("a silent host runs no services", source=source, entry=entry, field="silent")
    return HostProfile(
        name, ssh, snmp, dns, tuple(listeners), interfaces, silent, zoo, lldp, tuple(connections)
    )


def _large(raw: Mapping[str, Any], source: str) -> LargeSettings:
    entry = "lab.large"
    _only(raw, {"network", "gateway", "alive_fraction", "open_ports", "seed"}, source, entry)
    network = _lab_network(
        _str(raw, "network", source, entry, default="198.18.4.0/22"), source, entry, "network"
    )
    gateway = _str(raw, "gateway", source, entry, default="198.18.0.254")
    try:
        gateway_address = ipaddress.ip_address(gateway)
    except ValueError as error:
        raise ConfigError(str(error), source=source, entry=entry, field="gateway") from error
    if gateway_address not in HOST_NETWORK or int(gateway_address) & 0xFF <= LAST_HOST:
        raise ConfigError("must be 198.18.0.250..198.18.0.254", source=source, entry=entry, field="gateway")
    fraction = raw.get("alive_fraction", 0.1)
    if not isinstance(fraction, float | int) or not 0 < fraction <= 1:
        raise ConfigError("must be a number in (0, 1]", source=source, entry=entry, field="alive_fraction")
    ports = raw.get("open_ports", [22, 80])
    if not isinstance(ports, list) or not all(isinstance(p, int) and 1 <= p <= 65535 for p in ports):
        raise ConfigError("must be a list of TCP ports", source=source, entry=entry, field="open_ports")
    seed = raw.get("seed", 2544)
    if not isinstance(seed, int):
        raise ConfigError("must be an integer", source=source, entry=entry, field="seed")
    return LargeSettings(str(network), gateway, float(fraction), tuple(sorted(set(ports))), seed)


def _lab_network(value: object, source: str, entry: str, field: str) -> ipaddress.IPv4Network:
    """A network the lab routes beyond its host network: inside 198.18.0.0/15, outside 198.18.0.0/24."""
    if not isinstance(value, str):
        raise ConfigError("must be a string", source=source, entry=entry, field=field)
    try:
        network = ipaddress.ip_network(value)
    except ValueError as error:
        raise ConfigError(str(error), source=source, entry=entry, field=field) from error
    if (
        not isinstance(network, ipaddress.IPv4Network)
        or not network.subnet_of(LAB_NETWORK)
        or network.overlaps(HOST_NETWORK)
    ):
        raise ConfigError(
            "must be an IPv4 network inside 198.18.0.0/15, outside 198.18.0.0/24",
            source=source,
            entry=entry,
            field=field,
        )
    return network


def _only(raw: Mapping[str, Any], allowed: set[str], source: str, entry: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(
            f"unknown field {unknown[0]!r} (known: {', '.join(sorted(allowed))})",
            source=source,
            entry=entry or None,
        )


def _as_table(value: object, source: str, entry: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError("must be a table", source=source, entry=entry)
    return value


def _table(raw: Mapping[str, Any], key: str, source: str, entry: str, *, required: bool) -> Mapping[str, Any]:
    if key not in raw:
        if required:
            raise ConfigError("is missing", source=source, entry=entry or None, field=key)
        return {}
    return _as_table(raw[key], source, f"{entry}.{key}" if entry else key)


_MISSING: Any = object()


def _str(raw: Mapping[str, Any], key: str, source: str, entry: str, *, default: str = _MISSING) -> str:
    value = raw.get(key, default)
    if value is _MISSING:
        raise ConfigError("is missing", source=source, entry=entry or None, field=key)
    if not isinstance(value, str):
        raise ConfigError("must be a string", source=source, entry=entry or None, field=key)
    if "\n" in value or "\r" in value:
        raise ConfigError("must be one line", source=source, entry=entry or None, field=key)
    return value


def _opt_str(raw: Mapping[str, Any], key: str, source: str, entry: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError("must be a string", source=source, entry=entry, field=key)
    return value


def _str_list(raw: Mapping[str, Any], key: str, source: str, entry: str, *, default: list[str]) -> list[str]:
    value = raw.get(key, default)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError("must be a list of strings", source=source, entry=entry or None, field=key)
    return value

"""The allow-lists that turn typed ECC parameters into an nmap argv; nothing from the queue reaches nmap raw.

Every token of every argv comes from a constant in this module or from a value that was parsed into a
number, a port list, an IP address/network or an allow-listed NSE script name first. A parameter this
module does not know is refused with ``ProbeParameterError`` naming it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final, TypeVar

from midprobe.capabilities.errors import ProbeParameterError

T = TypeVar("T")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The ServiceNow credential-less host scan (docs/ecc-reference.md section 4), minus ``-p <ports>`` and ``-oX -``,
#: which the builder adds (python-nmap always passes ``-oX -`` itself).
HOST_SCAN_OPTIONS: Final = ("-PS", "-PA", "-O", "-T4", "-v", "-Pn", "-r", "--reason", "--system-dns")
#: The ServiceNow application scan: one nmap run per port.
APPLICATION_SCAN_OPTIONS: Final = ("-sS", "-sV")

#: NSE scripts a request may name. Every one is in nmap's ``safe`` category (a unit test checks this
#: against the installed ``script.db``); ``intrusive``, ``vuln``, ``brute``, ``exploit``, ``dos`` and
#: ``auth`` scripts are never allowed, nor globs, categories, boolean expressions or file paths.
SAFE_NSE_SCRIPTS: Final = frozenset(
    {
        "banner",
        "dns-nsid",
        "ftp-syst",
        "http-generator",
        "http-headers",
        "http-methods",
        "http-title",
        "ldap-rootdse",
        "ms-sql-info",
        "mysql-info",
        "nbstat",
        "ntp-info",
        "rdp-ntlm-info",
        "rpcinfo",
        "smb-os-discovery",
        "smb2-time",
        "smtp-commands",
        "snmp-info",
        "snmp-sysdescr",
        "ssh-hostkey",
        "ssh2-enum-algos",
        "ssl-cert",
        "telnet-encryption",
        "vnc-info",
    }
)

#: The scripts the application scan runs on a port when the request names none (data, not code).
APPLICATION_SCAN_SCRIPTS: Final[Mapping[int, tuple[str, ...]]] = {
    21: ("ftp-syst",),
    22: ("ssh-hostkey",),
    25: ("smtp-commands",),
    80: ("http-title",),
    389: ("ldap-rootdse",),
    443: ("http-title", "ssl-cert"),
    445: ("smb-os-discovery",),
    587: ("smtp-commands",),
    1433: ("ms-sql-info",),
    3306: ("mysql-info",),
    3389: ("rdp-ntlm-info",),
    5900: ("vnc-info",),
    8000: ("http-title",),
    8080: ("http-title",),
    8443: ("http-title", "ssl-cert"),
}

#: The ports scanned when a request names none: the ports discovery classifies on (docs/ecc-reference.md section 4).
DEFAULT_PORTS: Final = "21,22,23,25,53,80,110,111,135,139,143,161,389,443,445,515,631,1433,1521,3306,3389,5432,5985,5986,8080,8443,9100"

#: At most this many addresses per request (a /20); larger ranges are split by the caller.
MAX_TARGET_ADDRESSES: Final = 4096
#: Default and upper bound of ``timeout_ms``.
DEFAULT_TIMEOUT_MS: Final = 120_000
MAX_TIMEOUT_MS: Final = 3_600_000

#: Fields of the ECC record that the runner may echo into the parameters; they are ignored, not refused.
ENVELOPE_PARAMETERS: Final = frozenset(
    {
        "agent",
        "agent_correlator",
        "ecc_queue",
        "error_string",
        "name",
        "priority",
        "probe",
        "processed",
        "queue",
        "response_to",
        "sequence",
        "skip_sensor",
        "source",
        "state",
        "sys_created_on",
        "sys_id",
        "topic",
    }
)

_PORT_LIST = re.compile(r"^\d{1,5}(-\d{1,5})?(,\d{1,5}(-\d{1,5})?)*$")
_OCTET_RANGE = re.compile(r"^(\d{1,3}\.\d{1,3}\.\d{1,3}\.)(\d{1,3})-(\d{1,3})$")
_BOOLEANS: Final = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _shown(value: str) -> str:
    """A request value for an error message: quoted, on one line, at most 60 characters."""
    return repr(value if len(value) <= 60 else value[:57] + "...")


@dataclass(frozen=True)
class PortList:
    """TCP ports in nmap's list syntax, validated: ``22,80,8000-8100``."""

    ranges: tuple[tuple[int, int], ...]

    def __str__(self) -> str:
        return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in self.ranges)

    def __iter__(self) -> Iterator[int]:
        for first, last in self.ranges:
            yield from range(first, last + 1)

    def __len__(self) -> int:
        return sum(last - first + 1 for first, last in self.ranges)


def parse_ports(text: str, *, parameter: str = "ports") -> PortList:
    """Parse ``22,80,1000-2000`` (1 to 65535, ranges ascending); anything else is refused."""
    compact = "".join(text.split())
    if not _PORT_LIST.match(compact):
        raise ProbeParameterError(
            f"expected a port list like 22,80,1000-2000, got {_shown(text)}", parameter=parameter
        )
    ranges: list[tuple[int, int]] = []
    for item in compact.split(","):
        first_text, _, last_text = item.partition("-")
        first = int(first_text)
        last = int(last_text) if last_text else first
        if not 1 <= first <= last <= 65535:
            raise ProbeParameterError(
                f"port range {item} is outside 1-65535 or descending", parameter=parameter
            )
        ranges.append((first, last))
    return PortList(tuple(ranges))


@dataclass(frozen=True)
class NmapTargets:
    """The addresses of one request, as IP networks (a single address is a /32 or /128)."""

    networks: tuple[IPNetwork, ...]

    @property
    def version(self) -> int:
        return self.networks[0].version

    @property
    def address_count(self) -> int:
        return sum(network.num_addresses for network in self.networks)

    def nmap_arguments(self) -> tuple[str, ...]:
        """Target tokens for nmap: plain addresses, or CIDR networks."""
        return tuple(
            str(network.network_address)
            if network.prefixlen == network.max_prefixlen
            else network.with_prefixlen
            for network in self.networks
        )

    def __str__(self) -> str:
        return ",".join(self.nmap_arguments())


def _parse_target(token: str) -> list[IPNetwork]:
    if "%" in token:  # IPv6 zone ids are not accepted: a lab or CMDB address never carries one
        raise ValueError("scoped address")
    octets = _OCTET_RANGE.match(token)
    if octets:  # nmap's last-octet range: 198.18.0.10-20
        token = f"{octets[1]}{octets[2]}-{octets[1]}{octets[3]}"
    if "-" in token:  # a full range: 198.18.0.10-198.18.0.20
        first_text, _, last_text = token.partition("-")
        first = ipaddress.ip_address(first_text)
        last = ipaddress.ip_address(last_text)
        if first.version != last.version or int(first) > int(last):
            raise ValueError("the range is empty or mixes IPv4 and IPv6")
        return list(ipaddress.summarize_address_range(first, last))
    return [ipaddress.ip_network(token, strict=False)]


def parse_targets(source: str, *, parameter: str = "source") -> NmapTargets:
    """IP addresses, CIDR networks and ranges, separated by commas or blanks. Host names are refused:
    the DNS probes resolve names first (and Resolve DNS routing decides which agent may)."""
    networks: list[IPNetwork] = []
    for token in source.replace(",", " ").split():
        try:
            networks.extend(_parse_target(token))
        except ValueError:
            raise ProbeParameterError(
                f"{_shown(token)} is not an IP address, CIDR network or address range "
                "(host names are resolved by the DNS probes first)",
                parameter=parameter,
            ) from None
    if not networks:
        raise ProbeParameterError("no target given", parameter=parameter)
    if len({network.version for network in networks}) > 1:
        raise ProbeParameterError("mixes IPv4 and IPv6 targets; send one request each", parameter=parameter)
    targets = NmapTargets(tuple(networks))
    if targets.address_count > MAX_TARGET_ADDRESSES:
        raise ProbeParameterError(
            f"{targets.address_count} addresses is more than the {MAX_TARGET_ADDRESSES} one request may scan",
            parameter=parameter,
        )
    return targets


def parse_scripts(text: str, *, parameter: str = "scripts") -> tuple[str, ...]:
    """A comma-separated list of NSE script names, each in :data:`SAFE_NSE_SCRIPTS`."""
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    for name in names:
        if name not in SAFE_NSE_SCRIPTS:
            raise ProbeParameterError(
                f"NSE script {_shown(name)} is not on the safe allow-list (see docs/nmap.md)",
                parameter=parameter,
            )
    return names


class ParameterReader:
    """Reads ECC parameters through an allow-list of names; every value is converted or refused."""

    def __init__(self, topic: str, parameters: Mapping[str, str], allowed: Iterable[str]) -> None:
        self.topic = topic
        self.allowed = frozenset(allowed)
        self._parameters = parameters
        for name in parameters:
            if name not in self.allowed and name not in ENVELOPE_PARAMETERS:
                takes = ", ".join(sorted(self.allowed)) or "no parameters"
                raise ProbeParameterError(f"{topic} does not take it (it takes: {takes})", parameter=name)

    def text(self, name: str) -> str | None:
        assert name in self.allowed, name
        value = self._parameters.get(name)
        return value.strip() if value is not None and value.strip() else None

    def integer(self, name: str, default: int, minimum: int, maximum: int) -> int:
        value = self.text(name)
        if value is None:
            return default
        if not re.fullmatch(r"\d{1,10}", value) or not minimum <= int(value) <= maximum:
            raise ProbeParameterError(
                f"expected an integer from {minimum} to {maximum}, got {_shown(value)}", parameter=name
            )
        return int(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.text(name)
        if value is None:
            return default
        try:
            return _BOOLEANS[value.lower()]
        except KeyError:
            raise ProbeParameterError(
                f"expected true or false, got {_shown(value)}", parameter=name
            ) from None

    def ports(self, name: str, default: str) -> PortList:
        return parse_ports(self.text(name) or default, parameter=name)

    def optional_ports(self, name: str) -> PortList | None:
        value = self.text(name)
        return None if value is None else parse_ports(value, parameter=name)

    def timeout_s(self, name: str = "timeout_ms") -> float:
        """``timeout_ms`` (1 s to 1 h, default 120 s) in seconds."""
        return self.integer(name, DEFAULT_TIMEOUT_MS, 1000, MAX_TIMEOUT_MS) / 1000

    def scripts(self, name: str) -> tuple[str, ...]:
        value = self.text(name)
        return () if value is None else parse_scripts(value, parameter=name)

    def choice(self, name: str, choices: Mapping[str, T], default: str) -> T:
        value = (self.text(name) or default).lower()
        try:
            return choices[value]
        except KeyError:
            raise ProbeParameterError(
                f"expected one of {', '.join(sorted(choices))}, got {_shown(value)}", parameter=name
            ) from None


#: ``scan_technique`` values and the nmap option each one maps to.
SCAN_TECHNIQUES: Final[Mapping[str, str]] = {"syn": "-sS", "connect": "-sT"}


@dataclass(frozen=True)
class NmapInvocation:
    """One nmap run: allow-listed option tokens, target tokens, and the deadline for the process."""

    label: str
    options: tuple[str, ...]
    targets: NmapTargets
    timeout_s: float

    def argv(self, nmap: str = "nmap") -> tuple[str, ...]:
        """The complete command line (python-nmap adds ``-oX -`` itself; shown here for docs and logs)."""
        return (nmap, *self.options, "-oX", "-", *self.targets.nmap_arguments())


def _deadline_options(targets: NmapTargets, timeout_s: float) -> tuple[str, ...]:
    # nmap gives up on a host before we kill the process, so a slow host still yields XML; nmap
    # overshoots its host timeout by a second or so while it winds down, hence the margin.
    margin_s = max(3.0, timeout_s * 0.1)
    host_timeout_ms = max(500, int((timeout_s - margin_s) * 1000))
    family = ("-6",) if targets.version == 6 else ()
    return (*family, "--host-timeout", f"{host_timeout_ms}ms")


def _script_options(scripts: tuple[str, ...]) -> tuple[str, ...]:
    for name in scripts:  # a builder called directly (not through parse_scripts) is checked too
        if name not in SAFE_NSE_SCRIPTS:
            raise ProbeParameterError(
                f"NSE script {_shown(name)} is not on the safe allow-list", parameter="scripts"
            )
    return (f"--script={','.join(scripts)}",) if scripts else ()


def _name_resolution(resolve_names: bool) -> str:
    return "--system-dns" if resolve_names else "-n"


def host_scan(targets: NmapTargets, ports: PortList, timeout_s: float) -> NmapInvocation:
    """``-PS -PA -O -p <ports> -T4 -v -Pn -r --reason --system-dns -oX -`` (docs/ecc-reference.md section 4)."""
    return NmapInvocation(
        "host scan",
        (
            *HOST_SCAN_OPTIONS[:3],
            "-p",
            str(ports),
            *HOST_SCAN_OPTIONS[3:],
            *_deadline_options(targets, timeout_s),
        ),
        targets,
        timeout_s,
    )


def application_scan(
    targets: NmapTargets, port: int, scripts: tuple[str, ...], timeout_s: float
) -> NmapInvocation:
    """``-sS -sV -p <port> -n`` plus allow-listed NSE scripts, for one port.

    ``-n``: the host scan already named the host; without it nmap's own resolver would spend its
    retries (13 s in a lab namespace without a reachable resolver) before scanning a single port.
    """
    if not 1 <= port <= 65535:
        raise ProbeParameterError(f"port {port} is outside 1-65535", parameter="ports")
    return NmapInvocation(
        f"application scan of port {port}",
        (
            *APPLICATION_SCAN_OPTIONS,
            "-p",
            str(port),
            "-n",
            *_script_options(scripts),
            *_deadline_options(targets, timeout_s),
        ),
        targets,
        timeout_s,
    )


def discovery(
    targets: NmapTargets,
    *,
    ping_ports: PortList | None,
    resolve_names: bool,
    timing: int,
    timeout_s: float,
) -> NmapInvocation:
    """``-sn`` host discovery; ``-v`` so hosts that are down are listed too."""
    pings = (f"-PS{ping_ports}", f"-PA{ping_ports}", "-PE") if ping_ports is not None else ()
    return NmapInvocation(
        "host discovery",
        (
            "-sn",
            *pings,
            f"-T{timing}",
            "-v",
            "--reason",
            _name_resolution(resolve_names),
            *_deadline_options(targets, timeout_s),
        ),
        targets,
        timeout_s,
    )


def service_scan(
    targets: NmapTargets,
    ports: PortList,
    *,
    technique: str,
    version_intensity: int | None,
    scripts: tuple[str, ...],
    resolve_names: bool,
    timing: int,
    timeout_s: float,
) -> NmapInvocation:
    """``-sS -sV -p <ports>`` (or ``-sT``), optional ``--version-intensity`` and safe scripts."""
    if technique not in SCAN_TECHNIQUES.values():
        raise ProbeParameterError(f"unknown scan technique {_shown(technique)}", parameter="scan_technique")
    intensity = ("--version-intensity", str(version_intensity)) if version_intensity is not None else ()
    return NmapInvocation(
        "service scan",
        (
            technique,
            "-sV",
            *intensity,
            "-p",
            str(ports),
            *_script_options(scripts),
            f"-T{timing}",
            "--reason",
            _name_resolution(resolve_names),
            *_deadline_options(targets, timeout_s),
        ),
        targets,
        timeout_s,
    )


def os_scan(
    targets: NmapTargets,
    ports: PortList,
    *,
    guess: bool,
    limit: bool,
    max_tries: int | None,
    resolve_names: bool,
    timing: int,
    timeout_s: float,
) -> NmapInvocation:
    """``-sS -O -p <ports>``; ``--osscan-guess`` asks nmap for its less certain matches too."""
    return NmapInvocation(
        "OS detection",
        (
            "-sS",
            "-O",
            *(("--osscan-guess",) if guess else ()),
            *(("--osscan-limit",) if limit else ()),
            *(("--max-os-tries", str(max_tries)) if max_tries is not None else ()),
            "-p",
            str(ports),
            f"-T{timing}",
            "--reason",
            _name_resolution(resolve_names),
            *_deadline_options(targets, timeout_s),
        ),
        targets,
        timeout_s,
    )


def script_scan(
    targets: NmapTargets,
    ports: PortList,
    scripts: tuple[str, ...],
    *,
    resolve_names: bool,
    timing: int,
    timeout_s: float,
) -> NmapInvocation:
    """``-sS -p <ports> --script=<names>``: named NSE scripts from the safe allow-list."""
    if not scripts:
        raise ProbeParameterError("name at least one NSE script", parameter="scripts")
    return NmapInvocation(
        "script scan",
        (
            "-sS",
            "-p",
            str(ports),
            *_script_options(scripts),
            f"-T{timing}",
            "--reason",
            _name_resolution(resolve_names),
            *_deadline_options(targets, timeout_s),
        ),
        targets,
        timeout_s,
    )

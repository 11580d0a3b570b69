"""Port lists in nmap syntax (``22,80,1000-2000``, ``-``, ``T:``/``U:`` prefixes) and port service names.

Parsing is pure and raises ``PortSpecError`` naming the bad token. ``service_name`` gives the
``portprobe``/``service`` names Shazzam reports, from a fixed table so results do not depend on the
machine's ``/etc/services``.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from midprobe.capabilities.errors import PortSpecError

__all__ = ["PortSpec", "Protocol", "format_ports", "parse_ports", "service_name", "service_port"]

Protocol = Literal["tcp", "udp"]

MAX_PORT = 65535

#: Well-known ports (IANA / nmap-services names) for the services discovery meets most often.
_TCP_SERVICES: dict[int, str] = {
    7: "echo",
    9: "discard",
    13: "daytime",
    19: "chargen",
    20: "ftp-data",
    21: "ftp",
    22: "ssh",
    23: "telnet",
    25: "smtp",
    37: "time",
    42: "nameserver",
    43: "whois",
    49: "tacacs",
    53: "domain",
    70: "gopher",
    79: "finger",
    80: "http",
    88: "kerberos",
    102: "iso-tsap",
    110: "pop3",
    111: "rpcbind",
    113: "ident",
    119: "nntp",
    123: "ntp",
    135: "msrpc",
    137: "netbios-ns",
    139: "netbios-ssn",
    143: "imap",
    161: "snmp",
    162: "snmptrap",
    179: "bgp",
    389: "ldap",
    427: "svrloc",
    443: "https",
    444: "snpp",
    445: "microsoft-ds",
    464: "kpasswd",
    465: "smtps",
    497: "retrospect",
    513: "login",
    514: "shell",
    515: "printer",
    543: "klogin",
    544: "kshell",
    548: "afp",
    554: "rtsp",
    587: "submission",
    593: "http-rpc-epmap",
    623: "ipmi",
    631: "ipp",
    636: "ldaps",
    646: "ldp",
    873: "rsync",
    902: "vmware-auth",
    990: "ftps",
    993: "imaps",
    995: "pop3s",
    1025: "nfs-or-iis",
    1080: "socks",
    1433: "ms-sql-s",
    1521: "oracle",
    1720: "h323q931",
    1723: "pptp",
    1883: "mqtt",
    2000: "cisco-sccp",
    2049: "nfs",
    2121: "ccproxy-ftp",
    2375: "docker",
    2376: "docker-s",
    3000: "ppp",
    3128: "squid-http",
    3260: "iscsi",
    3268: "globalcatLDAP",
    3306: "mysql",
    3389: "ms-wbt-server",
    5000: "upnp",
    5060: "sip",
    5432: "postgresql",
    5671: "amqps",
    5672: "amqp",
    5900: "vnc",
    5985: "wsman",
    5986: "wsmans",
    6379: "redis",
    6443: "kubernetes",
    8000: "http-alt",
    8008: "http",
    8080: "http-proxy",
    8443: "https-alt",
    8888: "sun-answerbook",
    9000: "cslistener",
    9090: "zeus-admin",
    9100: "jetdirect",
    9200: "elasticsearch",
    9443: "tungsten-https",
    10000: "snet-sensor-mgmt",
    11211: "memcache",
    27017: "mongod",
}
_UDP_SERVICES: dict[int, str] = {
    53: "domain",
    67: "dhcps",
    68: "dhcpc",
    69: "tftp",
    123: "ntp",
    137: "netbios-ns",
    138: "netbios-dgm",
    161: "snmp",
    162: "snmptrap",
    500: "isakmp",
    514: "syslog",
    520: "route",
    623: "asf-rmcp",
    1900: "upnp",
    5353: "zeroconf",
}
_NAME_TO_TCP_PORT = {name: port for port, name in sorted(_TCP_SERVICES.items(), reverse=True)}
_NAME_TO_UDP_PORT = {name: port for port, name in sorted(_UDP_SERVICES.items(), reverse=True)}


def service_name(port: int, protocol: Protocol = "tcp") -> str:
    """The conventional service name of ``port`` (``"unknown"`` when the table has none)."""
    table = _TCP_SERVICES if protocol == "tcp" else _UDP_SERVICES
    return table.get(port, "unknown")


def service_port(name: str, protocol: Protocol = "tcp") -> int | None:
    """The port of a service name from the same table (``ssh`` -> 22), or ``None``."""
    table = _NAME_TO_TCP_PORT if protocol == "tcp" else _NAME_TO_UDP_PORT
    return table.get(name.lower())


def format_ports(ports: tuple[int, ...]) -> str:
    """Sorted distinct ports in compact nmap syntax: ``(22, 80, 81, 82)`` -> ``22,80-82``."""
    if len(ports) > 1 and ports[-1] - ports[0] + 1 == len(ports):  # one run (``-p-``): no walk
        return f"{ports[0]}-{ports[-1]}"
    runs: list[str] = []
    index = 0
    while index < len(ports):
        start = end = ports[index]
        while index + 1 < len(ports) and ports[index + 1] == end + 1:
            index += 1
            end = ports[index]
        runs.append(str(start) if start == end else f"{start}-{end}")
        index += 1
    return ",".join(runs)


@dataclass(frozen=True)
class PortSpec:
    """Sorted, distinct TCP and UDP ports."""

    tcp: tuple[int, ...]
    udp: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.tcp) + len(self.udp)

    def __str__(self) -> str:
        """The list in compact nmap syntax (parses back to an equal spec)."""
        parts = []
        if self.tcp:
            parts.append(("T:" if self.udp else "") + format_ports(self.tcp))
        if self.udp:
            parts.append("U:" + format_ports(self.udp))
        return ",".join(parts)


def _bad(token: str, why: str) -> PortSpecError:
    return PortSpecError(f"bad port {token!r}: {why}")


def _port_number(token: str, text: str, protocol: Protocol) -> int:
    if text.isascii() and text.isdigit():  # "²".isdigit() and int("٣") == 3: ASCII digits only
        value = int(text)
        if not 1 <= value <= MAX_PORT:
            raise _bad(token, f"{value} is outside 1-{MAX_PORT}")
        return value
    named = service_port(text, protocol)
    if named is None:
        raise _bad(token, "not a port number, range or known service name")
    return named


def parse_ports(spec: str) -> PortSpec:
    """Parse an nmap port list; ports without a prefix are TCP (``T:``/``U:`` switch protocol).

    Tokens are separated by commas or white space (``22 80``); duplicates and one-port ranges
    (``80-80``) are fine. Unlike nmap, the prefixes may be lower case (``u:53`` is ``U:53``).

    ``-`` alone is 1-65535, ``-100`` is 1-100, ``60000-`` is 60000-65535; service names from the
    table (``ssh``, ``http``) are accepted. Raises ``PortSpecError`` naming the bad token.
    """
    # Ports as (low, high) runs, merged at the end: ``-`` is one run, not 65,535 set insertions.
    tcp: list[tuple[int, int]] = []
    udp: list[tuple[int, int]] = []
    protocol: Protocol = "tcp"
    tokens = re.split(r"[,\s]+", spec)
    for raw in tokens:
        if not raw:
            continue
        token = raw
        if len(token) >= 2 and token[1] == ":":
            prefix = token[0].upper()
            if prefix == "T":
                protocol = "tcp"
            elif prefix == "U":
                protocol = "udp"
            else:
                raise _bad(raw, f"protocol prefix {token[:2]!r} is not T: or U:")
            token = token[2:]
            if not token:
                raise _bad(raw, "a protocol prefix needs ports after it")
        target = tcp if protocol == "tcp" else udp
        named = service_port(token, protocol)
        if named is not None:
            target.append((named, named))
        elif "-" in token:
            low_text, _, high_text = token.partition("-")
            low = _port_number(raw, low_text, protocol) if low_text else 1
            high = _port_number(raw, high_text, protocol) if high_text else MAX_PORT
            if low > high:
                raise _bad(raw, "range runs backwards")
            target.append((low, high))
        else:
            port = _port_number(raw, token, protocol)
            target.append((port, port))
    if not tcp and not udp:
        raise PortSpecError(f"no ports given in {spec!r}")
    return PortSpec(tcp=_merged(tcp), udp=_merged(udp))


#: A run of more ports than this is a slice of :func:`_every_port` (shared int objects).
_SLICED_RUN = 1024


@functools.cache
def _every_port() -> tuple[int, ...]:
    """1-65535, made once: a long run (``-p-``, parsed by the CLI and again by each port scan
    request) is a slice of it, copying references instead of making 65,535 new ints each time."""
    return tuple(range(1, MAX_PORT + 1))


def _merged(runs: list[tuple[int, int]]) -> tuple[int, ...]:
    """The sorted distinct ports of ``runs`` (inclusive, possibly overlapping ``(low, high)`` pairs)."""
    pieces: list[Sequence[int]] = []
    last = 0  # every port in [low, last] of a later run is already in (the runs are sorted by low)
    for low, high in sorted(runs):
        if high > last:
            start = max(low, last + 1)
            long_run = high - start >= _SLICED_RUN
            pieces.append(_every_port()[start - 1 : high] if long_run else range(start, high + 1))
            last = high
    if len(pieces) == 1 and isinstance(pieces[0], tuple):
        return pieces[0]
    return tuple(itertools.chain.from_iterable(pieces))

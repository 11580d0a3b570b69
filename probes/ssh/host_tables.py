"""What a Linux host's commands say about its network, sockets, disks, software and processes (pure).

Each parser takes one command's stdout and returns frozen rows; text it cannot read gives no
rows, never an error. Inputs:

- ``ip -j route show`` / ``ip -j -6 route show``: routes; ``ip -j neigh show``: the neighbour cache.
- ``ss -Htulnp``: listening TCP and UDP sockets with their processes; ``ss -Htnp state
  established``: established TCP connections (the process shows only for the login's own sockets
  unless the command runs as root).
- ``lsblk -J -b -d -o NAME,SIZE,TYPE,MODEL,SERIAL,ROTA,TRAN``: disks.
- ``dpkg-query -W -f '${Package}\\t${Version}\\t${Architecture}\\n'`` or ``rpm -qa --qf ...``: packages.
- ``ps -eo pid=,ppid=,user=,comm=``: processes. Command lines are never read: they can hold
  passwords (``mysql -pSECRET``), and the CMDB must not.

Every list is cut to ``MAX_ROWS`` rows.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any

from midprobe.probes.classify.ouis import mac_vendor

MAX_ROWS = 5000
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_PROCESS = re.compile(r'\("((?:[^"\\]|\\.)*)",pid=(\d+)')


@dataclass(frozen=True)
class HostRoute:
    destination: str  # a network, "default" written as 0.0.0.0/0 or ::/0
    gateway: str | None = None
    device: str | None = None
    protocol: str | None = None
    metric: int | None = None


@dataclass(frozen=True)
class HostNeighbour:
    address: str
    mac: str
    device: str | None = None
    state: str | None = None
    vendor: str | None = None


@dataclass(frozen=True)
class Socket:
    """A listening socket (``remote_*`` None) or an established connection, with its process if shown."""

    protocol: str  # "tcp" | "udp"
    local_address: str  # "*" for every address
    local_port: int
    remote_address: str | None = None
    remote_port: int | None = None
    process: str | None = None
    pid: int | None = None


@dataclass(frozen=True)
class Disk:
    name: str
    size_bytes: int | None = None
    model: str | None = None
    serial_number: str | None = None
    transport: str | None = None
    rotational: bool | None = None


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    architecture: str | None = None


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    user: str
    command: str


def _printable(value: object, limit: int = 255) -> str | None:
    if not isinstance(value, str) and not isinstance(value, int):
        return None
    text = str(value).strip()
    return text[:limit] if text and text.isprintable() else None


def _json_list(text: str) -> list[Any]:
    try:
        data = json.loads(text or "[]")
    except ValueError:
        return []
    return data if isinstance(data, list) else []


def _network(text: object, *, ipv6: bool) -> str | None:
    if text == "default":
        return "::/0" if ipv6 else "0.0.0.0/0"
    try:
        return str(ipaddress.ip_network(str(text), strict=False))
    except ValueError:
        return None


def _address(text: object) -> str | None:
    try:
        return str(ipaddress.ip_address(str(text)))
    except ValueError:
        return None


def parse_routes(text: str) -> tuple[HostRoute, ...]:
    """``ip -j route show`` (IPv4) or ``ip -j -6 route show``: the main table's routes (pure).

    Local, broadcast and unreachable routes (``type`` other than unicast) are left out.
    """
    found: list[HostRoute] = []
    for route in _json_list(text):
        if not isinstance(route, dict) or route.get("type", "unicast") != "unicast":
            continue
        gateway = _address(route.get("gateway")) if route.get("gateway") else None
        ipv6 = ":" in str(route.get("dst", "")) or (gateway is not None and ":" in gateway)
        destination = _network(route.get("dst"), ipv6=ipv6)
        if destination is None:
            continue
        metric = route.get("metric")
        found.append(
            HostRoute(
                destination,
                gateway,
                _printable(route.get("dev")),
                _printable(route.get("protocol")),
                metric if isinstance(metric, int) else None,
            )
        )
    return tuple(found[:MAX_ROWS])


def parse_neighbours(text: str) -> tuple[HostNeighbour, ...]:
    """``ip -j neigh show``: the entries that have a MAC (FAILED and INCOMPLETE ones have none) (pure)."""
    found: list[HostNeighbour] = []
    for entry in _json_list(text):
        if not isinstance(entry, dict):
            continue
        address, mac = _address(entry.get("dst")), str(entry.get("lladdr") or "").lower()
        if address is None or not _MAC.match(mac) or mac in ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"):
            continue
        states = entry.get("state")
        state = _printable(states[0]) if isinstance(states, list) and states else None
        found.append(HostNeighbour(address, mac, _printable(entry.get("dev")), state, mac_vendor(mac)))
    return tuple(found[:MAX_ROWS])


def _endpoint(text: str) -> tuple[str, int] | None:
    """``198.18.0.10:22``, ``[2001:db8::1]:22``, ``[fe80::1]%eth0:22``, ``*:22``, ``0.0.0.0:*`` -> (address, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdecimal() or not 0 < int(port) < 65536:
        return None
    host = host.split("%", 1)[0].strip("[]")
    if host in ("*", "0.0.0.0", "::"):  # noqa: S104 (text from ss, not a bind)
        return "*", int(port)
    try:
        parsed = ipaddress.ip_address(host)
    except ValueError:
        return None
    mapped = parsed.ipv4_mapped if isinstance(parsed, ipaddress.IPv6Address) else None
    return str(mapped or parsed), int(port)  # IPv4 on an IPv6 socket is written as IPv4


def _process(words: list[str]) -> tuple[str | None, int | None]:
    match = _PROCESS.search(" ".join(words))
    if match is None:
        return None, None
    return _printable(match.group(1).replace('\\"', '"')), int(match.group(2))


def parse_listening(text: str) -> tuple[Socket, ...]:
    """``ss -Htulnp``: ``Netid State Recv-Q Send-Q Local Peer [Process]`` per line (pure)."""
    found: dict[tuple[str, str, int], Socket] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) < 6 or words[0] not in ("tcp", "udp") or words[1] not in ("LISTEN", "UNCONN"):
            continue
        local = _endpoint(words[4])
        if local is None:
            continue
        process, pid = _process(words[6:])
        key = (words[0], *local)
        if key not in found:  # IPv4 and IPv6 wildcards are one service
            found[key] = Socket(words[0], local[0], local[1], process=process, pid=pid)
    return tuple(list(found.values())[:MAX_ROWS])


def parse_established(text: str) -> tuple[Socket, ...]:
    """``ss -Htnp state established``: ``Recv-Q Send-Q Local Peer [Process]`` per line (pure)."""
    found: list[Socket] = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 4 or not words[0].isdecimal():
            continue
        local, remote = _endpoint(words[2]), _endpoint(words[3])
        if local is None or remote is None:  # a port "*" is no connection
            continue
        process, pid = _process(words[4:])
        found.append(Socket("tcp", local[0], local[1], remote[0], remote[1], process, pid))
    return tuple(found[:MAX_ROWS])


def parse_disks(text: str) -> tuple[Disk, ...]:
    """``lsblk -J -b -d -o NAME,SIZE,TYPE,MODEL,SERIAL,ROTA,TRAN``: the devices of type disk
    that have a size (an empty zram or loop device is no disk) (pure)."""
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return ()
    devices = data.get("blockdevices") if isinstance(data, dict) else None
    found: list[Disk] = []
    for device in devices if isinstance(devices, list) else ():
        if not isinstance(device, dict) or device.get("type") != "disk":
            continue
        name, size = _printable(device.get("name")), device.get("size")
        if name is None or not isinstance(size, int) or size <= 0:
            continue
        rotational = device.get("rota")
        found.append(
            Disk(
                name,
                size,
                _printable(device.get("model")),
                _printable(device.get("serial")),
                _printable(device.get("tran")),
                rotational if isinstance(rotational, bool) else None,
            )
        )
    return tuple(found[:MAX_ROWS])


def parse_packages(text: str) -> tuple[Package, ...]:
    """``name<TAB>version<TAB>architecture`` lines (dpkg-query's or rpm's format above) (pure)."""
    found: list[Package] = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        name, version = _printable(parts[0]), _printable(parts[1])
        if name is None or version is None:
            continue
        found.append(Package(name, version, _printable(parts[2]) if len(parts) > 2 else None))
        if len(found) == MAX_ROWS:
            break
    return tuple(found)


def parse_processes(text: str) -> tuple[Process, ...]:
    """``ps -eo pid=,ppid=,user=,comm=`` lines (pure)."""
    found: list[Process] = []
    for line in text.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 4 or not parts[0].isdecimal() or not parts[1].isdecimal():
            continue
        user, command = _printable(parts[2]), _printable(parts[3])
        if user is None or command is None:
            continue
        found.append(Process(int(parts[0]), int(parts[1]), user, command))
        if len(found) == MAX_ROWS:
            break
    return tuple(found)


__all__ = [
    "MAX_ROWS",
    "Disk",
    "HostNeighbour",
    "HostRoute",
    "Package",
    "Process",
    "Socket",
    "parse_disks",
    "parse_established",
    "parse_listening",
    "parse_neighbours",
    "parse_packages",
    "parse_processes",
    "parse_routes",
]

"""Which IPv4 targets are on a directly attached subnet (ARP) and which are behind a router (ICMP).

Parsers of ``/proc/net/route`` and ``/proc/net/fib_trie`` are pure; the readers use
``/proc/thread-self/net`` so that a thread which entered another network namespace with
``setns(2)`` sees that namespace's tables, not the process's.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Route",
    "Routing",
    "best_route",
    "parse_local_addresses",
    "parse_route_table",
    "read_routing",
    "source_address",
]

_PROC_NET = Path("/proc/thread-self/net")
_RTF_UP = 0x0001
_RTF_GATEWAY = 0x0002
_RTF_REJECT = 0x0200


@dataclass(frozen=True)
class Route:
    """One IPv4 route of the main table."""

    interface: str
    network: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address | None
    metric: int
    #: ``blackhole``/``unreachable``/``prohibit``: nothing can be sent that way.
    reject: bool = False

    @property
    def on_link(self) -> bool:
        """Targets of this route are neighbours: ARP answers for them."""
        return self.gateway is None and not self.reject and self.interface not in ("lo", "*")


def _le_address(text: str) -> int:
    """``/proc/net/route`` writes addresses as host-order (little-endian) hex."""
    return int.from_bytes(int(text, 16).to_bytes(4, "big"), "little")


def parse_route_table(text: str) -> tuple[Route, ...]:
    """The routes of a ``/proc/net/route`` text (header line skipped; routes that are down left out)."""
    routes = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            destination, gateway, flags = _le_address(fields[1]), _le_address(fields[2]), int(fields[3], 16)
            metric, mask = int(fields[6]), _le_address(fields[7])
            network = ipaddress.IPv4Network((destination, bin(mask).count("1")), strict=False)
        except ValueError:
            continue
        if not flags & _RTF_UP and not flags & _RTF_REJECT:
            continue
        routes.append(
            Route(
                interface=fields[0],
                network=network,
                gateway=ipaddress.IPv4Address(gateway) if flags & _RTF_GATEWAY else None,
                metric=metric,
                reject=bool(flags & _RTF_REJECT) or fields[0] == "*",  # "*": blackhole and friends
            )
        )
    return tuple(routes)


def best_route(routes: Iterable[Route], address: int) -> Route | None:
    """The longest-prefix match for ``address`` (lowest metric among equals), or ``None``."""
    best: Route | None = None
    for route in routes:
        network = route.network
        if address >> (32 - network.prefixlen) << (32 - network.prefixlen) != int(network.network_address):
            continue
        if (
            best is None
            or network.prefixlen > best.network.prefixlen
            or (network.prefixlen == best.network.prefixlen and route.metric < best.metric)
        ):
            best = route
    return best


def parse_local_addresses(text: str) -> frozenset[int]:
    """The machine's own IPv4 addresses from a ``/proc/net/fib_trie`` text (``/32 host LOCAL``)."""
    local: set[int] = set()
    last: int | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|--"):
            try:
                last = int(ipaddress.IPv4Address(stripped[3:].strip()))
            except ValueError:
                last = None
        elif stripped.startswith("/32 host LOCAL") and last is not None:
            local.add(last)
    return frozenset(local)


@dataclass(frozen=True)
class Routing:
    """The routes and own addresses of the network namespace the calling thread is in."""

    routes: tuple[Route, ...]
    local: frozenset[int]

    def route(self, address: int) -> Route | None:
        return best_route(self.routes, address)


def _read(name: str) -> str:
    try:
        return (_PROC_NET / name).read_text()
    except OSError:
        return ""


def read_routing() -> Routing:
    """Read the routing table of the calling thread's network namespace (empty when unreadable)."""
    return Routing(parse_route_table(_read("route")), parse_local_addresses(_read("fib_trie")))


def source_address(address: int) -> int | None:
    """The source address the kernel would use towards ``address`` (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((str(ipaddress.IPv4Address(address)), 9))
            return int(ipaddress.IPv4Address(probe.getsockname()[0]))
        except OSError:
            return None

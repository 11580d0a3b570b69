"""Deciding ARP or ICMP: the route table and own addresses, parsed from /proc texts recorded in the lab."""

from __future__ import annotations

import ipaddress

from midprobe.probes.sweep.routes import Routing, best_route, parse_local_addresses, parse_route_table

# /proc/net/route of the lab's scanner namespace in large mode, plus a default route and a
# blackhole as another namespace shows one ("*", no gateway flag).
ROUTE_TABLE = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t000012C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth0\t000412C6\tFE0012C6\t0003\t0\t0\t0\t00FCFFFF\t0\t0\t0
eth1\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
*\t000812C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth2\t000012C6\t00000000\t0000\t0\t0\t0\t00FFFFFF\t0\t0\t0
garbage line
"""

FIB_TRIE = """\
Local:
  +-- 0.0.0.0/0 2 0 2
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 198.18.0.0/21 2 0 2
           +-- 198.18.0.0/31 1 0 0
              |-- 198.18.0.0
                 /24 link UNICAST
              |-- 198.18.0.1
                 /32 host LOCAL
           |-- 198.18.0.255
              /32 link BROADCAST
"""


def _int(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def test_the_route_table_is_read_with_gateways_masks_and_rejects() -> None:
    routes = parse_route_table(ROUTE_TABLE)
    assert [str(r.network) for r in routes] == [
        "198.18.0.0/24",
        "198.18.4.0/22",
        "0.0.0.0/0",
        "198.18.8.0/24",
    ]
    subnet, large, default, blackhole = routes
    assert subnet.on_link
    assert subnet.interface == "eth0"
    assert subnet.gateway is None
    assert not large.on_link
    assert str(large.gateway) == "198.18.0.254"
    assert str(default.gateway) == "192.168.1.1"
    assert default.metric == 100
    assert blackhole.reject
    assert not blackhole.on_link


def test_the_longest_prefix_wins_and_unrouted_addresses_have_no_route() -> None:
    routes = parse_route_table(ROUTE_TABLE)
    assert best_route(routes, _int("198.18.0.77")) == routes[0]
    assert best_route(routes, _int("198.18.7.255")) == routes[1]
    assert best_route(routes, _int("203.0.113.9")) == routes[2]
    without_default = [r for r in routes if r.network.prefixlen]
    assert best_route(without_default, _int("203.0.113.9")) is None


def test_between_equal_prefixes_the_lower_metric_wins() -> None:
    table = ROUTE_TABLE.splitlines()[0] + "\n"
    table += "eth0\t000012C6\t00000000\t0001\t0\t0\t50\t00FFFFFF\t0\t0\t0\n"
    table += "eth1\t000012C6\t00000000\t0001\t0\t0\t10\t00FFFFFF\t0\t0\t0\n"
    routes = parse_route_table(table)
    chosen = best_route(routes, _int("198.18.0.9"))
    assert chosen is not None
    assert chosen.interface == "eth1"


def test_own_addresses_are_the_host_local_32s_of_the_fib_trie() -> None:
    local = parse_local_addresses(FIB_TRIE)
    assert local == {_int("127.0.0.1"), _int("198.18.0.1")}
    routing = Routing(parse_route_table(ROUTE_TABLE), local)
    assert routing.route(_int("198.18.0.1")) == routing.routes[0]


def test_unreadable_tables_mean_no_routes_and_no_own_addresses() -> None:
    assert parse_route_table("") == ()
    assert parse_local_addresses("") == frozenset()
    assert parse_local_addresses("|-- not-an-address\n   /32 host LOCAL\n") == frozenset()

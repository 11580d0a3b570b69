"""ARP/neighbour caches, forwarding databases, VLANs and routes read from real devices' recordings
(snmpsim-data, odd positions only) and from hand-made rows for the corner cases."""

from __future__ import annotations

from midprobe.probes.classify.ouis import mac_vendor
from midprobe.probes.snmp.names import BY_NAME
from midprobe.probes.snmp.network_tables import (
    ArpEntry,
    FdbEntry,
    Route,
    TcpEndpoint,
    Vlan,
    arp_from_varbinds,
    fdb_from_varbinds,
    routes_from_varbinds,
    tcp_from_varbinds,
    vlans_from_varbinds,
)
from midprobe.probes.snmp.values import SnmpType, SnmpValue, VarBind
from tests.support.recordings import recorded_varbinds

H3C = "network/switch/h3c-e528-2.snmprec.bz2"


def _column(name: str, instance: tuple[int, ...], value: SnmpValue) -> VarBind:
    return ((*BY_NAME[name].oid, *instance), value)


def _octets(data: bytes) -> SnmpValue:
    return SnmpValue(SnmpType.OCTET_STRING, data)


def _integer(number: int) -> SnmpValue:
    return SnmpValue(SnmpType.INTEGER, number)


def test_a_real_switch_gives_its_arp_cache_with_the_vendor_of_each_mac() -> None:
    arp = arp_from_varbinds(recorded_varbinds(H3C))
    assert arp[0] == ArpEntry(
        31, "10.1.123.1", "0c:da:41:49:86:d8", "dynamic", "Hangzhou H3C Technologies Co., Limited"
    )
    assert len({(entry.if_index, entry.address) for entry in arp}) == len(arp) == 10


def test_ipv6_neighbours_come_from_ip_net_to_physical_and_ipv4_from_the_older_table() -> None:
    arp = arp_from_varbinds(recorded_varbinds("network/switch/cisco-c3560.snmprec.bz2"))
    ipv6 = [entry for entry in arp if ":" in entry.address]
    ipv4 = [entry for entry in arp if ":" not in entry.address]
    assert ipv6  # this agent keeps each family in its own table: both are read
    assert ipv4
    assert ipv6[0].address == "2001:da8:215:100::1"
    assert "10.1.100.1" in {entry.address for entry in ipv4}


def test_broadcast_and_zero_macs_and_invalid_entries_are_not_neighbours() -> None:
    varbinds = [
        _column("ipNetToMediaPhysAddress", (5, 10, 0, 0, 1), _octets(b"\xff" * 6)),
        _column("ipNetToMediaPhysAddress", (5, 10, 0, 0, 2), _octets(b"\x00" * 6)),
        _column("ipNetToMediaPhysAddress", (5, 10, 0, 0, 3), _octets(bytes.fromhex("00000c123456"))),
        _column("ipNetToMediaType", (5, 10, 0, 0, 3), _integer(2)),  # invalid(2)
        _column("ipNetToMediaPhysAddress", (5, 10, 0, 0, 4), _octets(bytes.fromhex("00000c123457"))),
        _column("ipNetToMediaType", (5, 10, 0, 0, 4), _integer(4)),
    ]
    assert arp_from_varbinds(varbinds) == (
        ArpEntry(5, "10.0.0.4", "00:00:0c:12:34:57", "static", "Cisco Systems, Inc"),
    )


def test_the_q_bridge_forwarding_database_names_vlan_bridge_port_and_interface() -> None:
    assert fdb_from_varbinds(recorded_varbinds(H3C)) == (
        FdbEntry("38:91:d5:fb:74:75", 24, 24, 1, "learned", "Hangzhou H3C Technologies Co., Limited"),
        FdbEntry("0c:da:41:49:86:d8", 24, 24, 2, "learned", "Hangzhou H3C Technologies Co., Limited"),
    )


def test_the_bridge_mib_table_serves_when_there_is_no_q_bridge_and_the_bridges_own_macs_are_left_out() -> (
    None
):
    mac, own = bytes.fromhex("3cecef000001"), bytes.fromhex("3cecef000002")
    varbinds = [
        _column("dot1dBasePortIfIndex", (3,), _integer(10103)),
        _column("dot1dTpFdbAddress", tuple(mac), _octets(mac)),
        _column("dot1dTpFdbPort", tuple(mac), _integer(3)),
        _column("dot1dTpFdbStatus", tuple(mac), _integer(3)),
        _column("dot1dTpFdbAddress", tuple(own), _octets(own)),
        _column("dot1dTpFdbPort", tuple(own), _integer(3)),
        _column("dot1dTpFdbStatus", tuple(own), _integer(4)),  # self(4)
    ]
    assert fdb_from_varbinds(varbinds) == (
        FdbEntry("3c:ec:ef:00:00:01", 3, 10103, None, "learned", "Super Micro Computer, Inc."),
    )


def test_the_q_bridge_table_wins_over_the_bridge_mib_one_when_both_are_there() -> None:
    mac = bytes.fromhex("3cecef000001")
    varbinds = [
        _column("dot1qTpFdbPort", (20, *mac), _integer(3)),
        _column("dot1qTpFdbStatus", (20, *mac), _integer(3)),
        _column("dot1dTpFdbAddress", tuple(mac), _octets(mac)),
        _column("dot1dTpFdbPort", tuple(mac), _integer(3)),
    ]
    assert [(entry.mac, entry.vlan) for entry in fdb_from_varbinds(varbinds)] == [("3c:ec:ef:00:00:01", 20)]


def test_vlans_with_their_names_trailing_nuls_dropped() -> None:
    assert vlans_from_varbinds(recorded_varbinds(H3C)) == (Vlan(1, "VLAN 0001"), Vlan(2, "VLAN 0002"))
    maipu = vlans_from_varbinds(recorded_varbinds("network/switch/maipu-sm4200-16gef8ge-ac.snmprec.bz2"))
    assert maipu[0] == Vlan(1, "default")


def test_ip_cidr_routes_of_a_real_switch() -> None:
    assert routes_from_varbinds(recorded_varbinds(H3C)) == (
        Route("0.0.0.0/0", "10.1.123.1", 31, "remote", "netmgmt", 0),
        Route("10.1.123.0/24", "10.1.123.240", 31, "local", "local", 0),
    )


def test_inet_cidr_routes_of_a_real_router_hold_ipv6_ospf_and_blackhole_routes() -> None:
    routes = routes_from_varbinds(recorded_varbinds("network/router/juniper-mx960-12-3r6-6.snmprec.bz2"))
    by_destination = {route.destination: route for route in routes}
    assert by_destination["::/0"] == Route("::/0", "fe80::3a97:d6ff:fe14:e66", 675, "remote", "ospf", 320)
    assert by_destination["10.0.0.0/8"].kind == "blackhole"
    assert by_destination["10.0.0.0/8"].next_hop is None  # 0.0.0.0: no next hop


def test_the_rfc_1213_route_table_serves_when_the_newer_ones_are_absent() -> None:
    varbinds = [
        _column("ipRouteIfIndex", (0, 0, 0, 0), _integer(2)),
        _column("ipRouteNextHop", (0, 0, 0, 0), SnmpValue(SnmpType.IP_ADDRESS, bytes([192, 0, 2, 1]))),
        _column("ipRouteMask", (0, 0, 0, 0), SnmpValue(SnmpType.IP_ADDRESS, bytes(4))),
        _column("ipRouteType", (0, 0, 0, 0), _integer(4)),
        _column("ipRouteProto", (0, 0, 0, 0), _integer(3)),
        _column("ipRouteMask", (192, 0, 2, 0), SnmpValue(SnmpType.IP_ADDRESS, bytes([255, 0, 255, 0]))),
        _column("ipRouteNextHop", (198, 18, 0, 0), SnmpValue(SnmpType.IP_ADDRESS, bytes(4))),
        _column("ipRouteMask", (198, 18, 0, 0), SnmpValue(SnmpType.IP_ADDRESS, bytes([255, 255, 255, 0]))),
        _column("ipRouteType", (198, 18, 0, 0), _integer(3)),
        _column("ipRouteMask", (203, 0, 113, 0), SnmpValue(SnmpType.IP_ADDRESS, bytes([255, 255, 255, 0]))),
        _column("ipRouteType", (203, 0, 113, 0), _integer(2)),  # invalid(2): a deleted route
    ]  # 192.0.2.0's mask is not contiguous: no network, left out
    assert routes_from_varbinds(varbinds) == (
        Route("0.0.0.0/0", "192.0.2.1", 2, "remote", "netmgmt", None),
        Route("198.18.0.0/24", None, None, "local"),  # next hop 0.0.0.0: directly connected
    )


def test_mac_vendor_from_the_ieee_list_and_none_for_local_or_multicast_macs() -> None:
    assert mac_vendor("00-00-0C-AA-BB-CC") == "Cisco Systems, Inc"
    assert mac_vendor("02:00:00:aa:bb:cc") is None  # locally administered (virtual, randomised)
    assert mac_vendor("01:00:5e:00:00:01") is None  # multicast
    assert mac_vendor("not a mac") is None


def test_tcp_listeners_and_connections_of_a_real_ups_from_the_rfc_4022_tables() -> None:
    assert tcp_from_varbinds(recorded_varbinds("UPS/eaton-93e-80.snmprec.bz2")) == (
        TcpEndpoint("202.112.176.11", 80),
        TcpEndpoint("202.112.176.11", 80, "202.112.188.28", 61782),  # someone on its web page
    )


def test_tcp_conn_table_serves_when_the_newer_ones_are_absent_wildcards_as_star() -> None:
    found = tcp_from_varbinds(recorded_varbinds("network/router/juniper-mx960-12-3r6-6.snmprec.bz2"))
    assert TcpEndpoint("*", 22) in found
    assert TcpEndpoint("128.0.0.1", 6011, "128.0.0.16", 29698) in found
    listening = [endpoint for endpoint in found if endpoint.remote_address is None]
    assert found[: len(listening)] == tuple(listening)  # listeners first


def test_tcp_rows_with_a_malformed_index_or_another_state_are_left_out() -> None:
    established = _integer(5)
    varbinds = [
        # local 198.18.0.10:22 <- 198.18.0.1:50000, established
        _column("tcpConnectionState", (1, 4, 198, 18, 0, 10, 22, 1, 4, 198, 18, 0, 1, 50000), established),
        _column("tcpConnectionState", (1, 4, 198, 18, 0, 10, 22, 1, 4, 198, 18, 0, 2, 50001), _integer(11)),
        _column("tcpConnectionState", (1, 4, 198, 18, 0, 10, 22, 1, 4, 198, 18, 0), established),  # short
        _column("tcpListenerProcess", (0, 0, 161), _integer(0)),  # every address
        _column("tcpListenerProcess", (2, 16, *([0] * 15), 1, 8080), _integer(0)),  # ::1
    ]
    assert tcp_from_varbinds(varbinds) == (
        TcpEndpoint("*", 161),
        TcpEndpoint("::1", 8080),
        TcpEndpoint("198.18.0.10", 22, "198.18.0.1", 50000),
    )

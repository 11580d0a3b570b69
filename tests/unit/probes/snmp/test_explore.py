"""SNMPIdentity / SNMPExplore: the pure table parsers on recorded walks, and the probes replayed.

The lab recordings (net-snmp serving real interfaces) have no ENTITY-MIB or LLDP-MIB; those come
from snmpsim-data's real-device recordings, of which only the odd positions of each folder are used.
"""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from midprobe.probes.base import ProbeContext
from midprobe.probes.credentials import CredentialStore, Secret, SNMPCommunityCredential
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.snmp.explore import (
    EXPLORE_TOPIC,
    IDENTITY_TOPIC,
    SnmpExploreProbe,
    cdp_neighbours_from_varbinds,
    chassis_from_varbinds,
    exploration_from_varbinds,
    ip_address_table,
    neighbours_from_varbinds,
)
from midprobe.probes.snmp.replay import ReplayAgent
from midprobe.probes.snmp.values import SnmpType, SnmpValue, VarBind
from midprobe.probes.snmp.walkfile import WalkFileError, parse_snmprec, parse_walk
from tests.support.recordings import recorded_varbinds

WALKS = Path(__file__).resolve().parents[4] / "fixtures" / "snmp" / "lab"
COMMUNITY = "lab-community"


#: The MIB-2 and LLDP subtrees exploration reads (snmprec lines are kept only under these).
def _lab_walk(host: str) -> tuple[VarBind, ...]:
    return parse_walk((WALKS / f"{host}-v2c.walk").read_text())


def test_the_lab_switch_walk_gives_its_interfaces_with_macs_and_the_address_on_eth0() -> None:
    found = exploration_from_varbinds(_lab_walk("switch1"))
    assert found.sys_name == "switch1"
    by_name = {interface.name: interface for interface in found.interfaces}
    assert {f"Gi1-0-{n}" for n in range(1, 9)} | {"Vlan1", "eth0", "lo"} <= set(by_name)
    assert by_name["eth0"].mac == "ba:3f:b2:08:55:43"
    assert by_name["eth0"].oper_status == "up"
    assert by_name["eth0"].speed_bps == 10_000_000_000
    assert by_name["lo"].mac is None
    on_eth0 = [entry.address for entry in found.ip_addresses if entry.if_index == by_name["eth0"].index]
    assert on_eth0 == ["198.18.0.11"]
    assert next(e for e in found.ip_addresses if e.address == "198.18.0.11").prefix_length == 24
    # No ENTITY-MIB, no LLDP-MIB on this agent: the tables are optional, nothing is made up.
    assert (found.chassis, found.neighbours, found.serial_number) == (None, (), None)


def test_the_lab_printer_serial_comes_from_the_printer_mib() -> None:
    assert exploration_from_varbinds(_lab_walk("printer1")).serial_number == "PHBLB12345"


def test_entity_mib_chassis_serial_model_and_firmware_of_a_real_switch() -> None:
    chassis = chassis_from_varbinds(recorded_varbinds("network/switch/hpe-procurve-516733-b21.snmprec.bz2"))
    assert chassis is not None
    assert (chassis.serial_number, chassis.model, chassis.manufacturer) == (
        "3C421900TX",
        "516733-B21",
        "Hewlett-Packard",
    )
    assert chassis.firmware_version == "Z.14.09"


def test_a_stack_entity_above_the_chassis_is_passed_over_for_the_chassis() -> None:
    varbinds = recorded_varbinds("network/switch/h3c-e528-2.snmprec.bz2")
    chassis = chassis_from_varbinds(varbinds)
    assert chassis is not None
    assert chassis.index == 2  # entity 1 (contained in nothing) is the stack, not a chassis
    assert (chassis.serial_number, chassis.model) == ("210235A0GKC158000929", "H3C Switch E528")


def test_lldp_neighbours_of_a_real_switch_with_mac_and_local_chassis_ids() -> None:
    neighbours = neighbours_from_varbinds(
        recorded_varbinds("network/switch/hpe-procurve-516733-b21.snmprec.bz2")
    )
    by_port = {n.local_port: n for n in neighbours if n.chassis_mac}
    on_17 = [n.chassis_id_subtype for n in neighbours if n.local_port == 17]
    assert on_17 == ["macAddress", "local"]  # two neighbours on one port: both kept
    nexus = by_port[17]
    assert (nexus.chassis_mac, nexus.sys_name, nexus.port_id, nexus.port_id_subtype) == (
        "8c:60:4f:19:16:3a",
        "NWPU-CA-5548-01",
        "Eth1/19",
        "local",
    )
    assert by_port[8].chassis_mac == by_port[8].port_id == "e8:39:35:1a:ca:99"
    h3c = neighbours_from_varbinds(recorded_varbinds("network/switch/h3c-e528-2.snmprec.bz2"))
    assert [(n.local_port, n.sys_name, n.port_id) for n in h3c] == [
        (24, "WRD-Huiju-2", "GigabitEthernet1/0/33")
    ]


def test_cdp_neighbours_of_a_real_cisco_switch_with_address_port_and_platform() -> None:
    found = exploration_from_varbinds(recorded_varbinds("network/switch/cisco-c3560.snmprec.bz2"))
    cdp = [n for n in found.neighbours if n.protocol == "cdp"]
    assert cdp == list(
        cdp_neighbours_from_varbinds(recorded_varbinds("network/switch/cisco-c3560.snmprec.bz2"))
    )
    first = cdp[0]
    assert (first.local_port, first.sys_name, first.address, first.port_id, first.platform) == (
        10149,
        "OLD-ShiTang-WIRELESS",
        "10.1.100.181",
        "GigabitEthernet0/2",
        "cisco WS-C3560-24PS",
    )
    assert len({(n.local_port, n.sys_name) for n in cdp}) == len(cdp)


def test_a_cdp_device_id_with_its_serial_in_parentheses_names_the_host() -> None:
    nexus = cdp_neighbours_from_varbinds(recorded_varbinds("network/switch/cisco-n5000-uk9.snmprec.bz2"))
    assert "NWPU-CA-5548-02" in {n.sys_name for n in nexus}
    assert any(n.chassis_id.startswith("NWPU-CA-5548-02(") for n in nexus)  # the id itself is kept whole


def test_ip_mib_address_table_adds_ipv6_with_its_prefix_to_the_ipv4_table() -> None:
    found = exploration_from_varbinds(recorded_varbinds("network/switch/cisco-c3560.snmprec.bz2"))
    by_address = {entry.address: entry for entry in found.ip_addresses}
    assert by_address["2001:da8:215:100::148"].prefix_length == 64
    assert by_address["10.1.100.148"].prefix_length == 24
    assert by_address["2001:da8:215:100::148"].if_index == by_address["10.1.100.148"].if_index
    assert len(found.ip_addresses) == len(by_address)  # an address in both tables is listed once


def test_malformed_ip_address_table_indexes_are_skipped() -> None:
    column = (1, 3, 6, 1, 2, 1, 4, 34, 1, 3)
    varbinds = [
        ((*column, 1, 4, 10, 0, 0, 1), SnmpValue(SnmpType.INTEGER, 5)),
        ((*column, 1, 4, 10, 0, 1), SnmpValue(SnmpType.INTEGER, 6)),  # 3 octets for a length of 4
        ((*column, 9, 4, 10, 0, 0, 2), SnmpValue(SnmpType.INTEGER, 7)),  # an unknown address type
        ((*column, 1, 4, 10, 0, 0, 300), SnmpValue(SnmpType.INTEGER, 8)),  # not an octet
    ]
    assert [(e.address, e.if_index) for e in ip_address_table(varbinds)] == [("10.0.0.1", 5)]


def test_an_lldp_network_address_chassis_id_reads_as_the_address() -> None:
    entry = (1, 0, 8802, 1, 1, 2, 1, 4, 1, 1)
    varbinds = [
        ((*entry, 4, 0, 3, 1), SnmpValue(SnmpType.INTEGER, 5)),
        ((*entry, 5, 0, 3, 1), SnmpValue(SnmpType.OCTET_STRING, bytes([1, 198, 18, 0, 10]))),
    ]
    (neighbour,) = neighbours_from_varbinds(varbinds)
    assert (neighbour.local_port, neighbour.chassis_id, neighbour.chassis_mac) == (3, "198.18.0.10", None)


def test_snmprec_lines_that_are_not_recordings_are_refused_with_the_line() -> None:
    with pytest.raises(WalkFileError, match="line 2"):
        parse_snmprec("1.3.6.1.2.1.1.5.0|4|switch\n1.3.6.1.2.1.1.6.0|99|x\n")
    assert parse_snmprec("1.3.6.1.2.1.1.3.0|67:numeric|rate=1\n") == ()  # computed by snmpsim: left out


def _run(topic: str, varbinds: tuple[VarBind, ...], *, max_rows: int = 5000) -> ET.Element:
    probe = SnmpExploreProbe(
        topic=topic, opener=ReplayAgent(varbinds, communities={COMMUNITY}), max_rows=max_rows
    )
    store = CredentialStore(
        [SNMPCommunityCredential(id="lab-ro", community=Secret(COMMUNITY), order=1)],
        snmp_public_fallback=False,
    )
    context = ProbeContext(policy=TargetPolicy.lab(), credentials=store, deadline=time.monotonic() + 30)
    result = asyncio.run(probe.run(probe.parse_params("198.18.0.11", {"version": "2c"}), context))
    (element,) = probe.encode_results(result)
    return ET.fromstring(ET.tostring(element))


def test_the_identity_probe_replayed_reports_serial_macs_and_addresses() -> None:
    root = _run(IDENTITY_TOPIC, recorded_varbinds("network/switch/hpe-procurve-516733-b21.snmprec.bz2"))
    found = root.find("snmp_exploration")
    assert found is not None
    assert (found.get("serial_number"), found.get("credential_id"), found.get("version")) == (
        "3C421900TX",
        "lab-ro",
        "2c",
    )
    assert any(i.get("mac") for i in found.iter("interface"))
    assert "222.24.210.177" in {a.get("address") for a in found.iter("ip_address")}
    assert root.find("snmp_exploration/neighbours/neighbour") is None  # LLDP is exploration's, not identity's
    assert COMMUNITY not in ET.tostring(root, encoding="unicode")


def test_the_explore_probe_replayed_adds_status_speed_model_and_neighbours() -> None:
    root = _run(EXPLORE_TOPIC, recorded_varbinds("network/switch/hpe-procurve-516733-b21.snmprec.bz2"))
    chassis = root.find("snmp_exploration/chassis")
    assert chassis is not None
    assert chassis.get("model") == "516733-B21"
    assert any(i.get("oper_status") and i.get("speed_bps") for i in root.iter("interface"))
    assert "NWPU-CA-5548-01" in {n.get("sys_name") for n in root.iter("neighbour")}
    vendors = {i.get("vendor") for i in root.iter("interface") if i.get("mac")}
    assert vendors == {"Hewlett Packard"}, vendors  # the IEEE OUI list names each MAC's maker


def test_the_explore_probe_replayed_reports_arp_fdb_vlans_and_routes() -> None:
    root = _run(EXPLORE_TOPIC, recorded_varbinds("network/switch/h3c-e528-2.snmprec.bz2"))
    found = root.find("snmp_exploration")
    assert found is not None
    arp = found.find("arp_table/arp_entry")
    assert arp is not None
    assert (arp.get("address"), arp.get("mac"), arp.get("vendor")) == (
        "10.1.123.1",
        "0c:da:41:49:86:d8",
        "Hangzhou H3C Technologies Co., Limited",
    )
    fdb = [(e.get("mac"), e.get("if_index"), e.get("vlan")) for e in found.iter("fdb_entry")]
    assert fdb == [("38:91:d5:fb:74:75", "24", "1"), ("0c:da:41:49:86:d8", "24", "2")]
    assert [(v.get("id"), v.get("name")) for v in found.iter("vlan")] == [
        ("1", "VLAN 0001"),
        ("2", "VLAN 0002"),
    ]
    assert ("0.0.0.0/0", "10.1.123.1") in {
        (r.get("destination"), r.get("next_hop")) for r in found.iter("route")
    }


def test_identity_reads_no_network_tables() -> None:
    root = _run(IDENTITY_TOPIC, recorded_varbinds("network/switch/h3c-e528-2.snmprec.bz2"))
    assert root.find("snmp_exploration/arp_table/arp_entry") is None


def test_each_network_table_is_read_up_to_its_row_cap() -> None:
    varbinds = recorded_varbinds("network/switch/cisco-n5000-uk9.snmprec.bz2")  # 533 neighbours
    root = _run(EXPLORE_TOPIC, varbinds, max_rows=20)
    assert 0 < len(root.findall("snmp_exploration/arp_table/arp_entry")) <= 20
    assert 0 < len(root.findall("snmp_exploration/routes/route")) <= 20
    assert len(root.findall("snmp_exploration/interfaces/interface")) > 20  # the cap is the tables' only

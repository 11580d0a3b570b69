"""SNMP classification: the facts SNMP reads, judged by the shared rules table, on recorded lab walks
and on known device identities (each answer is the one the former SNMP-only table gave)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from midprobe.probes.classify import Classifier, default_classifier
from midprobe.probes.snmp.classify import (
    SnmpClassifyResult,
    addresses_from_varbinds,
    encode_classify_result,
    interfaces_from_varbinds,
)
from midprobe.probes.snmp.facts import (
    LINUX_SERVER,
    NETGEAR,
    PRINTER,
    ROUTER,
    SWITCH,
    DeviceFacts,
    capabilities,
    classify,
    facts_from_varbinds,
    observations,
)
from midprobe.probes.snmp.values import parse_numeric_oid
from midprobe.probes.snmp.walkfile import parse_walk

WALKS = Path(__file__).resolve().parents[4] / "fixtures" / "snmp" / "lab"


@pytest.mark.parametrize(
    ("walk", "ci_class", "vendor"),
    [
        ("linux1-v2c.walk", LINUX_SERVER, "net-snmp"),
        ("switch1-v2c.walk", SWITCH, "Cisco"),
        ("printer1-v2c.walk", PRINTER, "HP"),
        ("switch1-v3-system.walk", SWITCH, "Cisco"),
    ],
)
def test_recorded_lab_devices(walk: str, ci_class: str, vendor: str) -> None:
    facts = facts_from_varbinds(parse_walk((WALKS / walk).read_text()))
    found = classify(facts)
    assert (found.ci_class, found.vendor) == (ci_class, vendor)
    assert found.evidence[0].startswith("SNMP sysObjectID .1.3.6.1.4.1.")


def test_switch_evidence_and_capabilities() -> None:
    facts = facts_from_varbinds(parse_walk((WALKS / "switch1-v2c.walk").read_text()))
    found = classify(facts)
    assert facts.sys_services == 6
    assert capabilities(facts)[0] == ("switching", "routing")
    assert found.evidence[0] == (
        "SNMP sysObjectID .1.3.6.1.4.1.9.1.1208 is a Cisco product and sysDescr names a switch"
    )
    assert "SNMP shows it switches: switching (sysServices = 6 (layer 2 set))" in found.evidence
    # Routing voted too, for the losing class: the scores show it, the evidence does not.
    assert found.scores[ROUTER] == pytest.approx(0.4)
    assert not any("routes" in reason for reason in found.evidence)


def test_observations_carry_what_snmp_read() -> None:
    facts = facts_from_varbinds(parse_walk((WALKS / "switch1-v2c.walk").read_text()))
    seen = observations(facts, "198.18.0.11")
    assert seen.address == "198.18.0.11"
    assert seen.sys_object_id == ".1.3.6.1.4.1.9.1.1208"
    assert seen.sys_descr is not None
    assert seen.sys_descr.startswith("Cisco IOS Software, C2960X Software")
    assert seen.snmp_capabilities == {
        "switching": "sysServices = 6 (layer 2 set)",
        "routing": "sysServices = 6 (layer 3 set)",
    }
    assert seen.logged_in == frozenset({"snmp"})


def test_printer_is_seen_by_its_printer_mib_too() -> None:
    facts = facts_from_varbinds(parse_walk((WALKS / "printer1-v2c.walk").read_text()))
    assert facts.printer_mib
    unknown_vendor = DeviceFacts(
        sys_descr=facts.sys_descr, sys_object_id=(1, 3, 6, 1, 4, 1, 99999), printer_mib=True
    )
    assert classify(unknown_vendor).ci_class == PRINTER


CISCO_ROUTER = (
    "Cisco IOS Software, C2900 Software (C2900-UNIVERSALK9-M), Version 15.7(3)M5, RELEASE SOFTWARE (fc1)"
)
CISCO_ISR = "Cisco IOS Software [Fuji], ISR Software (X86_64_LINUX_IOSD-UNIVERSALK9-M), Version 16.9.4"
CATALYST = "Cisco IOS Software, Catalyst L3 Switch Software (CAT9K_IOSXE), Version 17.3.4"


@pytest.mark.parametrize(
    ("object_id", "descr", "services", "forwarding", "ports", "expected"),
    [
        (".1.3.6.1.4.1.9.1.1041", CISCO_ROUTER, 6, 1, None, ROUTER),
        (".1.3.6.1.4.1.9.1.2068", CISCO_ISR, 78, 1, None, ROUTER),
        (".1.3.6.1.4.1.9.1.2494", CATALYST, 6, 1, 48, SWITCH),
        (
            ".1.3.6.1.4.1.9.12.3.1.3.1",
            "Cisco Adaptive Security Appliance",
            4,
            1,
            None,
            ROUTER,
        ),  # by capability
        (
            ".1.3.6.1.4.1.2636.1.1.1.2.31",
            "Juniper Networks, Inc. ex4200-48t Ethernet Switch",
            4,
            1,
            48,
            SWITCH,
        ),
        (
            ".1.3.6.1.4.1.2636.1.1.1.2.21",
            "Juniper Networks, Inc. mx480 internet router, kernel JUNOS",
            4,
            1,
            None,
            ROUTER,
        ),
        (".1.3.6.1.4.1.30065.1.3011.7048.427.3648", "Arista Networks EOS version 4.28", 6, 1, 48, SWITCH),
        (".1.3.6.1.4.1.4526.100.4.10", "GS724T smart switch", 2, None, 24, SWITCH),
        (".1.3.6.1.4.1.4526.100.11.1", "Netgear ProSafe", None, None, None, NETGEAR),
        (".1.3.6.1.4.1.8072.3.2.10", "Linux db1 6.1.0", 72, 2, None, LINUX_SERVER),
        (".1.3.6.1.4.1.8072.3.2.255", "Linux gw 5.10 (an unusual net-snmp OS id)", 72, 1, None, LINUX_SERVER),
        (".1.3.6.1.4.1.99999.1", "Some Box", None, None, None, NETGEAR),
        (".1.3.6.1.4.1.99999.1", "Some Box", 2, None, 8, SWITCH),
        (".1.3.6.1.4.1.99999.1", "Some Box", 4, 1, None, ROUTER),
        (".1.3.6.1.4.1.641.1", "Lexmark MS812", 72, None, None, PRINTER),
    ],
)
def test_identities(
    object_id: str, descr: str, services: int | None, forwarding: int | None, ports: int | None, expected: str
) -> None:
    facts = DeviceFacts(
        sys_descr=descr,
        sys_object_id=parse_numeric_oid(object_id),
        sys_services=services,
        ip_forwarding=forwarding,
        bridge_ports=ports,
    )
    assert classify(facts).ci_class == expected


@pytest.mark.parametrize(
    ("object_id", "descr", "vendor"),
    [
        (".1.3.6.1.4.1.9.1.1041", CISCO_ROUTER, "Cisco"),
        (".1.3.6.1.4.1.9.12.3.1.3.1", "Cisco Adaptive Security Appliance", "Cisco"),
        (".1.3.6.1.4.1.2636.1.1.1.2.21", "Juniper Networks, Inc. mx480 internet router", "Juniper"),
        (".1.3.6.1.4.1.30065.1.3011.7048.427.3648", "Arista Networks EOS version 4.28", "Arista"),
        (".1.3.6.1.4.1.4526.100.11.1", "Netgear ProSafe", "Netgear"),
        (".1.3.6.1.4.1.8072.3.2.255", "Linux gw 5.10", "net-snmp"),
        (".1.3.6.1.4.1.2435.2.3.9.1", "Brother NC-8300h", "Brother"),
        (".1.3.6.1.4.1.99999.1", "Some Box", None),
    ],
)
def test_vendor_comes_from_the_sys_object_id_rules(object_id: str, descr: str, vendor: str | None) -> None:
    facts = DeviceFacts(sys_descr=descr, sys_object_id=parse_numeric_oid(object_id), ip_forwarding=1)
    assert classify(facts).vendor == vendor


def test_a_vendor_rule_decides_over_any_capability() -> None:
    # A Cisco router that also shows layer 2, a Linux net-snmp host with a printer attached.
    router = DeviceFacts(
        sys_descr=CISCO_ROUTER, sys_object_id=parse_numeric_oid(".1.3.6.1.4.1.9.1.1041"), bridge_ports=4
    )
    assert classify(router).ci_class == ROUTER
    print_server = DeviceFacts(
        sys_descr="Linux printer-host 6.1.0 (a LaserJet on USB)",
        sys_object_id=parse_numeric_oid(".1.3.6.1.4.1.8072.3.2.10"),
        printer_mib=True,
        bridge_ports=2,
        ip_forwarding=1,
    )
    assert classify(print_server).ci_class == LINUX_SERVER


@pytest.mark.parametrize(
    ("printing", "ports", "forwarding", "expected"),
    [
        (True, 8, 1, PRINTER),
        (False, 8, 1, SWITCH),  # a layer-3 switch also routes
        (False, None, 1, ROUTER),
        (True, None, None, PRINTER),
        (False, None, None, NETGEAR),
    ],
)
def test_by_capability_order(
    printing: bool, ports: int | None, forwarding: int | None, expected: str
) -> None:
    facts = DeviceFacts(
        sys_descr="Some Box",
        sys_object_id=parse_numeric_oid(".1.3.6.1.4.1.9.12.3.1.3.1"),  # Cisco, no telling rule
        printer_mib=printing,
        bridge_ports=ports,
        ip_forwarding=forwarding,
    )
    found = classify(facts)
    assert found.ci_class == expected
    assert found.vendor == "Cisco"


def test_a_linux_sys_descr_comes_after_capabilities_and_before_network_gear() -> None:
    unknown = parse_numeric_oid(".1.3.6.1.4.1.99999.1")
    assert (
        classify(DeviceFacts(sys_descr="Embedded Linux 5.4", sys_object_id=unknown)).ci_class == LINUX_SERVER
    )
    routing = DeviceFacts(sys_descr="Embedded Linux 5.4", sys_object_id=unknown, ip_forwarding=1)
    assert classify(routing).ci_class == ROUTER


def test_no_sys_object_id_falls_back_to_capabilities() -> None:
    found = classify(DeviceFacts(sys_descr="Linux thing"))
    assert found.ci_class == LINUX_SERVER
    assert found.evidence == ("SNMP sysDescr says Linux",)
    nothing = classify(DeviceFacts())
    assert nothing.ci_class == NETGEAR
    assert nothing.evidence == ("answers SNMP, showed nothing more telling: network gear",)
    assert nothing.vendor is None


def test_a_custom_table_replaces_the_shipped_one() -> None:
    table = Classifier.from_toml(
        '[[rule]]\nclass = "cmdb_ci_ip_firewall"\nweight = 1\nvendor = "Cisco"\n'
        'when.sys_object_id = [".1.3.6.1.4.1.9.1.745"]\nevidence = "an ASA 5510"\n'
    )
    facts = DeviceFacts(sys_object_id=parse_numeric_oid(".1.3.6.1.4.1.9.1.745"), ip_forwarding=1)
    found = classify(facts, table)
    assert (found.ci_class, found.vendor, found.evidence) == (
        "cmdb_ci_ip_firewall",
        "Cisco",
        ("an ASA 5510",),
    )
    assert classify(facts, default_classifier()).ci_class == ROUTER


def test_interfaces_and_addresses_from_the_switch_walk() -> None:
    varbinds = parse_walk((WALKS / "switch1-v2c.walk").read_text())
    interfaces = interfaces_from_varbinds(varbinds)
    names = [interface.name for interface in interfaces]
    assert names[:2] == ["lo", "eth0"]
    assert set(names[2:]) >= {f"Gi1-0-{n}" for n in range(1, 9)} | {"Vlan1"}
    eth0 = interfaces[1]
    assert eth0.mac is not None
    assert len(eth0.mac) == 17
    assert eth0.admin_status == "up"
    assert eth0.oper_status == "up"
    addresses = addresses_from_varbinds(varbinds)
    lab = [entry for entry in addresses if entry.address.startswith("198.18.")]
    assert lab
    assert lab[0].prefix_length == 24
    assert lab[0].if_index == 2


def classify_result(walk: str, source: str, address: str) -> SnmpClassifyResult:
    """What SNMPClassify finds on the device a lab recording holds."""
    varbinds = parse_walk((WALKS / walk).read_text())
    facts = facts_from_varbinds(varbinds)
    return SnmpClassifyResult(
        source=source,
        address=address,
        port=161,
        version="2c",
        credential_id="ro",
        facts=facts,
        classification=classify(facts, address=address),
        interfaces=interfaces_from_varbinds(varbinds),
        ip_addresses=addresses_from_varbinds(varbinds),
        varbinds=varbinds,
    )


def test_classify_result_xml() -> None:
    result = classify_result("printer1-v2c.walk", "printer1", "198.18.0.12")
    root = ET.fromstring(ET.tostring(encode_classify_result(result)))
    classification = root.find("classification")
    assert classification is not None
    assert classification.get("ci_class") == PRINTER
    assert classification.get("vendor") == "HP"
    assert classification.get("confidence") == "1.00"
    assert classification.get("sys_object_id") == ".1.3.6.1.4.1.11.2.3.9.1"
    assert [(e.get("name"), e.get("evidence")) for e in classification.findall("capability")] == [
        ("printing", "Printer-MIB / hrPrinterTable objects present")
    ]
    assert result.capabilities == ("printing",)
    assert classification.findtext("evidence") == (
        "SNMP sysObjectID .1.3.6.1.4.1.11.2.3.9.1 is an HP printer (JetDirect)"
    )
    assert root.findtext("snmp/system/sysName") == "printer1"
    snmp = root.find("snmp")
    assert snmp is not None
    assert snmp.get("credential_id") == "ro"
    assert snmp.get("version") == "2c"
    assert [e.get("name") for e in root.findall("interfaces/interface")] == ["lo", "eth0"]
    assert next(e.get("address") for e in root.findall("ip_addresses/ip_address")) == "127.0.0.1"

"""SNMP classification: the data table on recorded lab walks and on known device identities."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from midprobe.capabilities.errors import ConfigError
from midprobe.probes.snmp.classify import (
    LINUX_SERVER,
    NETGEAR,
    PRINTER,
    ROUTER,
    SWITCH,
    DeviceFacts,
    classify,
    facts_from_varbinds,
    load_rules,
    parse_rules,
)
from midprobe.probes.snmp.classify_probe import (
    SnmpClassifyResult,
    addresses_from_varbinds,
    encode_classify_result,
    interfaces_from_varbinds,
)
from midprobe.probes.snmp.values import parse_numeric_oid
from midprobe.probes.snmp.walkfile import parse_walk

WALKS = Path(__file__).resolve().parents[3] / "fixtures" / "snmp" / "lab"


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
    assert found.evidence[0].startswith(f"sysObjectID {'.'}")


def test_switch_evidence_and_capabilities() -> None:
    facts = facts_from_varbinds(parse_walk((WALKS / "switch1-v2c.walk").read_text()))
    found = classify(facts)
    assert facts.sys_services == 6
    assert found.capabilities == ("switching", "routing")
    assert "starts with .1.3.6.1.4.1.9.1" in found.evidence[0]
    assert "sysDescr matches" in found.evidence[0]
    assert "sysServices = 6 (layer 2 set)" in found.evidence


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


def test_no_sys_object_id_falls_back_to_capabilities() -> None:
    found = classify(DeviceFacts(sys_descr="Linux thing"))
    assert found.ci_class == LINUX_SERVER
    assert found.evidence[0] == "no sysObjectID"


def test_shipped_rules_load() -> None:
    rules = load_rules()
    assert len(rules) >= 15
    assert {rule.match for rule in rules} == {"is", "starts_with"}


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"match": "is", "ci_class": SWITCH}, "sys_object_id"),
        ({"sys_object_id": "1.3.x", "match": "is", "ci_class": SWITCH}, "sys_object_id"),
        ({"sys_object_id": "1.3.6", "match": "like", "ci_class": SWITCH}, "match"),
        ({"sys_object_id": "1.3.6", "match": "is", "ci_class": "cmdb_ci_toaster"}, "ci_class"),
        ({"sys_object_id": "1.3.6", "match": "is", "ci_class": SWITCH, "descr": "("}, "descr"),
    ],
)
def test_bad_rules_name_the_rule_and_field(rule: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_rules({"rule": [rule]}, source="rules.toml")
    assert caught.value.field == field
    assert str(caught.value).startswith(f"rules.toml: rule 1: {field}:")


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


def test_classify_result_xml() -> None:
    varbinds = parse_walk((WALKS / "printer1-v2c.walk").read_text())
    facts = facts_from_varbinds(varbinds)
    result = SnmpClassifyResult(
        source="printer1",
        address="198.18.0.12",
        port=161,
        version="2c",
        credential_id="ro",
        facts=facts,
        classification=classify(facts),
        interfaces=interfaces_from_varbinds(varbinds),
        ip_addresses=addresses_from_varbinds(varbinds),
        varbinds=varbinds,
    )
    root = ET.fromstring(ET.tostring(encode_classify_result(result)))
    classification = root.find("classification")
    assert classification is not None
    assert classification.get("ci_class") == PRINTER
    assert classification.get("sys_object_id") == ".1.3.6.1.4.1.11.2.3.9.1"
    assert [e.get("name") for e in classification.findall("capability")] == ["printing"]
    assert root.findtext("snmp/system/sysName") == "printer1"
    snmp = root.find("snmp")
    assert snmp is not None
    assert snmp.get("credential_id") == "ro"
    assert snmp.get("version") == "2c"
    assert [e.get("name") for e in root.findall("interfaces/interface")] == ["lo", "eth0"]
    assert next(e.get("address") for e in root.findall("ip_addresses/ip_address")) == "127.0.0.1"

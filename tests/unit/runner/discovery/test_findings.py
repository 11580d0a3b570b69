"""The identification / exploration sensor: probe findings, through an ECC input, laid over the device."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from midprobe.probes.snmp.explore import EXPLORE_TOPIC as SNMP_EXPLORE
from midprobe.probes.snmp.explore import SnmpExploreResult, encode_exploration, exploration_from_varbinds
from midprobe.probes.snmp.walkfile import parse_walk
from midprobe.probes.ssh.explore import encode_inventory, inventory
from midprobe.runner.cmdb.model import DiscoveredDevice, NetworkInterface
from midprobe.runner.discovery.sensors import (
    connection_hints,
    device_from_json,
    device_to_json,
    read_findings,
    with_findings,
)
from midprobe.runner.ecc.payload import decode_input_payload, encode_input_payload
from tests.unit.probes.ssh.test_command import connection_info

ROOT = Path(__file__).resolve().parents[4]
CLASSIFIED = DiscoveredDevice(
    "cmdb_ci_ip_switch",
    "switch1",
    ip_address="198.18.0.11",
    interfaces=(NetworkInterface("Gi1-0-1", None),),
    attributes={"manufacturer": "Cisco"},
)


def _through_the_queue(*results: ET.Element) -> object:
    return decode_input_payload(encode_input_payload(list(results), probe_time_ms=0))


def _snmp_result(walk: str) -> ET.Element:
    found = exploration_from_varbinds(parse_walk((ROOT / "fixtures" / "snmp" / "lab" / walk).read_text()))
    result = SnmpExploreResult(SNMP_EXPLORE, "198.18.0.11", "198.18.0.11", 161, "2c", "lab-ro", found)
    element = encode_exploration(result)
    element.set("probe", "SNMPIdentity")
    return element


def test_snmp_findings_give_adapters_with_macs_and_addresses_and_drop_loopback() -> None:
    findings = read_findings(_through_the_queue(_snmp_result("switch1-v2c.walk")))  # type: ignore[arg-type]
    by_name = {i.name: i for i in findings.interfaces}
    assert "lo" not in by_name  # softwareLoopback is no adapter, 127.0.0.1 no address of the device
    assert by_name["eth0"] == NetworkInterface("eth0", "ba:3f:b2:08:55:43", ("198.18.0.11",))
    assert {f"Gi1-0-{n}" for n in range(1, 9)} <= set(by_name)
    assert findings.host_name == "switch1"
    assert findings.answered == ("SNMPIdentity",)
    device = with_findings(CLASSIFIED, findings)
    assert device.primary_mac == "ba:3f:b2:08:55:43"  # identification now has MACs to go by
    assert device.ip_addresses == frozenset({"198.18.0.11"})
    assert device.attributes["manufacturer"] == "Cisco"  # kept from classification


def test_a_device_known_only_by_its_address_takes_the_name_it_reports() -> None:
    findings = read_findings(_through_the_queue(_snmp_result("switch1-v2c.walk")))  # type: ignore[arg-type]
    unnamed = DiscoveredDevice("cmdb_ci_ip_switch", "198.18.0.11", ip_address="198.18.0.11")
    assert with_findings(unnamed, findings).name == "switch1"
    named = DiscoveredDevice("cmdb_ci_ip_switch", "core-sw.example.test", ip_address="198.18.0.11")
    assert with_findings(named, findings).name == "core-sw.example.test"  # a name already known stays


def test_a_printer_serial_becomes_the_identity_serial() -> None:
    findings = read_findings(_through_the_queue(_snmp_result("printer1-v2c.walk")))  # type: ignore[arg-type]
    assert with_findings(CLASSIFIED, findings).identity_serial == "PHBLB12345"


def test_ssh_findings_and_a_failed_probe_of_the_same_multiprobe() -> None:
    recorded = ROOT / "fixtures" / "ssh" / "debian12-explore"
    found = inventory({path.stem: path.read_text() for path in recorded.glob("*.txt")})
    element = encode_inventory(found, connection_info())
    element.set("probe", "SSHExplore")
    failed = ET.Element("result", probe="SNMPIdentity", error="SNMP agent 198.18.0.10:161 timed out")
    findings = read_findings(_through_the_queue(failed, element))  # type: ignore[arg-type]
    assert findings.failed == {"SNMPIdentity": "SNMP agent 198.18.0.10:161 timed out"}
    assert findings.answered == ("SSHExplore",)
    by_name = {i.name: i for i in findings.interfaces}
    assert set(by_name) == {"eth0", "eth0peer"}  # lo left out
    assert by_name["eth0"].mac_address == "a2:82:3e:e8:c4:b3"
    assert "198.18.0.10" in by_name["eth0"].ip_addresses
    assert all(not a.startswith("fe80") for i in findings.interfaces for a in i.ip_addresses)
    assert findings.attributes["cpu_count"] == str(found.cpu_count)
    assert findings.attributes["ram"] == str(found.memory_mb)


def test_the_device_survives_the_planned_output_meta() -> None:
    device = with_findings(
        CLASSIFIED,
        read_findings(_through_the_queue(_snmp_result("switch1-v2c.walk"))),  # type: ignore[arg-type]
    )
    assert device_from_json(device_to_json(device)) == device


def test_the_credential_and_version_that_classified_are_reused() -> None:
    snmp = decode_input_payload(
        '<results><result><snmp source="x" address="198.18.0.11" port="161" version="3" credential_id="lab-v3"/>'
        "</result></results>"
    )
    assert connection_hints(snmp) == {"credential_id": "lab-v3", "version": "3"}
    ssh = decode_input_payload('<results><result command="uname -a" credential_id="linux-admin"/></results>')
    assert connection_hints(ssh) == {"credential_id": "linux-admin"}
    assert connection_hints(decode_input_payload("<results/>")) == {}

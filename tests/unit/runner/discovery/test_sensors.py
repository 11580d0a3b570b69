"""Sensors read phase results into typed values; classification goes by port priority and behaviour."""

from __future__ import annotations

from pathlib import Path

from midprobe.probes.shazzam import ShazzamHost, ShazzamResult, encode_shazzam
from midprobe.runner.discovery.sensors import (
    ScannedHost,
    classification_order,
    read_nmap_host_scan,
    read_shazzam,
    read_snmp_classify,
)
from midprobe.runner.ecc.payload import decode_input_payload, encode_input_payload

FIXTURES = Path(__file__).resolve().parents[4] / "fixtures" / "ecc"


def test_shazzam_hosts_with_open_ports_and_full_names() -> None:
    hosts = read_shazzam(decode_input_payload((FIXTURES / "input_shazzam.xml").read_bytes()))
    assert hosts == [
        ScannedHost("198.18.0.10", True, True, "ssh1.lab.midprobe.test", frozenset({22}), frozenset({80})),
        ScannedHost("198.18.0.11", True, False, "", frozenset(), frozenset({22})),
    ]


def test_an_incomplete_shazzam_host_carries_why() -> None:
    result = encode_shazzam(
        ShazzamResult(
            hosts=(
                ShazzamHost(
                    "198.18.0.12", False, False, "", "", (), incomplete="the kernel refused 17 sends"
                ),
            ),
            engine="syn",
            ports=(22,),
            hosts_scanned=1,
        )
    )
    (host,) = read_shazzam(decode_input_payload(encode_input_payload(result, probe_time_ms=1)))
    assert (host.alive, host.incomplete) == (False, "the kernel refused 17 sends")


def _host(*ports: int) -> ScannedHost:
    return ScannedHost("198.18.0.10", True, True, "", frozenset(ports))


def test_port_priority_ssh_then_snmp_then_nmap() -> None:
    topics, notes = classification_order(
        _host(22, 80, 135), ("ssh", "snmp", "http", "nmap"), nmap_available=True
    )
    assert topics == ["SSHClassify", "SNMPClassify", "NmapHostScan"]
    assert any("Windows ports [135]" in note for note in notes)
    assert any("HTTP answered" in note for note in notes)


def test_behaviour_and_capabilities_decide_what_is_skipped() -> None:
    topics, notes = classification_order(_host(80), ("ssh", "snmp", "nmap"), nmap_available=False)
    assert topics == ["SNMPClassify"]
    assert "SSHClassify skipped: port 22 is not open" in notes
    assert "NmapHostScan skipped: no suitable MID has the Nmap capability" in notes
    topics, notes = classification_order(_host(22), ("snmp",), nmap_available=True)
    assert topics == ["SNMPClassify"]
    assert "SSHClassify skipped: ssh is not in the schedule's behaviour" in notes


SNMP_RESULT = """<results probe_time="12" result_code="0"><result source="198.18.0.11" address="198.18.0.11" port="161"
 version="3"><snmp/><classification confidence="1.00" ci_class="cmdb_ci_ip_switch" vendor="Cisco"
 sys_object_id=".1.3.6.1.4.1.9.1.1208" sys_name="switch1"><sys_descr>Cisco IOS Software</sys_descr></classification>
 <interfaces><interface index="1" name="Gi1-0-1" mac="AA:BB:CC:00:00:01"/><interface index="2" descr="Vlan1"/>
 <interface index="3" name="Gi1-0-1" mac="zz"/></interfaces></result></results>"""


def test_snmp_classification_becomes_a_device() -> None:
    device = read_snmp_classify(decode_input_payload(SNMP_RESULT), "198.18.0.11", "switch1.lab.example.test")
    assert device is not None
    assert (device.sys_class_name, device.name, device.ip_address) == (
        "cmdb_ci_ip_switch",
        "switch1",
        "198.18.0.11",
    )
    assert device.attributes["manufacturer"] == "Cisco"
    assert [(i.name, i.mac_address) for i in device.interfaces] == [
        ("Gi1-0-1", "aa:bb:cc:00:00:01"),
        ("Vlan1", None),
    ]
    unclassified = SNMP_RESULT.replace(' ci_class="cmdb_ci_ip_switch"', "")
    assert read_snmp_classify(decode_input_payload(unclassified), "198.18.0.11") is None


def test_nmap_host_scan_of_another_address_is_not_this_device() -> None:
    payload = decode_input_payload(
        '<results><result><host address="198.18.0.13" status="up" ci_class="cmdb_ci_linux_server">'
        '<os name="Linux 5.4" accuracy="98"/></host></result></results>'
    )
    device = read_nmap_host_scan(payload, "198.18.0.13")
    assert device is not None
    assert (device.sys_class_name, device.name, device.attributes["os"]) == (
        "cmdb_ci_linux_server",
        "198.18.0.13",
        "Linux 5.4",
    )
    assert read_nmap_host_scan(payload, "198.18.0.14") is None

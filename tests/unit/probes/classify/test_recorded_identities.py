"""The rules on identities recorded from real devices (snmpsim-data): the signal that decides."""

from __future__ import annotations

import pytest

from midprobe.capabilities.errors import ConfigError
from midprobe.probes.classify import Classifier, Observations, default_classifier
from midprobe.probes.classify.enterprises import enterprise_name, enterprise_of
from midprobe.probes.snmp.facts import DeviceFacts, classify


def _oid(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


@pytest.mark.parametrize(
    ("sys_object_id", "sys_descr", "facts", "ci_class", "vendor", "signal"),
    [
        (
            "1.3.6.1.4.1.318.1.3.4.8",
            "APC Web/SNMP Management Card (MN:AP7902B)",
            {},
            "cmdb_ci_ups",
            "American Power Conversion Corp.",
            "enterprise 318",
        ),
        (
            "1.3.6.1.4.1.2468.1.2.1",
            "WebPower Pro II Mini Card v5.27",
            {"ups_mib": True},
            "cmdb_ci_ups",
            "Ingrasys",
            "UPS-MIB",
        ),
        (
            "1.3.6.1.4.1.1588.2.1.1.1",
            "10.40.1.39",
            {},
            "cmdb_ci_ip_switch",
            "Brocade",
            "Brocade Fibre Channel switch",
        ),
        (
            "1.3.6.1.4.1.25461.2.3.9",
            "Palo Alto Networks PA-5000 series firewall",
            {},
            "cmdb_ci_ip_firewall",
            "PALO ALTO NETWORKS",
            "firewall",
        ),
        (
            "1.3.6.1.4.1.2636.1.1.1.2.21",
            "Juniper Networks, Inc. mx960 internet router, kernel JUNOS 12.3R6.6",
            {"ip_forwarding": 1},
            "cmdb_ci_ip_router",
            "Juniper",
            "Juniper",
        ),
        (
            "1.3.6.1.4.1.2011.2.240.7",
            "Huawei ACU2 Huawei Versatile Routing Platform Software VRP (R)",
            {"bridge_ports": 10827},
            "cmdb_ci_ip_router",
            "Huawei",
            "routing platform",
        ),
        (
            "1.3.6.1.4.1.14823.1.1.40",
            "ArubaOS (MODEL: Aruba7010), Version 8.3.0.0",
            {},
            "cmdb_ci_wap_network",
            "Aruba, a Hewlett Packard Enterprise company",
            "enterprise 14823",
        ),
        (
            "1.3.6.1.4.1.789.2.3",
            "NetApp Release 8.2.3 7-Mode",
            {},
            "cmdb_ci_storage_server",
            "Network Appliance Corporation",
            "enterprise 789",
        ),
        (
            "1.3.6.1.4.1.9.12.3.1.3.1084",
            "Cisco NX-OS(tm) n5000, Software (n5000-uk9)",
            {"bridge_ports": 27},
            "cmdb_ci_ip_switch",
            "Cisco",
            "switch",
        ),
        (
            "1.3.6.1.4.1.8072.3.2.10",
            "Linux DCBC-600 3.2.60 #3 SMP Mon Mar 11 09:17:19 CST 2019 x86_64",
            {"ip_forwarding": 1},
            "cmdb_ci_linux_server",
            "net-snmp",
            "Linux",
        ),
    ],
)
def test_recorded_devices(
    sys_object_id: str, sys_descr: str, facts: dict[str, object], ci_class: str, vendor: str, signal: str
) -> None:
    found = classify(DeviceFacts(sys_descr=sys_descr, sys_object_id=_oid(sys_object_id), **facts))  # type: ignore[arg-type]
    assert found.ci_class == ci_class
    assert found.vendor == vendor
    assert signal in found.evidence[0]
    assert 0.5 <= found.confidence <= 1.0


def test_an_unknown_device_of_a_known_maker_is_network_gear_named_by_its_enterprise() -> None:
    found = classify(
        DeviceFacts(sys_descr="Data Center 01 Temp Sensor", sys_object_id=_oid("1.3.6.1.4.1.21239.42.1.31"))
    )
    assert found.ci_class == "cmdb_ci_netgear"
    assert found.vendor == "Vertiv"


def test_a_bridge_mib_with_no_ports_outweighs_the_layer_2_bit_of_sys_services() -> None:
    found = classify(
        DeviceFacts(
            sys_object_id=_oid("1.3.6.1.4.1.2011.2.89.5"), sys_services=78, ip_forwarding=1, bridge_ports=0
        )
    )
    assert found.ci_class == "cmdb_ci_ip_router"


def test_enterprise_numbers() -> None:
    assert enterprise_of(".1.3.6.1.4.1.9.1.617") == 9
    assert enterprise_of("1.3.6.1.4.1.318") == 318
    assert enterprise_of("1.3.6.1.2.1.1") is None
    assert enterprise_of(None) is None
    assert enterprise_name(534) == "Eaton Corporation"
    assert enterprise_name(0) is None


def test_enterprise_condition_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"when\.enterprise"):
        Classifier.from_toml('[[rule]]\nclass = "cmdb_ci_ups"\nweight = 1\nwhen.enterprise = ["318"]\n')
    rules = Classifier.from_toml('[[rule]]\nclass = "cmdb_ci_ups"\nweight = 1\nwhen.enterprise = [318]\n')
    found = rules.classify(Observations(address="", sys_object_id=".1.3.6.1.4.1.318.1"))
    assert found.ci_class == "cmdb_ci_ups"
    assert found.evidence == ("cmdb_ci_ups",)
    assert default_classifier().classify(Observations(address="")).vendor is None

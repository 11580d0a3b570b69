"""HostSweep requests: parameter validation, the safety policy, and the ECC result it encodes."""

from __future__ import annotations

import asyncio
import ipaddress
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from midprobe.capabilities.errors import ProbeParameterError, TargetNotAllowed
from midprobe.probes.base import ProbeContext
from midprobe.probes.registry import default_registry
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.sweep.host_sweep import (
    PROBE,
    AliveHost,
    SweepResult,
    encode_sweep,
    parse_sweep_params,
)
from midprobe.probes.sweep.tcp_ping import DEFAULT_PING_PORTS


def test_defaults_follow_the_documented_values() -> None:
    params = parse_sweep_params("198.18.4.0/22", {})
    assert params.targets.count() == 1024
    assert (params.method, params.wait_ms, params.retries, params.rate) == ("auto", 1000, None, 0)
    assert params.tcp_ports == DEFAULT_PING_PORTS == (22, 80, 443, 135, 445, 3389)
    assert params.sweep_timeout_ms == 60_000


def test_the_targets_parameter_wins_over_source_and_excludes_apply() -> None:
    params = parse_sweep_params(
        "198.18.9.9",
        {"targets": "198.18.0.0/24", "exclude": "198.18.0.0-9", "method": "ICMP", "tcp_ports": "22,80-81"},
    )
    assert params.targets.count() == 246
    assert params.method == "icmp"
    assert params.tcp_ports == (22, 80, 81)


@pytest.mark.parametrize(
    ("parameters", "named", "message"),
    [
        ({}, "targets", "nothing to sweep"),
        ({"targets": "198.18.0.300"}, "targets", "198.18.0.300"),
        ({"targets": "198.18.0.0/24", "method": "syn"}, "method", "'syn' is not one of auto, arp, icmp, tcp"),
        ({"targets": "198.18.0.1", "wait": "soon"}, "wait", "not a whole number"),
        ({"targets": "198.18.0.1", "retries": "11"}, "retries", "outside 0..10"),
        ({"targets": "198.18.0.1", "rate": "-1"}, "rate", "outside"),
        ({"targets": "198.18.0.1", "tcp_ports": "U:53"}, "tcp_ports", "TCP ports only"),
        ({"targets": "198.18.0.1", "tcp_ports": "1-100"}, "tcp_ports", "at most 64"),
        ({"targets": "198.18.0.1", "tcp_ports": "70000"}, "tcp_ports", "outside 1-65535"),
        ({"targets": "198.18.0.0/15"}, "targets", "131072 addresses, more than max_addresses=65536"),
        ({"targets": "2001:db8::1", "method": "arp"}, "targets", "ARP is IPv4 only"),
        ({"targets": "198.18.0.1 2001:db8::1"}, "targets", "sweep each family on its own"),
    ],
)
def test_bad_requests_name_the_parameter(parameters: dict[str, str], named: str, message: str) -> None:
    with pytest.raises(ProbeParameterError, match=message) as caught:
        parse_sweep_params("", parameters)
    assert caught.value.parameter == named
    assert "\n" not in str(caught.value)


def test_ipv6_and_huge_ranges_are_allowed_when_asked_for_explicitly() -> None:
    assert parse_sweep_params("2001:db8::1", {"method": "tcp"}).method == "tcp"
    assert parse_sweep_params("198.18.0.1 2001:db8::1", {"method": "tcp"}).targets.count() == 2
    assert parse_sweep_params("2001:db8::/120", {}).method == "auto"  # ICMPv6 echo
    assert parse_sweep_params("2001:db8::/120", {"method": "icmp"}).targets.count() == 256
    assert parse_sweep_params("198.18.0.0/15", {"max_addresses": "131072"}).targets.count() == 131072


def test_a_target_outside_the_policy_is_refused_before_anything_is_sent() -> None:
    params = parse_sweep_params("198.18.0.0/24 192.0.2.0/30", {"method": "tcp"})
    context = ProbeContext(policy=TargetPolicy.lab())
    with pytest.raises(TargetNotAllowed, match=r"target 192\.0\.2\.0 is outside the allowed networks"):
        asyncio.run(PROBE.run(params, context))


def test_the_probe_is_registered_under_its_topic() -> None:
    assert "HostSweep" in default_registry().topics()
    assert default_registry().get("HostSweep") is PROBE


def _result(alive: tuple[AliveHost, ...], **changes: object) -> SweepResult:
    fields: dict[str, object] = {
        "targets": "198.18.0.0/24",
        "method": "auto",
        "methods_used": ("arp", "icmp"),
        "raw_sockets": True,
        "fallback_reason": None,
        "addresses": 256,
        "alive": alive,
        "unreachable": 0,
        "silent": 256 - len(alive),
        "unchecked": 0,
        "probes_sent": 700,
        "elapsed_ms": 1600,
        "complete": True,
    }
    fields.update(changes)
    return SweepResult(**fields)  # type: ignore[arg-type]


def test_the_result_lists_alive_hosts_with_method_rtt_and_mac() -> None:
    result = _result(
        (
            AliveHost("198.18.0.1", "icmp", 0.026),
            AliveHost(
                "198.18.0.10", "arp", 0.018, mac="02:00:00:00:00:0a", host_name="linux1.lab.example.test"
            ),
        )
    )
    element = PROBE.encode_results(result)[0]
    sweep = element.find("sweep")
    assert sweep is not None
    assert sweep.attrib == {
        "targets": "198.18.0.0/24",
        "method": "auto",
        "methods_used": "arp,icmp",
        "raw_sockets": "true",
        "addresses": "256",
        "alive": "2",
        "unreachable": "0",
        "silent": "254",
        "unchecked": "0",
        "probes_sent": "700",
        "elapsed_ms": "1600",
        "complete": "true",
    }
    hosts = [host.attrib for host in sweep.iter("host")]
    assert hosts == [
        {"ip": "198.18.0.1", "alive": "true", "method": "icmp", "rtt_ms": "0.026"},
        {
            "ip": "198.18.0.10",
            "alive": "true",
            "method": "arp",
            "rtt_ms": "0.018",
            "hostName": "linux1.lab.example.test",
            "mac": "02:00:00:00:00:0a",
        },
    ]


def test_a_tcp_fallback_says_so_and_names_the_port_that_answered() -> None:
    result = _result(
        (AliveHost("198.18.0.10", "tcp-connect", 0.2, port=22, port_state="open"),),
        method="auto",
        methods_used=("tcp-connect",),
        raw_sockets=False,
        fallback_reason="raw sockets are not permitted (needs root or CAP_NET_RAW); swept with TCP connect",
        complete=False,
        unchecked=12,
    )
    sweep = encode_sweep(result).find("sweep")
    assert sweep is not None
    assert sweep.get("fallback", "").startswith("raw sockets are not permitted")
    assert (sweep.get("methods_used"), sweep.get("raw_sockets"), sweep.get("complete")) == (
        "tcp-connect",
        "false",
        "false",
    )
    host = sweep.find("host")
    assert host is not None
    assert (host.get("port"), host.get("port_result")) == ("22", "open")


@given(st.lists(st.integers(0, 2**32 - 1), unique=True, max_size=20))
def test_every_alive_address_appears_once_in_the_xml(addresses: list[int]) -> None:
    alive = tuple(AliveHost(str(ipaddress.IPv4Address(a)), "icmp", 1.5) for a in sorted(addresses))
    text = ET.tostring(encode_sweep(_result(alive)), encoding="unicode")
    parsed = ET.fromstring(text)
    assert [h.get("ip") for h in parsed.iter("host")] == [h.address for h in alive]

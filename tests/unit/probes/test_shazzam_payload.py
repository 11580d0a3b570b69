"""Shazzam without the network: parameters, the XML nesting of results, and its decoder."""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from midprobe.capabilities.errors import PayloadError, ProbeParameterError
from midprobe.probes.registry import BUILTIN_PROBE_MODULES
from midprobe.probes.shazzam import (
    DEFAULT_PORTS,
    PROBE,
    ShazzamHost,
    ShazzamResult,
    ShazzamScanner,
    decode_results,
    encode_host,
    to_shazzam_host,
)
from midprobe.probes.tcpscan.common import HostScan


def scanned(open_ports: tuple[int, ...], refused: tuple[int, ...], name: str | None = None) -> HostScan:
    return HostScan(
        address=ipaddress.ip_address("198.18.0.10"),
        host_name=name,
        open_ports=open_ports,
        refused_ports=refused,
        unanswered=0,
        unreachable=False,
        engine="connect",
    )


def test_shazzam_is_a_builtin_topic() -> None:
    assert "midprobe.probes.shazzam" in BUILTIN_PROBE_MODULES
    assert PROBE.topic == "Shazzam"
    assert PROBE.required_capabilities == ()


def test_defaults_are_the_discovery_ports_and_a_one_second_connect_wait() -> None:
    params = PROBE.parse_params("198.18.0.0/24", {"topic": "Shazzam", "sys_id": "ab" * 16})
    assert params.ports == (22, 23, 25, 80, 135, 139, 443, 445, 515, 631, 3389, 5985, 5986, 8080, 9100)
    assert DEFAULT_PORTS.startswith("22,23,25,80")
    assert params.connect_wait_ms == 1000
    assert params.engine == "auto"
    assert params.retries == 2
    assert params.targets.count() == 256
    assert params.lists_refused
    options = params.scan_options(deadline=None)
    assert options.connect_wait == 1.0


def test_parameters_map_onto_the_scan() -> None:
    params = PROBE.parse_params(
        "198.18.0.0/28",
        {
            "ports": "T:22,80,U:161",
            "connect_wait": "250",
            "engine": "Connect",
            "retries": "0",
            "rate": "500",
            "exclude": "198.18.0.0-7",
            "report_refused": "false",
            "resolve_names": "yes",
        },
    )
    assert params.ports == (22, 80)  # UDP is not scanned by GenericTCP
    assert params.engine == "connect"
    assert params.targets.count() == 8
    assert not params.lists_refused
    assert params.resolve_names
    options = params.scan_options(deadline=12.5)
    assert (options.connect_wait, options.retries, options.rate, options.deadline) == (0.25, 0, 500.0, 12.5)


def test_refused_ports_are_left_out_of_big_port_lists_unless_asked() -> None:
    assert not PROBE.parse_params("198.18.0.10", {"ports": "-"}).lists_refused
    assert PROBE.parse_params("198.18.0.10", {"ports": "-", "report_refused": "true"}).lists_refused


@pytest.mark.parametrize(
    ("source", "parameters", "named"),
    [
        ("198.18.0.300", {}, "'source'"),
        ("198.18.0.1", {"ports": "22,x"}, "'ports'"),
        ("198.18.0.1", {"ports": "U:161"}, "'ports'"),
        ("198.18.0.1", {"connect_wait": "0"}, "'connect_wait'"),
        ("198.18.0.1", {"connect_wait": "soon"}, "'connect_wait'"),
        ("198.18.0.1", {"engine": "udp"}, "'engine'"),
        ("198.18.0.1", {"retries": "99"}, "'retries'"),
        ("198.18.0.1", {"rate": "-5"}, "'rate'"),
        ("198.18.0.1", {"report_refused": "maybe"}, "'report_refused'"),
        ("198.18.0.1", {"exclude": "1.2.3"}, "'source'"),
    ],
)
def test_bad_parameters_name_the_parameter(source: str, parameters: dict[str, str], named: str) -> None:
    with pytest.raises(ProbeParameterError) as caught:
        PROBE.parse_params(source, parameters)
    assert named in str(caught.value)


def test_host_view_lists_open_and_refused_ports_in_port_order() -> None:
    host = to_shazzam_host(
        scanned((80, 22), (23,)), list_refused=True, name="linux1.sandiego.lab.example.test"
    )
    assert (host.ip, host.alive, host.active) == ("198.18.0.10", True, True)
    assert (host.host_name, host.domain_name) == ("linux1", "sandiego.lab.example.test")
    assert [(s.port, s.result, s.portprobe) for s in host.scanners] == [
        (22, "open", "ssh"),
        (23, "refused", "telnet"),
        (80, "open", "http"),
    ]
    quiet = to_shazzam_host(scanned((), (23, 25)), list_refused=False)
    assert (quiet.alive, quiet.active, quiet.scanners) == (True, False, ())


def test_xml_nesting_is_result_host_scanner() -> None:
    host = to_shazzam_host(scanned((22,), (23,)), list_refused=True, name="web1.lab.example.test")
    result = ShazzamResult(hosts=(host,), engine="syn", ports=(22, 23, 24), hosts_scanned=4)
    (element,) = PROBE.encode_results(result)
    assert ET.tostring(element, encoding="unicode") == (
        '<result engine="syn" ports="22-24" hosts_scanned="4" hosts_alive="1">'
        '<host ip="198.18.0.10" alive="true" active="true" hostName="web1" domainName="lab.example.test">'
        '<scanner name="GenericTCP" port="22" portprobe="ssh" protocol="tcp" result="open" service="ssh" />'
        '<scanner name="GenericTCP" port="23" portprobe="telnet" protocol="tcp" result="refused" '
        'service="telnet" />'
        "</host></result>"
    )


def test_decoder_rejects_what_the_encoder_never_writes() -> None:
    with pytest.raises(PayloadError, match="exactly one <result>"):
        decode_results([])
    bad = ET.fromstring(
        '<result engine="syn" ports="22" hosts_scanned="1" hosts_alive="1">'
        '<host ip="198.18.0.10" alive="yes" active="true"/></result>'
    )
    with pytest.raises(PayloadError, match="alive='yes'"):
        decode_results([bad])


scanner_strategy = st.builds(
    ShazzamScanner,
    port=st.integers(1, 65535),
    result=st.sampled_from(["open", "refused"]),
    portprobe=st.sampled_from(["ssh", "http", "unknown"]),
    service=st.sampled_from(["ssh", "http", "unknown"]),
)
host_strategy = st.builds(
    ShazzamHost,
    ip=st.ip_addresses().map(str),
    alive=st.booleans(),
    active=st.booleans(),
    host_name=st.text(st.characters(codec="ascii", exclude_categories=["Cc", "Cs"]), max_size=12),
    domain_name=st.sampled_from(["", "lab.example.test"]),
    scanners=st.lists(scanner_strategy, max_size=5).map(tuple),
)


@given(
    hosts=st.lists(host_strategy, max_size=4).map(tuple),
    engine=st.sampled_from(["syn", "connect"]),
    ports=st.sets(st.integers(1, 65535), min_size=1, max_size=30).map(lambda p: tuple(sorted(p))),
    hosts_scanned=st.integers(0, 1 << 20),
)
def test_encode_then_decode_gives_back_the_result(
    hosts: tuple[ShazzamHost, ...], engine: str, ports: tuple[int, ...], hosts_scanned: int
) -> None:
    result = ShazzamResult(hosts=hosts, engine=engine, ports=ports, hosts_scanned=hosts_scanned)
    text = ET.tostring(PROBE.encode_results(result)[0], encoding="unicode")
    assert decode_results([ET.fromstring(text)]) == result
    for host in hosts:
        assert encode_host(host).tag == "host"

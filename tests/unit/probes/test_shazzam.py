"""Shazzam without the network: parameters, the XML nesting of results, its decoder, and how the
BannerTCP/HTTP/HTTPS/SNMP readings become scanner elements."""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from midprobe.capabilities.errors import PayloadError, ProbeParameterError
from midprobe.probes.banner import HttpHead, PortBanner, SnmpIdentity, TlsPeer
from midprobe.probes.registry import BUILTIN_PROBE_MODULES
from midprobe.probes.shazzam import (
    DEFAULT_PORTS,
    DEFAULT_SCANNERS,
    PROBE,
    ShazzamHost,
    ShazzamResult,
    ShazzamScanner,
    add_scanners,
    decode_results,
    encode_host,
    reading_scanners,
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
    # The readers of open ports run by default; the SNMP tap (community public) never does.
    assert params.scanners == DEFAULT_SCANNERS == ("GenericTCP", "BannerTCP", "HTTP", "HTTPS")
    assert not params.snmp_public
    assert (params.banner_wait_ms, params.snmp_wait_ms, params.snmp_taps) == (1500, 1000, 2)
    assert (params.probe_silent, params.host_concurrency) == (False, 32)


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
        ("198.18.0.1", {"scanners": "GenericTCP,Telnet"}, "'scanners'"),
        ("198.18.0.1", {"scanners": "NBT"}, "'scanners'"),
        ("198.18.0.1", {"scanners": "GenericTCP,SNMP"}, "'scanners'"),
        ("198.18.0.1", {"snmp_public": "perhaps"}, "'snmp_public'"),
        ("198.18.0.1", {"snmp_version": "3"}, "'snmp_version'"),
        ("198.18.0.1", {"banner_wait": "0"}, "'banner_wait'"),
        ("198.18.0.1", {"snmp_wait": "600000"}, "'snmp_wait'"),
        ("198.18.0.1", {"snmp_taps": "0"}, "'snmp_taps'"),
        ("198.18.0.1", {"host_concurrency": "0"}, "'host_concurrency'"),
    ],
)
def test_bad_parameters_name_the_parameter(source: str, parameters: dict[str, str], named: str) -> None:
    with pytest.raises(ProbeParameterError) as caught:
        PROBE.parse_params(source, parameters)
    assert named in str(caught.value)


def test_scanner_list_is_read_in_any_case_and_generic_tcp_always_runs() -> None:
    params = PROBE.parse_params("198.18.0.10", {"scanners": "bannertcp, http"})
    assert params.scanners == ("GenericTCP", "BannerTCP", "HTTP")
    assert PROBE.parse_params("198.18.0.10", {"scanners": "GenericTCP"}).scanners == ("GenericTCP",)
    with pytest.raises(ProbeParameterError, match="NBT scanner is not implemented"):
        PROBE.parse_params("198.18.0.10", {"scanners": "GenericTCP nbt"})
    with pytest.raises(ProbeParameterError, match="only with snmp_public=true"):
        PROBE.parse_params("198.18.0.10", {"scanners": "SNMP"})


def test_snmp_public_turns_the_tap_on_and_is_the_only_way_to() -> None:
    params = PROBE.parse_params(
        "198.18.0.0/24",
        {"snmp_public": "true", "snmp_version": "1", "snmp_wait": "300", "snmp_taps": "3"},
    )
    assert params.snmp_public
    assert params.scanners == ("GenericTCP", "BannerTCP", "HTTP", "HTTPS", "SNMP")
    named = PROBE.parse_params("198.18.0.10", {"snmp_public": "yes", "scanners": "GenericTCP,snmp"})
    assert named.scanners == ("GenericTCP", "SNMP")
    # A silent address still gets the tap; with snmp_public it is the only thing asked of it.
    request = params.banner_params("198.18.0.77", ())
    assert request is not None
    assert (request.host, request.ports, request.snmp_public, request.snmp_version) == (
        "198.18.0.77",
        (),
        True,
        "1",
    )
    assert (request.snmp_wait_ms, request.snmp_taps) == (300, 3)
    assert PROBE.parse_params("198.18.0.10", {}).banner_params("198.18.0.77", ()) is None


def test_readers_skip_print_ports_and_ports_of_scanners_not_asked_for() -> None:
    params = PROBE.parse_params("198.18.0.12", {"banner_wait": "700", "connect_wait": "400"})
    request = params.banner_params("198.18.0.12", (22, 80, 443, 9100, 9107, 8080))
    assert request is not None
    assert request.ports == (22, 80, 443, 8080)  # raw print ports 9100-9107 get nothing more
    assert (request.connect_wait_ms, request.banner_wait_ms, request.snmp_public) == (400, 700, False)
    assert not request.probe_silent
    assert params.banner_params("198.18.0.12", (9100,)) is None

    web_only = PROBE.parse_params("198.18.0.12", {"scanners": "HTTP", "probe_silent": "true"})
    assert web_only.reader_ports((22, 80, 443, 8080)) == (80, 8080)
    only_banners = PROBE.parse_params("198.18.0.12", {"scanners": "BannerTCP", "probe_silent": "true"})
    assert only_banners.reader_ports((22, 80, 443)) == (22,)
    only_banners_request = only_banners.banner_params("198.18.0.12", (22,))
    assert only_banners_request is not None
    assert not only_banners_request.probe_silent  # HEAD goes to silent ports only when HTTP runs
    generic = PROBE.parse_params("198.18.0.12", {"scanners": "GenericTCP"})
    assert generic.banner_params("198.18.0.12", (22, 80)) is None


SSH_BANNER = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10"


def test_readings_become_scanner_elements_only_when_something_was_read() -> None:
    readings = [
        PortBanner(22, "tcp", "BannerTCP", "open", "ssh", banner=SSH_BANNER),
        PortBanner(
            80, "tcp", "HTTP", "open", "http", banner="Apache/2.4.62 (Debian)",
            http=HttpHead("HTTP/1.0", 200, "OK", "Apache/2.4.62 (Debian)"),
        ),
        PortBanner(
            8443, "tcp", "HTTPS", "open", "https", http=HttpHead("HTTP/1.1", 204, "No Content", None),
            tls=TlsPeer("TLSv1.3", "TLS_AES_256_GCM_SHA384"),
        ),
        # a silent port that answered the HEAD request (probe_silent): an HTTP reading
        PortBanner(
            4567, "tcp", "BannerTCP", "open", "http", banner="tiny",
            http=HttpHead("HTTP/1.1", 404, "Not Found", "tiny"),
        ),
        PortBanner(2100, "tcp", "BannerTCP", "open", "ftp", banner="220 lab FTP ready"),
        PortBanner(25, "tcp", "BannerTCP", "open", "smtp", detail="silent for 1500 ms"),
        PortBanner(443, "tcp", "HTTPS", "open", "ssl/unknown", detail="TLS: handshake failure"),
        PortBanner(23, "tcp", "BannerTCP", "refused", "telnet"),
        PortBanner(8080, "tcp", "HTTP", "filtered", "http-proxy", detail="no answer in 1000 ms"),
        PortBanner(161, "udp", "SNMP", "filtered", "snmp", detail="no answer to community public"),
    ]  # fmt: skip
    scanners = reading_scanners(readings)
    assert [(s.name, s.port, s.protocol, s.service, s.banner_text, s.http_status) for s in scanners] == [
        ("BannerTCP", 22, "tcp", "ssh", SSH_BANNER, None),
        ("HTTP", 80, "tcp", "http", "Apache/2.4.62 (Debian)", 200),
        ("HTTPS", 8443, "tcp", "https", "", 204),
        ("HTTP", 4567, "tcp", "http", "tiny", 404),
        ("BannerTCP", 2100, "tcp", "ftp", "220 lab FTP ready", None),
    ]
    assert {s.result for s in scanners} == {"open"}
    assert [s.portprobe for s in scanners] == ["ssh", "http", "https-alt", "unknown", "unknown"]

    answered = PortBanner(
        161, "udp", "SNMP", "open", "snmp", banner="HP ETHERNET MULTI-ENVIRONMENT",
        snmp=SnmpIdentity(".1.3.6.1.4.1.11.2.3.9.1", "HP ETHERNET MULTI-ENVIRONMENT"),
    )  # fmt: skip
    (snmp,) = reading_scanners([answered])
    assert (snmp.name, snmp.port, snmp.protocol, snmp.portprobe, snmp.service, snmp.result) == (
        "SNMP",
        161,
        "udp",
        "snmp",
        "snmp",
        "open",
    )
    assert snmp.sys_object_id == ".1.3.6.1.4.1.11.2.3.9.1"


def test_a_host_that_only_answers_the_snmp_tap_is_alive_but_not_active() -> None:
    silent = to_shazzam_host(scanned((), ()), list_refused=True, name="printer1.lab.example.test")
    assert not silent.alive
    tap = ShazzamScanner(161, "open", "snmp", "snmp", "SNMP", "udp", sys_object_id=".1.3.6.1.4.1.11.2.3.9.1")
    host = add_scanners(silent, [tap])
    assert (host.alive, host.active, host.open_ports, host.scanners) == (True, False, (), (tap,))
    assert add_scanners(silent, []) == silent


def test_readings_follow_the_generic_tcp_element_of_their_port_and_udp_comes_last() -> None:
    host = to_shazzam_host(scanned((22, 80, 9100), (23,)), list_refused=True)
    readings = reading_scanners(
        [
            PortBanner(
                161, "udp", "SNMP", "open", "snmp", snmp=SnmpIdentity(".1.3.6.1.4.1.8072.3.2.10", None)
            ),
            PortBanner(80, "tcp", "HTTP", "open", "http", http=HttpHead("HTTP/1.0", 200, "OK", "x")),
            PortBanner(22, "tcp", "BannerTCP", "open", "ssh", banner=SSH_BANNER),
        ]
    )
    combined = add_scanners(host, readings)
    assert [(s.port, s.name) for s in combined.scanners] == [
        (22, "GenericTCP"),
        (22, "BannerTCP"),
        (23, "GenericTCP"),
        (80, "GenericTCP"),
        (80, "HTTP"),
        (9100, "GenericTCP"),
        (161, "SNMP"),
    ]
    assert combined.open_ports == (22, 80, 9100)  # GenericTCP's verdicts, each port once
    assert (combined.alive, combined.active) == (True, True)


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


def test_readings_are_attributes_of_their_scanner_elements() -> None:
    tcp = to_shazzam_host(scanned((22, 80), ()), list_refused=True)
    host = add_scanners(
        tcp,
        [
            ShazzamScanner(22, "open", "ssh", "ssh", "BannerTCP", banner_text=SSH_BANNER),
            ShazzamScanner(80, "open", "http", "http", "HTTP", banner_text="Apache", http_status=200),
            ShazzamScanner(
                161, "open", "snmp", "snmp", "SNMP", "udp", sys_object_id=".1.3.6.1.4.1.8072.3.2.10"
            ),
        ],
    )
    assert ET.tostring(encode_host(host), encoding="unicode") == (
        '<host ip="198.18.0.10" alive="true" active="true" hostName="" domainName="">'
        '<scanner name="GenericTCP" port="22" portprobe="ssh" protocol="tcp" result="open" service="ssh" />'
        '<scanner name="BannerTCP" port="22" portprobe="ssh" protocol="tcp" result="open" service="ssh" '
        f'banner_text="{SSH_BANNER}" />'
        '<scanner name="GenericTCP" port="80" portprobe="http" protocol="tcp" result="open" service="http" />'
        '<scanner name="HTTP" port="80" portprobe="http" protocol="tcp" result="open" service="http" '
        'banner_text="Apache" http_status="200" />'
        '<scanner name="SNMP" port="161" portprobe="snmp" protocol="udp" result="open" service="snmp" '
        'sysObjectID=".1.3.6.1.4.1.8072.3.2.10" />'
        "</host>"
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
    bad_status = ET.fromstring(
        '<result engine="syn" ports="80" hosts_scanned="1" hosts_alive="1">'
        '<host ip="198.18.0.10" alive="true" active="true"><scanner name="HTTP" port="80" portprobe="http" '
        'protocol="tcp" result="open" service="http" http_status="OK"/></host></result>'
    )
    with pytest.raises(PayloadError, match="http_status 'OK'"):
        decode_results([bad_status])


scanner_strategy = st.builds(
    ShazzamScanner,
    port=st.integers(1, 65535),
    result=st.sampled_from(["open", "refused"]),
    portprobe=st.sampled_from(["ssh", "http", "unknown"]),
    service=st.sampled_from(["ssh", "http", "unknown"]),
    name=st.sampled_from(["GenericTCP", "BannerTCP", "HTTP", "HTTPS", "SNMP"]),
    protocol=st.sampled_from(["tcp", "udp"]),
    # what sanitize() lets through: printable text (its escapes are printable too)
    banner_text=st.text(st.characters(exclude_categories=["Cc", "Cs", "Cf", "Zl", "Zp"]), max_size=40),
    http_status=st.none() | st.integers(100, 599),
    sys_object_id=st.none()
    | st.lists(st.integers(0, 1 << 32), min_size=2, max_size=8).map(
        lambda arcs: "." + ".".join(map(str, arcs))
    ),
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

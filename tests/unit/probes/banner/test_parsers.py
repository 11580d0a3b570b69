"""BannerSniff's pure half: banner text, SSH lines, HTTP heads, SNMP identity, certificates, parameters, XML."""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from midprobe.capabilities.errors import ProbeParameterError
from midprobe.probes import banner
from midprobe.probes.banner import (
    PROBE,
    BannerResult,
    HttpHead,
    PortBanner,
    SnmpIdentity,
    TlsPeer,
    describe_certificate,
    guess_service,
    http_request,
    parse_banner_params,
    parse_http_head,
    parse_snmp_identity,
    sanitize,
    scanner_for,
    snmp_identity_request,
    ssh_identification,
)
from midprobe.probes.registry import default_registry
from midprobe.probes.snmp import codec
from midprobe.probes.snmp.values import SnmpType, SnmpValue

# --- banner text ---------------------------------------------------------------------------------


def test_sanitize_escapes_controls_and_drops_the_line_end() -> None:
    assert sanitize(b"220 ftp.example.test ready\r\n") == "220 ftp.example.test ready"
    assert sanitize(b"a\x00b\x1b[1mc\td\\e\r\nsecond") == "a\\x00b\\x1b[1mc\\td\\\\e\\r\\nsecond"
    assert sanitize("Grüße".encode()) == "Grüße"
    assert sanitize(b"caf\xe9") == "café"  # not UTF-8: read as Latin-1
    assert sanitize(b"x" * 5000) == "x" * 1024


@given(st.binary(max_size=300))
def test_sanitized_text_is_always_printable_and_bounded(data: bytes) -> None:
    text = sanitize(data, 200)
    assert len(text) <= 200
    assert text.isprintable() or text == ""


def test_the_ssh_identification_line_is_found_even_after_other_lines() -> None:
    assert ssh_identification(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10\r\n") == (
        "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10"
    )
    # RFC 4253 4.2: a server may send other lines first.
    assert ssh_identification(b"Welcome\r\nSSH-1.99-Cisco-1.25\r\n\x00\x00") == "SSH-1.99-Cisco-1.25"
    assert ssh_identification(b"220 mail ESMTP\r\n") is None


@pytest.mark.parametrize(
    ("port", "greeting", "service"),
    [
        (2222, b"SSH-2.0-dropbear_2022.83\r\n", "ssh"),
        (21, b"220 (vsFTPd 3.0.3)\r\n", "ftp"),
        (2121, b"220 ProFTPD Server ready.\r\n", "ftp"),
        (25, b"220 mail.example.test ESMTP Postfix\r\n", "smtp"),
        (110, b"+OK Dovecot ready.\r\n", "pop3"),
        (143, b"* OK [CAPABILITY IMAP4rev1] Dovecot ready.\r\n", "imap"),
        (5900, b"RFB 003.008\n", "vnc"),
        (23, b"\xff\xfd\x18\xff\xfd\x20", "telnet"),
        (3306, b"J\x00\x00\x00\x0a8.0.36\x00", "mysql"),
        (7777, b"HTTP/1.1 400 Bad Request\r\n", "http"),
        (5432, b"\x00\x01", "postgresql"),  # nothing recognisable: the port's name
        (40000, b"hello", "unknown"),
    ],
)
def test_greetings_point_to_their_service(port: int, greeting: bytes, service: str) -> None:
    assert guess_service(port, greeting) == service


# --- HTTP ----------------------------------------------------------------------------------------


def test_the_request_is_a_head_with_a_host_header() -> None:
    assert http_request("198.18.0.10") == (
        b"HEAD / HTTP/1.0\r\nHost: 198.18.0.10\r\nUser-Agent: midprobe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
    assert b"Host: [2001:db8::1]\r\n" in http_request("2001:db8::1")
    assert b"Host: web1.lab.example.test\r\n" in http_request("web1.lab.example.test")


def test_the_status_line_and_server_header_are_read() -> None:
    head = parse_http_head(
        b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nserver:  Apache/2.4.62 (Debian) \r\n\r\n<html>Server: no</html>"
    )
    assert head == HttpHead("HTTP/1.0", 200, "OK", "Apache/2.4.62 (Debian)")
    assert head.status_line == "HTTP/1.0 200 OK"
    bare = parse_http_head(b"HTTP/1.1 404\n\n")
    assert bare == HttpHead("HTTP/1.1", 404, "", None)
    assert bare.status_line == "HTTP/1.1 404"


@pytest.mark.parametrize("data", [b"", b"SSH-2.0-x\r\n", b"HTTP/1.0 OK\r\n\r\n", b"HTTP/1.0 2000 OK\r\n"])
def test_what_is_not_an_http_response_is_none(data: bytes) -> None:
    assert parse_http_head(data) is None


@given(st.binary(max_size=200))
def test_the_http_parser_never_raises(data: bytes) -> None:
    parse_http_head(b"HTTP/1.0 " + data)


# --- SNMP ----------------------------------------------------------------------------------------

SYS_OBJECT_ID = (1, 3, 6, 1, 2, 1, 1, 2, 0)
SYS_DESCR = (1, 3, 6, 1, 2, 1, 1, 1, 0)


def test_the_snmp_request_asks_public_for_sys_object_id_and_sys_descr() -> None:
    request = snmp_identity_request(4711)
    decoded = codec.decode_response(request)  # the codec reads any v1/v2c message
    assert (decoded.version, decoded.pdu_type, decoded.request_id) == (
        codec.VERSION_2C,
        codec.GET_REQUEST,
        4711,
    )
    assert [oid for oid, _ in decoded.varbinds] == [SYS_OBJECT_ID, SYS_DESCR]
    assert b"\x04\x06public" in request
    assert codec.decode_response(snmp_identity_request(1, "1")).version == codec.VERSION_1


def _response(request_id: int, *varbinds: tuple[tuple[int, ...], SnmpValue]) -> bytes:
    return codec.encode_message(codec.VERSION_2C, b"public", codec.RESPONSE, request_id, list(varbinds))


def test_the_agents_answer_gives_the_identity() -> None:
    data = _response(
        9,
        (SYS_OBJECT_ID, SnmpValue(SnmpType.OBJECT_ID, (1, 3, 6, 1, 4, 1, 9, 1, 1208))),
        (SYS_DESCR, SnmpValue(SnmpType.OCTET_STRING, b"Cisco IOS Software, C2960X\r\nTechnical Support")),
    )
    assert parse_snmp_identity(data, 9) == SnmpIdentity(
        ".1.3.6.1.4.1.9.1.1208", "Cisco IOS Software, C2960X\\r\\nTechnical Support"
    )


def test_another_request_id_or_missing_values_are_handled() -> None:
    data = _response(9, (SYS_OBJECT_ID, SnmpValue(SnmpType.NO_SUCH_OBJECT, None)))
    assert parse_snmp_identity(data, 10) is None
    assert parse_snmp_identity(data, 9) == SnmpIdentity(None, None)
    assert parse_snmp_identity(b"\x30\x03\x02\x01", 9) is None


# --- TLS certificates ----------------------------------------------------------------------------


def _certificate() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "printer1.lab.example.test")])
    issuer = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Lab CA"),
            x509.NameAttribute(NameOID.COMMON_NAME, "ca"),
        ]
    )
    start = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.DER)


def test_the_certificate_subject_issuer_and_expiry_are_described() -> None:
    assert describe_certificate(_certificate()) == (
        "CN=printer1.lab.example.test",
        "CN=ca,O=Lab CA",
        "2026-01-01T00:00:00+00:00",
    )
    assert describe_certificate(b"not a certificate") == (None, None, None)


# --- parameters ----------------------------------------------------------------------------------


def test_parameters_and_their_defaults() -> None:
    params = parse_banner_params("198.18.0.10", {"ports": "22,80,9100"})
    assert params.host == "198.18.0.10"
    assert params.ports == (22, 80, 9100)
    assert not params.snmp_public
    assert (params.connect_wait_ms, params.banner_wait_ms, params.snmp_wait_ms, params.snmp_taps) == (
        1000,
        1500,
        1000,
        2,
    )
    assert params.read_limit == 4096
    only_snmp = parse_banner_params("", {"host": "switch1.lab.example.test", "snmp_public": "TRUE"})
    assert only_snmp.snmp_public
    assert only_snmp.ports == ()
    assert only_snmp.host == "switch1.lab.example.test"


def test_a_silent_port_is_let_go_sooner_on_a_near_host_than_on_a_far_one() -> None:
    params = parse_banner_params("198.18.0.10", {"ports": "22"})
    # A lab host a fraction of a millisecond away: the floors.
    assert params.null_wait(0.0002) < params.probe_wait(0.0002) < 0.5
    # 100 ms away: several round trips, still under banner_wait.
    far = params.null_wait(0.1)
    assert params.null_wait(0.0002) < far < params.banner_wait_ms / 1000
    # 1 s away: never past banner_wait.
    assert params.null_wait(1.0) == params.probe_wait(1.0) == params.banner_wait_ms / 1000
    # The old fixed wait on request: the floor raised to banner_wait.
    fixed = parse_banner_params("198.18.0.10", {"ports": "22", "null_wait": "1500"})
    assert fixed.null_wait(0.0002) == 1.5


@pytest.mark.parametrize(
    ("source", "parameters", "named", "message"),
    [
        ("", {"ports": "22"}, "host", "no host given"),
        ("198.18.0.0/24", {"ports": "22"}, "source", "is not one host"),
        ("198.18.0.10 198.18.0.11", {"ports": "22"}, "source", "is not one host"),
        ("198.18.0.10", {}, "ports", "no ports given"),
        ("198.18.0.10", {"ports": "U:161"}, "ports", "snmp_public=true"),
        ("198.18.0.10", {"ports": "1-2000"}, "ports", "at most 1024"),
        ("198.18.0.10", {"ports": "22", "snmp_public": "maybe"}, "snmp_public", "not true or false"),
        ("198.18.0.10", {"ports": "22", "banner_wait": "0"}, "banner_wait", "outside 10..60000"),
        ("198.18.0.10", {"ports": "22", "null_wait": "5"}, "null_wait", "outside 10..60000"),
        ("198.18.0.10", {"ports": "22", "probe_wait": "x"}, "probe_wait", "not"),
        ("198.18.0.10", {"ports": "22", "read_limit": "1000000"}, "read_limit", "outside 64..65536"),
        ("198.18.0.10", {"ports": "22", "snmp_version": "3"}, "snmp_version", "not one of 1, 2c"),
    ],
)
def test_bad_requests_name_the_parameter(
    source: str, parameters: dict[str, str], named: str, message: str
) -> None:
    with pytest.raises(ProbeParameterError, match=message) as caught:
        parse_banner_params(source, parameters)
    assert caught.value.parameter == named


def test_ports_are_read_the_way_their_service_speaks() -> None:
    assert [scanner_for(p) for p in (22, 80, 443, 8080, 8443, 9100, 5986)] == [
        "BannerTCP",
        "HTTP",
        "HTTPS",
        "HTTP",
        "HTTPS",
        "BannerTCP",
        "HTTPS",
    ]
    assert scanner_for(8081, tls_ports=(8081,)) == "HTTPS"
    assert 9100 in banner.PRINT_PORTS


def test_the_probe_is_registered_under_its_topic() -> None:
    assert default_registry().get("BannerSniff") is PROBE


# --- the result ----------------------------------------------------------------------------------


def test_the_result_is_shazzam_shaped_and_feeds_the_classifier() -> None:
    result = BannerResult(
        address="198.18.0.12",
        host_name="printer1.lab.example.test",
        ports=(
            PortBanner(22, "tcp", "BannerTCP", "open", "ssh", banner="SSH-2.0-OpenSSH_9.2p1"),
            PortBanner(
                443,
                "tcp",
                "HTTPS",
                "open",
                "https",
                banner="HP HTTP Server",
                http=HttpHead("HTTP/1.1", 200, "OK", "HP HTTP Server"),
                tls=TlsPeer(
                    "TLSv1.3", "TLS_AES_256_GCM_SHA384", "CN=printer1", "CN=ca", "2026-01-01T00:00:00+00:00"
                ),
            ),
            PortBanner(9100, "tcp", "BannerTCP", "open", "jetdirect", detail="silent for 1500 ms"),
            PortBanner(23, "tcp", "BannerTCP", "refused", "telnet"),
            PortBanner(
                161,
                "udp",
                "SNMP",
                "open",
                "snmp",
                banner="HP ETHERNET MULTI-ENVIRONMENT",
                snmp=SnmpIdentity(".1.3.6.1.4.1.11.2.3.9.1", "HP ETHERNET MULTI-ENVIRONMENT"),
            ),
        ),
        elapsed_ms=1510,
    )
    assert result.banners() == {22: "SSH-2.0-OpenSSH_9.2p1", 443: "HP HTTP Server"}
    assert result.snmp is not None
    assert result.snmp.sys_object_id == ".1.3.6.1.4.1.11.2.3.9.1"

    element = ET.fromstring(ET.tostring(PROBE.encode_results(result)[0]))
    host = element.find("host")
    assert host is not None
    assert host.attrib == {"ip": "198.18.0.12", "hostName": "printer1.lab.example.test", "elapsed_ms": "1510"}
    scanners = {int(s.get("port", "0")): s for s in host.iter("scanner")}
    assert scanners[22].attrib == {
        "name": "BannerTCP",
        "port": "22",
        "portprobe": "ssh",
        "protocol": "tcp",
        "result": "open",
        "service": "ssh",
        "banner_text": "SSH-2.0-OpenSSH_9.2p1",
    }
    https = scanners[443].attrib
    assert (https["http_status"], https["http_server"], https["http_status_line"]) == (
        "200",
        "HP HTTP Server",
        "HTTP/1.1 200 OK",
    )
    assert (https["tls_version"], https["tls_subject"], https["tls_issuer"]) == (
        "TLSv1.3",
        "CN=printer1",
        "CN=ca",
    )
    assert scanners[9100].get("detail") == "silent for 1500 ms"
    assert "banner_text" not in scanners[9100].attrib
    assert scanners[23].get("result") == "refused"
    snmp = scanners[161]
    assert snmp.get("protocol") == "udp"
    object_id = snmp.find("sysObjectID")
    assert object_id is not None
    assert (object_id.text, object_id.get("oid"), object_id.get("type")) == (
        ".1.3.6.1.4.1.11.2.3.9.1",
        "1.3.6.1.2.1.1.2",
        "SnmpObjectId",
    )
    descr = snmp.find("sysDescr")
    assert descr is not None
    assert descr.text == "HP ETHERNET MULTI-ENVIRONMENT"

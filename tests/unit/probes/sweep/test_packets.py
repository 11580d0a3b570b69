"""The sweep's ICMP and ARP packets: what we build is what scapy (an independent dissector) reads, and
what scapy builds we parse; random bytes never make a parser raise."""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, ICMPerror, IPerror
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from midprobe.probes.sweep import packets

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
macs = st.binary(min_size=6, max_size=6)


def _ip(value: int) -> str:
    return str(ipaddress.IPv4Address(value))


def test_checksum_matches_the_rfc_1071_example() -> None:
    # RFC 1071 section 3: the sum of 0001 f203 f4f5 f6f7 is ddf2, its complement 220d.
    assert packets.internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    assert packets.internet_checksum(b"\x01") == ~0x0100 & 0xFFFF  # odd length: padded with zero


@given(identifier=u16, sequence=u16, cookie=u32, target=u32, sent=st.integers(0, 2**64 - 1))
def test_echo_requests_are_valid_icmp_that_scapy_reads_back(
    identifier: int, sequence: int, cookie: int, target: int, sent: int
) -> None:
    payload = packets.EchoPayload(cookie, target, sent)
    packet = packets.echo_request(identifier, sequence, payload)
    assert packets.internet_checksum(packet) == 0  # a correct checksum sums to zero
    dissected = ICMP(packet)
    assert (dissected.type, dissected.code, dissected.id, dissected.seq) == (8, 0, identifier, sequence)
    assert packets.parse_echo_payload(bytes(dissected.payload)) == payload


def test_an_echo_reply_built_by_scapy_is_parsed_with_its_payload() -> None:
    payload = packets.EchoPayload(0xDEADBEEF, int(ipaddress.IPv4Address("198.18.4.6")), 123456789)
    body = packets.echo_request(7, 2, payload)[8:]
    datagram = bytes(IP(src="198.18.4.6", dst="198.18.0.1") / ICMP(type=0, id=7, seq=2) / Raw(body))
    reply = packets.parse_icmp_datagram(datagram)
    assert isinstance(reply, packets.EchoReply)
    assert (_ip(reply.source), reply.identifier, reply.sequence) == ("198.18.4.6", 7, 2)
    assert packets.parse_echo_payload(reply.payload) == payload


def test_ip_options_are_skipped_to_find_the_icmp_header() -> None:
    datagram = bytearray(bytes(IP(src="198.18.0.10", dst="198.18.0.1") / ICMP(type=0, id=9, seq=1)))
    with_options = (
        bytes([0x46]) + datagram[1:20] + b"\x01\x01\x01\x00" + datagram[20:]
    )  # IHL 6: 4 option bytes
    reply = packets.parse_icmp_datagram(with_options)
    assert isinstance(reply, packets.EchoReply)
    assert reply.identifier == 9


def test_an_unreachable_quoting_our_echo_request_names_its_destination() -> None:
    datagram = bytes(
        IP(src="198.18.0.254", dst="198.18.0.1")
        / ICMP(type=3, code=1)
        / IPerror(src="198.18.0.1", dst="198.18.4.99")
        / ICMPerror(type=8, id=4242, seq=0)
    )
    error = packets.parse_icmp_datagram(datagram)
    assert isinstance(error, packets.IcmpError)
    assert (error.icmp_type, error.code, error.identifier) == (3, 1, 4242)
    assert _ip(error.reporter) == "198.18.0.254"
    assert _ip(error.original_destination) == "198.18.4.99"


def test_other_icmp_and_other_protocols_are_not_ours() -> None:
    echo_request = bytes(IP(src="198.18.0.1", dst="198.18.0.10") / ICMP(type=8, id=1))
    assert packets.parse_icmp_datagram(echo_request) is None  # our own request, seen on loopback
    unreachable_about_udp = bytes(
        IP(src="198.18.0.10", dst="198.18.0.1") / ICMP(type=3, code=3) / IPerror(proto=17) / Raw(b"\x00" * 8)
    )
    assert packets.parse_icmp_datagram(unreachable_about_udp) is None
    tcp = bytearray(echo_request)
    tcp[9] = 6
    assert packets.parse_icmp_datagram(bytes(tcp)) is None
    assert packets.parse_echo_payload(b"someone else's ping payload") is None


@given(st.binary(max_size=120))
def test_the_icmp_parser_never_raises(data: bytes) -> None:
    packets.parse_icmp_datagram(data)
    packets.parse_icmp_datagram(b"\x45" + data)


@given(source_mac=macs, source=u32, target=u32)
def test_arp_requests_are_what_scapy_calls_a_who_has(source_mac: bytes, source: int, target: int) -> None:
    frame = packets.arp_request(source_mac, source, target)
    assert len(frame) == packets.ARP_FRAME_SIZE
    dissected = Ether(frame)
    assert dissected.dst == "ff:ff:ff:ff:ff:ff"
    assert dissected.src == packets.format_mac(source_mac)
    arp = dissected[ARP]
    assert (arp.op, arp.hwtype, arp.ptype, arp.hwlen, arp.plen) == (1, 1, 0x0800, 6, 4)
    assert (arp.hwsrc, arp.psrc, arp.pdst) == (packets.format_mac(source_mac), _ip(source), _ip(target))
    assert arp.hwdst == "00:00:00:00:00:00"


def test_an_arp_reply_built_by_scapy_is_parsed_padding_and_all() -> None:
    frame = bytes(
        Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:01")
        / ARP(
            op=2, hwsrc="02:00:00:00:00:0a", psrc="198.18.0.10", hwdst="02:00:00:00:00:01", pdst="198.18.0.1"
        )
    )
    reply = packets.parse_arp_reply(frame + b"\x00" * 18)  # padded to the 60-byte minimum
    assert reply is not None
    assert (_ip(reply.sender), packets.format_mac(reply.sender_mac), _ip(reply.target)) == (
        "198.18.0.10",
        "02:00:00:00:00:0a",
        "198.18.0.1",
    )


def test_requests_and_short_or_foreign_frames_are_not_replies() -> None:
    request = packets.arp_request(b"\x02" * 6, 1, 2)
    assert packets.parse_arp_reply(request) is None
    assert packets.parse_arp_reply(request[:41]) is None
    ipv4 = bytearray(bytes(Ether() / ARP(op=2)))
    ipv4[12:14] = struct.pack("!H", 0x0800)
    assert packets.parse_arp_reply(bytes(ipv4)) is None


@given(st.binary(max_size=80))
def test_the_arp_parser_never_raises(data: bytes) -> None:
    packets.parse_arp_reply(data)


@given(
    identifier=st.integers(0, 0xFFFF),
    cookie=st.integers(0, 0xFFFFFFFF),
    sequence=st.integers(0, 0xFFFF),
    target=st.integers(0, 0xFFFFFFFF),
    sent=st.integers(0, 2**64 - 1),
)
def test_a_sweep_s_echo_requests_are_the_bytes_echo_request_builds(
    identifier: int, cookie: int, sequence: int, target: int, sent: int
) -> None:
    requests = packets.EchoRequests(identifier, cookie)
    expected = packets.echo_request(identifier, sequence, packets.EchoPayload(cookie, target, sent))
    assert requests.build(sequence, target, sent) == expected

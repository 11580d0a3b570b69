"""ICMP echo and ARP packets for the sweep: built and parsed without I/O.

Addresses are IPv4 integers (the engine keys its tables by them). Parsers sit on the hot path of
a raw socket that sees every ICMP or ARP packet of the machine, so they never raise: anything
malformed or not ours is ``None``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from midprobe.probes.checksum import fold, internet_checksum, word_sum

__all__ = [
    "ARP_FRAME_SIZE",
    "BROADCAST_MAC",
    "ECHO_PAYLOAD_SIZE",
    "ETH_P_ARP",
    "ArpReply",
    "EchoPayload",
    "EchoReply",
    "EchoRequests",
    "IcmpError",
    "arp_request",
    "echo_request",
    "format_mac",
    "internet_checksum",
    "parse_arp_reply",
    "parse_echo_payload",
    "parse_icmp_datagram",
]

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
BROADCAST_MAC = b"\xff" * 6
ARP_FRAME_SIZE = 42  # 14 bytes Ethernet + 28 bytes ARP (the NIC pads to 60 on the wire)

ICMP_ECHO_REPLY = 0
ICMP_DEST_UNREACH = 3
ICMP_ECHO_REQUEST = 8
ICMP_TIME_EXCEEDED = 11

ARP_REQUEST = 1
ARP_REPLY = 2

#: Payload of our echo requests: magic, sweep cookie, target address, send time (ns).
_PAYLOAD = struct.Struct("!4sIIQ")
ECHO_PAYLOAD_SIZE = _PAYLOAD.size
_MAGIC = b"mpsw"
_ICMP_HEADER = struct.Struct("!BBHHH")
_ARP = struct.Struct("!6s6sHHHBBH6sI6sI")


@dataclass(frozen=True, slots=True)
class EchoPayload:
    """What we put in an echo request, and read back from the reply."""

    cookie: int
    target: int
    sent_ns: int


def echo_request(identifier: int, sequence: int, payload: EchoPayload) -> bytes:
    """An ICMP echo request (type 8) carrying ``payload``; the kernel adds the IP header."""
    body = _PAYLOAD.pack(_MAGIC, payload.cookie, payload.target, payload.sent_ns)
    header = _ICMP_HEADER.pack(ICMP_ECHO_REQUEST, 0, 0, identifier, sequence)
    checksum = internet_checksum(header + body)
    return _ICMP_HEADER.pack(ICMP_ECHO_REQUEST, 0, checksum, identifier, sequence) + body


#: A whole echo request: the ICMP header, then our payload.
_ECHO_REQUEST = struct.Struct("!BBHHH4sIIQ")


class EchoRequests:
    """Echo requests of one sweep (one identifier and cookie), the same bytes as :func:`echo_request`
    gives: the checksum of the words that never change is summed once, so each request adds only its
    sequence, target and send time (a /16's requests in half the time)."""

    def __init__(self, identifier: int, cookie: int) -> None:
        self.identifier = identifier
        self.cookie = cookie
        self._base = word_sum(
            _ECHO_REQUEST.pack(ICMP_ECHO_REQUEST, 0, 0, identifier, 0, _MAGIC, cookie, 0, 0)
        )

    def build(self, sequence: int, target: int, sent_ns: int) -> bytes:
        total = (
            self._base
            + sequence
            + (target >> 16)
            + (target & 0xFFFF)
            + (sent_ns >> 48)
            + ((sent_ns >> 32) & 0xFFFF)
            + ((sent_ns >> 16) & 0xFFFF)
            + (sent_ns & 0xFFFF)
        )
        return _ECHO_REQUEST.pack(
            ICMP_ECHO_REQUEST,
            0,
            fold(total),
            self.identifier,
            sequence,
            _MAGIC,
            self.cookie,
            target,
            sent_ns,
        )


def parse_echo_payload(data: bytes) -> EchoPayload | None:
    """Our payload from an echo body, or ``None`` when the body is someone else's."""
    if len(data) < ECHO_PAYLOAD_SIZE:
        return None
    magic, cookie, target, sent_ns = _PAYLOAD.unpack_from(data)
    if magic != _MAGIC:
        return None
    return EchoPayload(cookie, target, sent_ns)


@dataclass(frozen=True, slots=True)
class EchoReply:
    """An ICMP echo reply: who sent it and what it echoed."""

    source: int
    identifier: int
    sequence: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class IcmpError:
    """An ICMP error (destination unreachable, time exceeded) about one of our echo requests."""

    reporter: int
    icmp_type: int
    code: int
    #: Where the quoted echo request was going, and its identifier.
    original_destination: int
    identifier: int


def parse_icmp_datagram(data: bytes) -> EchoReply | IcmpError | None:
    """An IPv4 datagram as a raw ICMP socket receives it (IP header included).

    Echo replies and errors quoting an echo request are returned; everything else is ``None``.
    """
    if len(data) < 20 or data[0] >> 4 != 4 or data[9] != 1:
        return None
    header_length = (data[0] & 0x0F) * 4
    if header_length < 20 or len(data) < header_length + 8:
        return None
    (source,) = struct.unpack_from("!I", data, 12)
    icmp_type, code, _, identifier, sequence = _ICMP_HEADER.unpack_from(data, header_length)
    if icmp_type == ICMP_ECHO_REPLY:
        return EchoReply(source, identifier, sequence, data[header_length + 8 :])
    if icmp_type not in (ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED):
        return None
    quoted = header_length + 8  # the original IP header, then at least 8 bytes of its payload
    if len(data) < quoted + 20 or data[quoted] >> 4 != 4 or data[quoted + 9] != 1:
        return None
    quoted_length = (data[quoted] & 0x0F) * 4
    if quoted_length < 20 or len(data) < quoted + quoted_length + 8:
        return None
    (destination,) = struct.unpack_from("!I", data, quoted + 16)
    original_type, _, _, original_id, _ = _ICMP_HEADER.unpack_from(data, quoted + quoted_length)
    if original_type != ICMP_ECHO_REQUEST:
        return None
    return IcmpError(source, icmp_type, code, destination, original_id)


@dataclass(frozen=True, slots=True)
class ArpReply:
    """An ARP reply: ``sender`` is at ``sender_mac``."""

    sender: int
    sender_mac: bytes
    target: int


def arp_request(source_mac: bytes, source: int, target: int) -> bytes:
    """A broadcast Ethernet frame asking who has ``target`` (RFC 826)."""
    return _ARP.pack(
        BROADCAST_MAC,
        source_mac,
        ETH_P_ARP,
        1,  # hardware: Ethernet
        ETH_P_IP,
        6,
        4,
        ARP_REQUEST,
        source_mac,
        source,
        b"\x00" * 6,
        target,
    )


def parse_arp_reply(frame: bytes) -> ArpReply | None:
    """An Ethernet frame holding an IPv4-over-Ethernet ARP reply, else ``None``."""
    if len(frame) < ARP_FRAME_SIZE:
        return None
    (_, _, ethertype, hardware, protocol, hardware_length, protocol_length, operation, sender_mac, sender, _, target) = (
        _ARP.unpack_from(frame)
    )  # fmt: skip
    if (ethertype, hardware, protocol, hardware_length, protocol_length, operation) != (
        ETH_P_ARP,
        1,
        ETH_P_IP,
        6,
        4,
        ARP_REPLY,
    ):
        return None
    return ArpReply(sender, sender_mac, target)


def format_mac(mac: bytes) -> str:
    """``02:42:ac:11:00:02``."""
    return ":".join(f"{byte:02x}" for byte in mac)

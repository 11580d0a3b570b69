"""The ICMPv6 echo messages of the IPv6 sweep (``probes/sweep/icmp6.py``)."""

from __future__ import annotations

from midprobe.probes.sweep.icmp6 import echo_request, parse_echo_reply


def test_an_echo_request_carries_its_identifier_and_sequence() -> None:
    request = echo_request(0x1234, 7, b"x")
    assert request == bytes([128, 0, 0, 0, 0x12, 0x34, 0, 7]) + b"x"


def test_only_an_echo_reply_is_read_as_an_answer() -> None:
    reply = bytes([129, 0, 0xAB, 0xCD, 0x12, 0x34, 0, 7]) + b"midprobe"
    assert parse_echo_reply(reply) == (0x1234, 7)
    assert parse_echo_reply(echo_request(0x1234, 7)) is None  # our own request, looped back
    assert parse_echo_reply(bytes([136, 0, 0, 0, 0, 0, 0, 0])) is None  # a neighbour advertisement
    assert parse_echo_reply(bytes([129, 0, 0])) is None  # truncated

"""The scan engines' I/O-free parts: SYN segment and checksum, RTT timing, rate limiting, options."""

from __future__ import annotations

import socket

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6

from midprobe.capabilities.errors import ProbeParameterError
from midprobe.probes.tcpscan.common import RateLimiter, RttEstimator, ScanOptions
from midprobe.probes.tcpscan.engine import select_engine
from midprobe.probes.tcpscan.syn import build_syn_segment, tcp_checksum


def test_syn_segment_is_what_scapy_reads_and_checksums() -> None:
    segment = build_syn_segment(40123, 443, 0xDEADBEEF)
    parsed = TCP(bytes(segment))
    assert (parsed.sport, parsed.dport, parsed.seq, parsed.ack) == (40123, 443, 0xDEADBEEF, 0)
    assert parsed.flags == "S"
    assert parsed.options == [("MSS", 1460)]
    assert parsed.chksum == 0  # patched per probe
    source, destination = "198.18.0.1", "198.18.0.10"
    checksum = tcp_checksum(socket.inet_aton(source), socket.inet_aton(destination), bytes(segment))
    expected = IP(src=source, dst=destination) / TCP(bytes(segment))
    del expected[TCP].chksum
    assert checksum == IP(bytes(expected))[TCP].chksum


def test_ipv6_checksum_matches_scapy() -> None:
    segment = bytes(build_syn_segment(50000, 22, 7))
    packet = IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(segment)
    del packet[TCP].chksum
    expected = IPv6(bytes(packet))[TCP].chksum
    source, destination = (socket.inet_pton(socket.AF_INET6, a) for a in ("2001:db8::1", "2001:db8::2"))
    assert tcp_checksum(source, destination, segment) == expected


def test_timeout_starts_at_the_connect_wait_then_follows_the_rtt() -> None:
    timing = RttEstimator(initial=1.0, floor=0.1, ceiling=1.0)
    assert timing.timeout() == 1.0
    for _ in range(20):
        timing.sample(0.05)
    assert timing.timeout() == pytest.approx(0.1)  # never under the floor
    for _ in range(50):
        timing.sample(0.2)
    assert 0.2 < timing.timeout() < 0.6  # a few times the round trip
    for _ in range(20):
        timing.sample(5.0)
    assert timing.timeout() == 1.0  # never over the connect wait


def test_rate_limiter_allows_a_burst_then_the_rate() -> None:
    # An injected clock on binary fractions of a second, so the arithmetic is exact.
    now = 0.0
    bucket = RateLimiter(rate=1024.0, clock=lambda: now)
    first = bucket.allowance(now)
    assert first == 51  # a twentieth of a second's worth
    bucket.spend(first)
    assert bucket.allowance(now) == 0
    assert bucket.wait() == pytest.approx(1 / 1024)
    assert bucket.allowance(now + 1 / 64) == 16
    bucket.spend(16)
    assert bucket.allowance(now + 1 / 64) == 0
    assert bucket.allowance(now + 10.0) == 51  # a long pause refills only up to the burst
    unlimited = RateLimiter(rate=None)
    assert unlimited.allowance(now) > 1_000_000
    assert unlimited.wait() == 0.0


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"connect_wait": 0.0}, "connect_wait"),
        ({"min_timeout": 2.0}, "min_timeout"),
        ({"retries": -1}, "retries"),
        ({"rate": 0.0}, "rate"),
        ({"max_in_flight": 0}, "max_in_flight"),
    ],
)
def test_scan_options_are_validated(options: dict[str, float], named: str) -> None:
    with pytest.raises(ProbeParameterError, match=named):
        ScanOptions(**options)  # type: ignore[arg-type]


def test_engine_choice_is_validated_and_connect_is_always_there() -> None:
    assert select_engine("connect").name == "connect"
    with pytest.raises(ProbeParameterError, match="'engine'"):
        select_engine("udp")

"""MID IP ranges: ALL, CIDR, first-last, single addresses, IPv4 and IPv6."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from midprobe.capabilities.errors import TargetSpecError
from midprobe.capabilities.ipranges import IPRange, first_containing, parse_address


def contains(spec: str, address: str) -> bool:
    return IPRange.parse(spec).contains(parse_address(address))


@pytest.mark.parametrize(
    ("spec", "inside", "outside"),
    [
        ("10.0.0.0/8", ["10.0.0.0", "10.255.255.255", "10.9.1.1"], ["11.0.0.0", "9.255.255.255"]),
        (
            "192.168.1.10-192.168.1.50",
            ["192.168.1.10", "192.168.1.30", "192.168.1.50"],
            ["192.168.1.9", "192.168.1.51"],
        ),
        ("192.168.1.10 - 192.168.1.50", ["192.168.1.10"], ["192.168.1.51"]),
        ("198.18.0.7", ["198.18.0.7"], ["198.18.0.8"]),
        ("2001:db8::/32", ["2001:db8::1", "2001:db8:ffff::1"], ["2001:db9::1", "10.0.0.1"]),
        ("2001:db8::10-2001:db8::20", ["2001:db8::10", "2001:db8::1f"], ["2001:db8::21"]),
        ("fe80::1", ["fe80::1"], ["fe80::2"]),
        ("ALL", ["0.0.0.0", "255.255.255.255", "::", "2001:db8::1"], []),
        ("all", ["10.0.0.1"], []),
    ],
)
def test_containment(spec: str, inside: list[str], outside: list[str]) -> None:
    for address in inside:
        assert contains(spec, address), (spec, address)
    for address in outside:
        assert not contains(spec, address), (spec, address)


def test_ipv4_mapped_ipv6_addresses_count_as_ipv4() -> None:
    assert contains("10.0.0.0/8", "::ffff:10.1.2.3")
    assert parse_address("::ffff:10.1.2.3") == ipaddress.IPv4Address("10.1.2.3")


def test_all_is_flagged_and_keeps_its_spelling_for_messages() -> None:
    assert IPRange.parse(" all ").is_all
    assert str(IPRange.parse("all")) == "ALL"
    assert str(IPRange.parse("192.168.1.10-192.168.1.50")) == "192.168.1.10-192.168.1.50"


def test_first_containing_names_the_range_that_holds_the_address() -> None:
    ranges = (IPRange.parse("10.0.0.0/8"), IPRange.parse("10.9.0.0/16"))
    found = first_containing(ranges, parse_address("10.9.1.1"))
    assert found is not None
    assert found.text == "10.0.0.0/8"
    assert first_containing(ranges, parse_address("11.0.0.1")) is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", r"must be a non-empty string"),
        ("10.0.0.1/8", r"not a valid CIDR block.*did you mean 10\.0\.0\.0/8"),
        ("10.0.0.0/33", r"not a valid CIDR block"),
        ("10.0.0.9-10.0.0.1", r"is empty: 10\.0\.0\.9 comes after 10\.0\.0\.1"),
        ("10.0.0.1-2001:db8::1", r"mixes IPv4 and IPv6"),
        ("10.0.0.1-", r"not a valid range"),
        ("10.0.0", r"not an IPv4 or IPv6 address"),
        ("lab.example.com", r"not an IPv4 or IPv6 address"),
    ],
)
def test_bad_ranges_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(TargetSpecError, match=message):
        IPRange.parse(spec)


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_a_dash_range_holds_exactly_the_addresses_between_its_ends(a: int, b: int, x: int) -> None:
    low, high = sorted((a, b))
    spec = f"{ipaddress.IPv4Address(low)}-{ipaddress.IPv4Address(high)}"
    assert contains(spec, str(ipaddress.IPv4Address(x))) == (low <= x <= high)


@given(st.integers(0, 2**128 - 1), st.integers(0, 128), st.integers(0, 2**128 - 1))
def test_an_ipv6_cidr_agrees_with_the_standard_library(base: int, prefix: int, x: int) -> None:
    network = ipaddress.IPv6Network((base, prefix), strict=False)
    address = ipaddress.IPv6Address(x)
    if address.ipv4_mapped is not None:
        return  # mapped addresses are deliberately treated as IPv4
    assert IPRange.parse(str(network)).contains(address) == (address in network)


@given(st.integers(0, 2**32 - 1), st.integers(0, 32), st.integers(0, 2**32 - 1))
def test_an_ipv4_cidr_agrees_with_the_standard_library(base: int, prefix: int, x: int) -> None:
    network = ipaddress.IPv4Network((base, prefix), strict=False)
    address = ipaddress.IPv4Address(x)
    assert IPRange.parse(str(network)).contains(address) == (address in network)


def test_a_range_of_one_address_holds_just_that_address() -> None:
    single = IPRange.parse("10.0.0.5-10.0.0.5")
    assert single.contains(parse_address("10.0.0.5"))
    assert not single.contains(parse_address("10.0.0.6"))
    with pytest.raises(TargetSpecError, match="is empty"):
        IPRange.parse("10.0.0.6-10.0.0.5")  # one address backwards is still backwards


def test_a_range_holds_only_addresses_of_its_own_ip_version() -> None:
    # ::a00:5 has the same number as 10.0.0.5 but is not in an IPv4 range (nor the other way round)
    assert not IPRange.parse("10.0.0.0/24").contains(parse_address("::a00:5"))
    assert not IPRange.parse("::/96").contains(parse_address("10.0.0.5"))

"""Which addresses lab mode may reach (``probes/safety.py`` ``TargetPolicy.lab``), IPv6 included."""

from __future__ import annotations

import ipaddress

import pytest

from midprobe.capabilities.errors import TargetNotAllowed
from midprobe.probes.safety import TargetPolicy


@pytest.mark.parametrize("address", ["198.18.0.10", "127.0.0.1", "2001:db8::10", "2001:db8:ffff::1", "::1"])
def test_lab_mode_allows_the_lab_and_loopback_in_both_families(address: str) -> None:
    TargetPolicy.lab().check(address)


@pytest.mark.parametrize(
    "address",
    [
        "2001:db9::10",  # just past 2001:db8::/32
        "2001:4860:4860::8888",  # a public address
        "fd00::10",  # unique-local (the IPv6 private range)
        "fe80::1",  # link-local: no lab target has one (their interfaces generate none)
        "::ffff:198.18.0.10",  # IPv4-mapped: refused, never followed to its IPv4 address
        "::",
    ],
)
def test_lab_mode_refuses_ipv6_outside_the_lab(address: str) -> None:
    with pytest.raises(TargetNotAllowed, match="2001:db8::/32"):
        TargetPolicy.lab().check(address)


def test_a_network_is_allowed_only_when_it_lies_inside_the_lab() -> None:
    policy = TargetPolicy.lab()
    policy.check_network(ipaddress.ip_network("2001:db8::/120"))
    policy.check_network(ipaddress.ip_network("2001:db8::/32"))
    with pytest.raises(TargetNotAllowed):
        policy.check_network(ipaddress.ip_network("2001:db8::/31"))
    with pytest.raises(TargetNotAllowed):
        policy.check_network(ipaddress.ip_network("::ffff:198.18.0.0/112"))

"""The lab's IPv6 addresses (``runner/lab/topology.py``): each host's twin of its IPv4 address."""

from __future__ import annotations

import ipaddress

from midprobe.probes.safety import TargetPolicy
from midprobe.runner.lab import load_profile
from midprobe.runner.lab.profiles import DEFAULT_PROFILE
from midprobe.runner.lab.topology import HOST_NETWORK6, MAX_HOSTS, SCANNER_ADDRESS, ipv6_address, plan


def test_an_ipv6_address_reads_like_its_ipv4_twin() -> None:
    assert ipv6_address("198.18.0.10") == "2001:db8::10"
    assert ipv6_address("198.18.0.249") == "2001:db8::249"
    assert ipv6_address(SCANNER_ADDRESS) == "2001:db8::1"


def test_a_full_lab_has_distinct_ipv6_addresses_that_lab_mode_may_reach() -> None:
    profile = load_profile(DEFAULT_PROFILE)
    hosts = plan(profile, extra_hosts=MAX_HOSTS - len(profile.hosts)).hosts
    addresses = [host.address6 for host in hosts] + [ipv6_address(SCANNER_ADDRESS)]
    assert len(set(addresses)) == MAX_HOSTS + 1
    for address in addresses:
        assert ipaddress.IPv6Address(address) in HOST_NETWORK6
        TargetPolicy.lab().check(address)

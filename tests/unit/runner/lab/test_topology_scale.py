"""Scale mode's plan (``runner/lab/topology.py``): a routed 198.19.0.0/N apart from every other lab
network, inside what lab mode may reach."""

from __future__ import annotations

import ipaddress

import pytest

from midprobe.capabilities.errors import LabError
from midprobe.probes.safety import TargetPolicy
from midprobe.runner.lab import Lab, load_profile
from midprobe.runner.lab.profiles import DEFAULT_PROFILE, HOST_NETWORK
from midprobe.runner.lab.topology import SCALE_GATEWAY, namespaces, plan


@pytest.mark.parametrize("length", [16, 18, 24])
def test_the_scale_network_is_routed_apart_and_inside_the_lab(length: int) -> None:
    profile = load_profile(DEFAULT_PROFILE)
    planned = plan(profile, large=True, scale=length)
    assert planned.scale is not None
    network = ipaddress.IPv4Network(planned.scale.network)
    assert (str(network.network_address), network.prefixlen) == ("198.19.0.0", length)
    assert planned.scale.open_ports == (22, 80, 443)
    assert planned.scale.gateway == SCALE_GATEWAY
    assert ipaddress.IPv4Address(SCALE_GATEWAY) in HOST_NETWORK
    assert planned.large is not None
    assert not network.overlaps(ipaddress.IPv4Network(planned.large.network))
    assert not network.overlaps(HOST_NETWORK)
    TargetPolicy.lab().check_network(network)
    assert "mpabcdef-scale" in namespaces("mpabcdef", planned)


def test_without_scale_there_is_no_scale_namespace() -> None:
    planned = plan(load_profile(DEFAULT_PROFILE))
    assert planned.scale is None
    assert not any(name.endswith("-scale") for name in namespaces("mpabcdef", planned))


def test_a_prefix_length_outside_16_to_24_is_refused_before_anything_is_made() -> None:
    with pytest.raises(LabError, match="--scale must be a prefix length from 16 to 24, not 12"):
        Lab.up(scale=12)

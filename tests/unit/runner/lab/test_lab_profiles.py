"""Lab profiles and the topology plan: pure validation and address planning, no namespaces."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from midprobe.capabilities.errors import ConfigError
from midprobe.runner.lab import load_profile
from midprobe.runner.lab.daemons import snmp_get_request
from midprobe.runner.lab.profiles import DEFAULT_PROFILE, parse_profile
from midprobe.runner.lab.topology import plan

FIXTURES = Path(__file__).resolve().parents[4] / "fixtures" / "lab"


def _minimal(**host_profile: Any) -> dict[str, Any]:
    return {"profiles": {"p": host_profile or {"ssh": True}}, "hosts": [{"name": "h1", "profile": "p"}]}


def _routed(*networks: object) -> dict[str, Any]:
    hosts = [{"name": f"h{n}", "profile": "p", "routed_network": net} for n, net in enumerate(networks)]
    return {"profiles": {"p": {"ssh": True}}, "hosts": hosts}


def test_a_routed_network_goes_to_its_host_in_the_plan() -> None:
    profile = load_profile(FIXTURES / "zoo.toml")
    (zoo,) = plan(profile).hosts
    assert (zoo.name, zoo.address, zoo.routed_network) == ("zoo", "198.18.0.10", "198.18.1.0/24")
    assert profile.profiles[zoo.profile].zoo
    extra = plan(parse_profile(_routed("198.18.2.0/24")), extra_hosts=2).hosts
    assert [h.routed_network for h in extra] == ["198.18.2.0/24", None, None]


def test_the_default_profile_has_every_device_kind() -> None:
    profile = load_profile()
    assert profile.source == str(DEFAULT_PROFILE)
    kinds = {h.profile: profile.profiles[h.profile] for h in profile.hosts}
    assert set(kinds) == {"linux_server", "switch", "printer", "single_port", "silent", "dns"}
    assert kinds["linux_server"].services == ("ssh", "snmp", "http")
    assert kinds["switch"].snmp is not None
    assert kinds["switch"].snmp.sys_object_id.startswith(".1.3.6.1.4.1.9.1.")
    assert len(kinds["switch"].interfaces) >= 8
    assert kinds["printer"].snmp is not None
    assert kinds["printer"].snmp.sys_object_id == ".1.3.6.1.4.1.11.2.3.9.1"
    assert 9100 in kinds["printer"].open_tcp_ports
    assert len(kinds["single_port"].open_tcp_ports) == 1
    assert kinds["silent"].services == ()
    assert kinds["silent"].open_tcp_ports == ()
    assert kinds["dns"].open_tcp_ports == (53,)
    assert {h.subdomain for h in profile.hosts} == {"sandiego", "sanjose"}


def test_every_shipped_profile_loads() -> None:
    for path in FIXTURES.glob("*.toml"):
        assert load_profile(path).hosts, path


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"profiles": {}}, "profiles: at least one profile is needed"),
        ({**_minimal(), "extra": 1}, "unknown field 'extra'"),
        (
            {"profiles": {"p": {"ssh": True}}, "hosts": [{"name": "h1", "profile": "q"}]},
            "unknown profile 'q'",
        ),
        (
            {"profiles": {"p": {"ssh": True}}, "hosts": [{"name": "Bad_Name", "profile": "p"}]},
            "hosts[0]: name",
        ),
        (
            {
                "profiles": {"p": {"ssh": True}},
                "hosts": [{"name": "a", "profile": "p"}, {"name": "a", "profile": "p"}],
            },
            "defined twice",
        ),
        (_minimal(ssh="yes"), "profiles.p: ssh: must be true, false or a table"),
        (_minimal(listeners=[{"port": 22}]), "other than 22 and 53"),
        (_minimal(listeners=[{"port": 80}, {"port": 80, "kind": "http"}]), "two listeners on one port"),
        (_minimal(listeners=[{"port": 80, "kind": "ftp"}]), "must be 'http' or 'raw'"),
        (_minimal(snmp={"sys_descr": "x", "sys_object_id": "1.3.6"}), "sys_object_id: must be a numeric OID"),
        (
            _minimal(snmp={"sys_descr": "a\nrocommunity public", "sys_object_id": ".1.3"}),
            "sys_descr: must be one line",
        ),
        (_minimal(snmp={"sys_object_id": ".1.3"}), "sys_descr: is missing"),
        (_minimal(interfaces=["Gi1/0/1"]), "not a usable interface name"),
        (_minimal(silent=True, ssh=True), "a silent host runs no services"),
        (_minimal(ssh={"version_addendum": "Cisco 1.25"}), "ssh.version_addendum"),
        (
            {**_minimal(), "lab": {"large": {"network": "10.0.0.0/22"}}},
            "lab.large: network: must be an IPv4 network inside 198.18.0.0/15",
        ),
        ({**_minimal(), "lab": {"large": {"gateway": "198.18.0.20"}}}, "gateway: must be 198.18.0.250"),
        (
            _routed("198.18.0.128/25"),
            "hosts[0]: routed_network: must be an IPv4 network inside 198.18.0.0/15",
        ),
        (_routed("192.0.2.0/24"), "hosts[0]: routed_network: must be an IPv4 network inside"),
        (_routed("198.18.1.0/33"), "hosts[0]: routed_network"),
        (_routed(24), "hosts[0]: routed_network: must be a string"),
        (_routed("198.18.4.0/24"), "hosts[0]: routed_network: overlaps 198.18.4.0/22 (lab.large)"),
        (_routed("198.18.1.0/24", "198.18.1.128/25"), "hosts[1]: routed_network: overlaps 198.18.1.0/24"),
        (_minimal(zoo=True), "hosts[0]: routed_network: a zoo host needs a routed_network"),
        (_minimal(zoo="yes"), "silent, dns, zoo and lldp must be true or false"),
        (_minimal(lldp=1), "silent, dns, zoo and lldp must be true or false"),
        (_minimal(silent=True, zoo=True), "a silent host runs no services"),
        (_minimal(silent=True, lldp=True), "a silent host runs no services"),
        (_minimal(connects_to={"host": "h"}), "connects_to: must be an array of tables"),
        (_minimal(connects_to=[{"host": "h", "port": 0}]), "connects_to[0]: port: must be a TCP port"),
        (_minimal(connects_to=[{"host": "h", "port": 22, "x": 1}]), "connects_to[0]"),
        (
            _minimal(connects_to=[{"host": "nohost", "port": 22}]),
            "nohost:22 is no open TCP port of a lab host",
        ),
    ],
)
def test_bad_profiles_name_the_entry_and_field(document: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_profile(document, source="lab.toml")
    assert str(caught.value).startswith("lab.toml")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_unreadable_or_invalid_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the lab profile"):
        load_profile(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[profiles\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_profile(broken)


@given(st.integers(min_value=0, max_value=200))
def test_plan_gives_consecutive_unique_addresses_from_dot_10(extra: int) -> None:
    profile = load_profile()
    planned = plan(profile, extra_hosts=extra)
    addresses = [ipaddress.ip_address(h.address) for h in planned.hosts]
    assert len(planned.hosts) == len(profile.hosts) + extra
    assert addresses == [ipaddress.ip_address("198.18.0.10") + i for i in range(len(addresses))]
    assert len({h.name for h in planned.hosts}) == len(planned.hosts)
    assert all(h.profile == profile.extra_host_profile for h in planned.hosts[len(profile.hosts) :])
    assert all(a in ipaddress.ip_network("198.18.0.0/24") for a in addresses)
    assert planned.large is None


def test_large_plan_is_a_tenth_of_a_slash_22_and_repeatable() -> None:
    profile = load_profile()
    first = plan(profile, large=True).large
    again = plan(profile, large=True).large
    assert first is not None
    assert first == again
    network = ipaddress.ip_network(first.network)
    assert network.prefixlen <= 22
    assert round(0.1 * (network.num_addresses - 2)) == len(first.alive)
    assert all(ipaddress.ip_address(a) in network for a in first.alive)


def test_snmp_readiness_request_is_the_ber_of_a_v2c_get() -> None:
    packet = snmp_get_request("public", "1.3.6.1.2.1.1.5.0", request_id=1)
    # The bytes every SNMP v2c GET of sysName.0 with community "public" and request id 1 has.
    assert packet.hex() == (
        "302602010104067075626c6963a019020101020100020100300e300c06082b060102010105000500"
    )

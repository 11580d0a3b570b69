"""ECC parameters of the DNS probes: what is accepted, how it is normalised, what a bad value says."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import dns.exception
import dns.name
import pytest
from hypothesis import given
from hypothesis import strategies as st

from midprobe.capabilities.errors import ConfigError, ProbeParameterError, TargetNotAllowed
from midprobe.probes.base import ProbeContext
from midprobe.probes.dns import PROBES, wire
from midprobe.probes.dns.common import batch_deadline, prepare_resolver
from midprobe.probes.dns.host_names import DnsParams, DNSProbe
from midprobe.probes.dns.lookup import DNSLookupProbe, LookupParams, requested_names
from midprobe.probes.dns.name_resolver import DNSNameResolverProbe, NameResolverParams
from midprobe.probes.dns.params import (
    MAX_ITEMS,
    ResolverParams,
    host_name_text,
    is_address,
    parse_addresses,
    parse_names,
    parse_record_types,
    parse_resolver_params,
    split_list,
)
from midprobe.probes.dns.resolver import ResolverConfig, system_nameservers
from midprobe.probes.params import parse_bool
from midprobe.probes.registry import default_registry
from midprobe.probes.safety import TargetPolicy


def test_lists_split_on_commas_semicolons_and_white_space() -> None:
    assert split_list(" a, b;c\td\n e ,, ") == ["a", "b", "c", "d", "e"]
    assert split_list("  ") == []


def test_addresses_are_canonical_and_deduplicated_in_order() -> None:
    text = "198.18.0.10, 2001:DB8:0:0::1 198.18.0.10;198.18.0.2"
    assert parse_addresses(text, "ip_addresses") == ("198.18.0.10", "2001:db8::1", "198.18.0.2")


@given(st.lists(st.ip_addresses(), min_size=1, max_size=40))
def test_any_address_list_round_trips(addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> None:
    text = ", ".join(address.exploded for address in addresses)
    expected = tuple(dict.fromkeys(str(address) for address in addresses))
    assert parse_addresses(text, "ip_addresses") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("198.18.0.10 linux1", "parameter 'ip_addresses': 'linux1' is not an IP address"),
        ("198.18.0.0/24", "parameter 'ip_addresses': '198.18.0.0/24' is not an IP address"),
        (" , ", "parameter 'ip_addresses': no addresses given"),
    ],
)
def test_bad_addresses_name_the_parameter_and_the_item(text: str, message: str) -> None:
    with pytest.raises(ProbeParameterError) as caught:
        parse_addresses(text, "ip_addresses")
    assert str(caught.value) == message


def test_too_many_items_are_refused() -> None:
    text = " ".join(f"h{i}.example.test" for i in range(MAX_ITEMS + 1))
    with pytest.raises(ProbeParameterError, match=rf"{MAX_ITEMS + 1} names, at most {MAX_ITEMS} per request"):
        parse_names(text, "names")


def test_names_lose_the_final_dot_and_case_duplicates() -> None:
    names = parse_names(
        "linux1.sandiego.lab.example.test. LINUX1.sandiego.lab.example.test web1 198.18.0.5", "names"
    )
    assert names == ("linux1.sandiego.lab.example.test", "web1", "198.18.0.5")


def test_international_names_are_sent_as_punycode() -> None:
    assert parse_names("bücher.example.test", "names") == ("xn--bcher-kva.example.test",)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a..example.test", "'a..example.test' is not a DNS name: A DNS label is empty"),
        ("x" * 64 + ".example.test", "is not a DNS name: A DNS label is > 63 octets long"),
        (".", "the root name '.' is not a host name"),
        (".".join(["abcdefghi"] * 30), "is not a DNS name: A DNS name is > 255 octets long"),
    ],
)
def test_bad_names_say_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(ProbeParameterError, match=r"^parameter 'names': ") as caught:
        parse_names(text, "names")
    assert reason in str(caught.value)


def test_record_types() -> None:
    assert parse_record_types("aaaa, A, AAAA") == ("AAAA", "A")
    with pytest.raises(ProbeParameterError, match="record type 'MX' is not one of A, AAAA"):
        parse_record_types("A MX")


def test_resolver_parameters_default_and_bounds() -> None:
    assert parse_resolver_params({}) == ResolverParams((), 53, 2000, 2, 128)
    given_ = parse_resolver_params(
        {
            "dns_servers": "198.18.0.53 198.18.0.54",
            "dns_port": "5353",
            "timeout": "250",
            "retries": "0",
            "concurrency": "8",
        }
    )
    assert given_ == ResolverParams(("198.18.0.53", "198.18.0.54"), 5353, 250, 0, 8)
    with pytest.raises(ProbeParameterError, match=r"parameter 'timeout': 0 is outside 1\.\.60000"):
        parse_resolver_params({"timeout": "0"})
    with pytest.raises(ProbeParameterError, match="parameter 'retries': 'two' is not a whole number"):
        parse_resolver_params({"retries": "two"})
    with pytest.raises(
        ProbeParameterError, match=r"parameter 'dns_servers': 'ns1\.example\.test' is not an IP address"
    ):
        parse_resolver_params({"dns_servers": "ns1.example.test"})


def test_booleans() -> None:
    assert parse_bool({"x": "Yes"}, "x", False) is True
    assert parse_bool({"x": "false"}, "x", True) is False
    assert parse_bool({}, "x", True) is True
    with pytest.raises(ProbeParameterError, match="parameter 'x': 'maybe' is not true or false"):
        parse_bool({"x": "maybe"}, "x", True)


def test_dns_topic_takes_ip_addresses_or_else_the_source() -> None:
    probe = DNSProbe()
    assert probe.parse_params("198.18.0.99", {"ip_addresses": "198.18.0.10,198.18.0.11"}) == DnsParams(
        ("198.18.0.10", "198.18.0.11")
    )
    assert probe.parse_params("198.18.0.99", {"forward_confirm": "no"}) == DnsParams(("198.18.0.99",), False)
    with pytest.raises(ProbeParameterError, match="neither the parameter nor source is set"):
        probe.parse_params("", {})


def test_lookup_and_name_resolver_parameters() -> None:
    lookup = DNSLookupProbe().parse_params("", {"names": "linux1.lab.example.test", "record_types": "AAAA"})
    assert lookup == LookupParams(("linux1.lab.example.test",), ("AAAA",))
    assert DNSLookupProbe().parse_params("web1.lab.example.test", {}).record_types == ("A", "AAAA")
    resolver = DNSNameResolverProbe().parse_params("", {"ip_addresses": "198.18.0.10", "timeout": "300"})
    assert resolver == NameResolverParams(("198.18.0.10",), ResolverParams(timeout_ms=300))


def test_the_registry_holds_all_three_topics_with_no_required_capability() -> None:
    registry = default_registry()
    for probe in PROBES:
        assert registry.get(probe.topic) is probe
        assert probe.required_capabilities == ()
    assert {probe.topic for probe in PROBES} == {"DNS", "DNSLookupProbe", "DNSNameResolver"}


def test_system_nameservers_come_from_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("search lab.example.test\nnameserver 198.18.0.53\nnameserver 2001:db8::53\n")
    assert system_nameservers(conf) == ("198.18.0.53", "2001:db8::53")
    conf.write_text("search lab.example.test\n")
    with pytest.raises(ConfigError, match="pass dns_servers"):
        system_nameservers(conf)
    with pytest.raises(ConfigError, match="cannot open"):
        system_nameservers(tmp_path / "missing.conf")


def test_resolver_config_rejects_what_cannot_work() -> None:
    with pytest.raises(ConfigError, match="no DNS servers"):
        ResolverConfig(())
    with pytest.raises(ConfigError, match="'ns1' is not an IP address"):
        ResolverConfig(("ns1",))
    assert ResolverConfig(("198.18.0.53", "198.18.0.54"), retries=2).max_attempts == 6


def test_requested_names_are_what_routing_must_check() -> None:
    parameters = {"names": "linux1.sandiego.lab.example.test;db1.sanjose.lab.example.test. 198.18.0.7"}
    assert requested_names("ignored.example.test", parameters) == (
        "linux1.sandiego.lab.example.test",
        "db1.sanjose.lab.example.test",
    )
    assert requested_names("web1.sanjose.lab.example.test", {}) == ("web1.sanjose.lab.example.test",)
    with pytest.raises(ProbeParameterError, match="is not a DNS name"):
        requested_names("bad..name", {})


def test_servers_and_addresses_are_checked_against_the_policy() -> None:
    lab = ProbeContext(policy=TargetPolicy.lab())
    with pytest.raises(
        TargetNotAllowed, match=r"^target DNS server 10\.1\.2\.3 is outside the allowed networks"
    ):
        prepare_resolver(ResolverParams(("10.1.2.3",)), lab)
    with pytest.raises(TargetNotAllowed, match=r"^target 192\.0\.2\.1 is outside"):
        prepare_resolver(ResolverParams(("198.18.0.15",)), lab, ["198.18.0.10", "192.0.2.1"])
    config = prepare_resolver(
        ResolverParams(("198.18.0.15",), timeout_ms=250, retries=1), lab, ["198.18.0.10"]
    )
    assert config == ResolverConfig(("198.18.0.15",), 53, 0.25, 1, 128)


def test_the_batch_stops_a_little_before_the_probe_deadline() -> None:
    def now() -> float:
        return 1000.0

    # a tenth of the time left, at most one second
    assert batch_deadline(ProbeContext(deadline=1300.0, clock=now)) == pytest.approx(1299.0)
    assert batch_deadline(ProbeContext(deadline=1005.0, clock=now)) == pytest.approx(1004.5)
    assert batch_deadline(ProbeContext(deadline=1000.5, clock=now)) == pytest.approx(1000.45)
    assert batch_deadline(ProbeContext(deadline=990.0, clock=now)) == pytest.approx(990.0)  # already past


def _dnspython_reading(text: str) -> str | None:
    """What ``dns.name.from_text`` makes of a host name, as the probes write it (``None``: refused)."""
    try:
        name = dns.name.from_text(text)
    except dns.exception.DNSException:
        return None
    return None if name == dns.name.root else wire.name_text(name)


@given(
    st.lists(st.text(alphabet="aZ09-_.\\ü*", min_size=0, max_size=70), min_size=1, max_size=5),
    st.booleans(),
)
def test_host_names_read_as_dnspython_reads_them(labels: list[str], final_dot: bool) -> None:
    text = ".".join(labels) + ("." if final_dot else "")
    expected = _dnspython_reading(text)
    if expected is None:
        with pytest.raises(ProbeParameterError):
            host_name_text(text, "names")
    else:
        assert host_name_text(text, "names") == expected


@pytest.mark.parametrize("length", [252, 253, 254, 255])
def test_the_longest_plain_names_are_judged_as_dnspython_judges_them(length: int) -> None:
    labels = ["a" * 63, "b" * 63, "c" * 63, "d" * 63]
    text = ".".join(labels)[:length].rstrip(".")
    for candidate in (text, text + "."):
        expected = _dnspython_reading(candidate)
        if expected is None:
            with pytest.raises(ProbeParameterError, match="255 octets"):
                host_name_text(candidate, "names")
        else:
            assert host_name_text(candidate, "names") == expected


@given(st.text(alphabet="0123456789.:af", min_size=1, max_size=18) | st.ip_addresses(v=4).map(str))
def test_addresses_read_as_ipaddress_reads_them(text: str) -> None:
    try:
        expected = str(ipaddress.ip_address(text))
    except ValueError:
        with pytest.raises(ProbeParameterError, match="is not an IP address"):
            parse_addresses(text, "ip_addresses")
        return
    assert parse_addresses(text, "ip_addresses") == (expected,)


@given(
    st.text(alphabet="0123456789.:abfxz-", min_size=1, max_size=20)
    | st.ip_addresses().map(str)
    | st.ip_addresses().map(lambda address: f"{address}.")
    | st.ip_addresses(v=4).map(lambda address: f"h.{address}")
)
def test_address_literals_are_what_ipaddress_takes(text: str) -> None:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        assert not is_address(text)
    else:
        assert is_address(text)

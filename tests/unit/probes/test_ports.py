"""Port lists in nmap syntax and the service-name table."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from midprobe.capabilities.errors import PortSpecError
from midprobe.probes.ports import PortSpec, format_ports, parse_ports, service_name, service_port


def test_lists_and_ranges_are_sorted_and_distinct() -> None:
    assert parse_ports("80,22,1000-1002,22") == PortSpec(tcp=(22, 80, 1000, 1001, 1002))


def test_open_ended_ranges_and_the_dash_alone() -> None:
    assert len(parse_ports("-").tcp) == 65535
    assert parse_ports("-3").tcp == (1, 2, 3)
    assert parse_ports("65533-").tcp == (65533, 65534, 65535)


def test_a_long_run_is_shared_not_made_again() -> None:
    every = parse_ports("-").tcp
    assert every == tuple(range(1, 65536))
    assert parse_ports("1-65535").tcp is every  # one table; ``-p-`` is parsed by each request
    assert parse_ports("80,100-5000").tcp[1] is every[99]


@given(st.lists(st.tuples(st.integers(1, 65535), st.integers(0, 5000)), min_size=1, max_size=6))
def test_overlapping_runs_long_and_short_give_each_port_once_in_order(runs: list[tuple[int, int]]) -> None:
    spans = [(low, min(65535, low + length)) for low, length in runs]
    expected = tuple(sorted({port for low, high in spans for port in range(low, high + 1)}))
    assert parse_ports(",".join(f"{low}-{high}" for low, high in spans)).tcp == expected


def test_protocol_prefixes_apply_until_the_next_prefix() -> None:
    spec = parse_ports("22,U:53,161,T:80")
    assert spec == PortSpec(tcp=(22, 80), udp=(53, 161))
    assert str(spec) == "T:22,80,U:53,161"


def test_service_names_are_ports_too() -> None:
    assert parse_ports("ssh,http,ms-wbt-server").tcp == (22, 80, 3389)
    assert parse_ports("U:snmp").udp == (161,)


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("0", "'0'"),
        ("22,70000", "'70000'"),
        ("90-80", "'90-80'"),
        ("22,nosuchservice", "'nosuchservice'"),
        ("S:22", "'S:22'"),
        ("T:", "'T:'"),
        ("1-2-3", "'1-2-3'"),
    ],
)
def test_bad_tokens_are_named_in_one_line(spec: str, named: str) -> None:
    with pytest.raises(PortSpecError) as caught:
        parse_ports(spec)
    assert named in str(caught.value)
    assert "\n" not in str(caught.value)


def test_empty_list_is_an_error() -> None:
    with pytest.raises(PortSpecError, match="no ports"):
        parse_ports(" ,")


def test_service_names_for_discovery_ports() -> None:
    names = {port: service_name(port) for port in (22, 80, 135, 443, 445, 3389, 5985, 9100)}
    assert names == {
        22: "ssh",
        80: "http",
        135: "msrpc",
        443: "https",
        445: "microsoft-ds",
        3389: "ms-wbt-server",
        5985: "wsman",
        9100: "jetdirect",
    }
    assert service_name(161, "udp") == "snmp"
    assert service_name(47999) == "unknown"
    assert service_port("SSH") == 22


@given(
    tcp=st.sets(st.integers(1, 65535), max_size=60),
    udp=st.sets(st.integers(1, 65535), max_size=20),
)
def test_formatting_parses_back_to_the_same_spec(tcp: set[int], udp: set[int]) -> None:
    if not tcp and not udp:
        return
    spec = PortSpec(tcp=tuple(sorted(tcp)), udp=tuple(sorted(udp)))
    assert parse_ports(str(spec)) == spec
    if tcp:
        assert parse_ports(format_ports(spec.tcp)).tcp == spec.tcp


# -- edges a mutant of the parser would cross -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("80-80", PortSpec(tcp=(80,))),
        ("22 80", PortSpec(tcp=(22, 80))),
        ("22\t80,\n443", PortSpec(tcp=(22, 80, 443))),
        (" 22 , 22 ", PortSpec(tcp=(22,))),
        ("u:53", PortSpec(tcp=(), udp=(53,))),  # lower case accepted (nmap wants U:)
        ("t:22,u:53", PortSpec(tcp=(22,), udp=(53,))),
        ("1", PortSpec(tcp=(1,))),
        ("65535", PortSpec(tcp=(65535,))),
        ("65534-65535", PortSpec(tcp=(65534, 65535))),
        ("65534-", PortSpec(tcp=(65534, 65535))),
        ("1-2", PortSpec(tcp=(1, 2))),
        ("22,21-23", PortSpec(tcp=(21, 22, 23))),
        ("U:53,53", PortSpec(tcp=(), udp=(53,))),  # a prefix holds until the next one
    ],
)
def test_accepted_edges(spec: str, expected: PortSpec) -> None:
    assert parse_ports(spec) == expected


#: Out of 1-65535, backwards, non-ASCII digits ("²".isdigit() is true, int("٣") is 3), bad prefixes.
REFUSED_PORTS = [
    *("0", "65536", "0-1", "65535-65536", "2-1", "-0"),  # out of range or backwards
    *("²", "1-²", "²-3", "٣", "٢٢", "+22", "22.0"),  # not plain ASCII digits
    *("U:0", "X:1"),
]


@pytest.mark.parametrize("spec", REFUSED_PORTS)
def test_refused_edges_are_port_spec_errors(spec: str) -> None:
    with pytest.raises(PortSpecError) as caught:
        parse_ports(spec)
    assert str(caught.value).startswith(f"bad port {spec!r}: ")
    assert "\n" not in str(caught.value)

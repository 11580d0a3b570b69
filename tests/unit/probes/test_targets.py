"""Target specs in nmap syntax: parsing, exact counting, streaming expansion, exclusions, policy checks."""

from __future__ import annotations

import ipaddress
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from midprobe.capabilities.errors import TargetSpecError
from midprobe.probes.targets import Target, parse_targets, system_resolver


def addresses(spec: str | list[str], exclude: str = "") -> list[str]:
    return [str(target.address) for target in parse_targets(spec, exclude)]


def test_single_addresses_of_both_families() -> None:
    assert addresses("198.18.0.10") == ["198.18.0.10"]
    assert addresses("2001:db8::1") == ["2001:db8::1"]


def test_cidr_includes_network_and_broadcast_like_nmap() -> None:
    found = addresses("198.18.0.0/30")
    assert found == ["198.18.0.0", "198.18.0.1", "198.18.0.2", "198.18.0.3"]
    assert addresses("198.18.0.77/31") == ["198.18.0.76", "198.18.0.77"]  # host bits ignored


def test_last_octet_range_and_multi_octet_ranges() -> None:
    assert addresses("10.0.0.1-3") == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    found = addresses("10.0.1-2.1-2")
    assert found == ["10.0.1.1", "10.0.1.2", "10.0.2.1", "10.0.2.2"]
    assert addresses("10.0.0.1,5,7-8") == ["10.0.0.1", "10.0.0.5", "10.0.0.7", "10.0.0.8"]
    assert parse_targets("10.0.0.*").count() == 256
    assert addresses("10.0.0.250-") == [f"10.0.0.{n}" for n in range(250, 256)]


def test_full_ranges_in_both_families_and_with_spaces_round_the_dash() -> None:
    found = addresses("198.18.0.254-198.18.1.1")
    assert found == ["198.18.0.254", "198.18.0.255", "198.18.1.0", "198.18.1.1"]
    assert addresses("198.18.0.1 - 198.18.0.2") == ["198.18.0.1", "198.18.0.2"]
    assert addresses("2001:db8::fe-2001:db8::101") == [
        "2001:db8::fe",
        "2001:db8::ff",
        "2001:db8::100",
        "2001:db8::101",
    ]


def test_lists_by_comma_and_white_space_keep_order_and_drop_repeats() -> None:
    assert addresses("10.0.0.9,10.0.0.1 10.0.0.5\n10.0.0.1,") == ["10.0.0.9", "10.0.0.1", "10.0.0.5"]
    assert addresses(["10.0.0.0/30", "10.0.0.2-5"]) == [f"10.0.0.{n}" for n in range(6)]


def test_exclusions_of_any_syntax() -> None:
    found = addresses("198.18.0.0/28", exclude="198.18.0.0-3,198.18.0.8/29 198.18.0.5")
    assert found == ["198.18.0.4", "198.18.0.6", "198.18.0.7"]
    assert parse_targets("198.18.0.0/28", "198.18.0.0/28").count() == 0


def test_a_big_network_streams_and_counts_without_expanding() -> None:
    spec = parse_targets("10.0.0.0/8 ::/64", exclude="10.128.0.0/9")
    assert spec.count() == (1 << 23) + (1 << 64)
    first = [str(target.address) for target in itertools.islice(spec, 3)]
    assert first == ["10.0.0.0", "10.0.0.1", "10.0.0.2"]
    # (2**64 addresses: no expansion could count them.)


def test_batches_are_cidr_blocks_of_the_runs_not_of_the_addresses() -> None:
    spec = parse_targets("10.0.0.0/8 ::/64", exclude="10.128.0.0/9")
    # One batch: what a port scan of every address is given (2**64 addresses could not be listed).
    assert list(spec.batches()) == [("10.0.0.0/9", "::/64")]
    # Batches of 2**22: the IPv4 run cut in two, then the IPv6 one (a family per batch).
    assert list(itertools.islice(spec.batches(1 << 22), 3)) == [
        ("10.0.0.0/10",),
        ("10.64.0.0/10",),
        ("::/106",),
    ]
    with pytest.raises(ValueError, match="batch size 0"):
        next(parse_targets("10.0.0.1").batches(0))


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("10.0.0.300", "'10.0.0.300'"),
        ("10.0.0.9-3", "'10.0.0.9-3'"),
        ("10.0.1", "'10.0.1'"),
        ("10.0.0.0/33", "/33"),
        ("10.0.0.0/x", "'x'"),
        ("2001:db8::1::2", "'2001:db8::1::2'"),
        ("10.0.0.1-2001:db8::1", "mixes IPv4 and IPv6"),
        ("bad_host!", "'bad_host!'"),
        ("ok.example,-x-.example", "'-x-.example'"),
        ("10.0.0.1-2-3", "'10.0.0.1-2-3'"),
    ],
)
def test_bad_tokens_are_named_in_one_line(spec: str, named: str) -> None:
    with pytest.raises(TargetSpecError) as caught:
        parse_targets(spec)
    message = str(caught.value)
    assert named in message
    assert "\n" not in message


def test_empty_spec_is_an_error() -> None:
    with pytest.raises(TargetSpecError, match="no targets"):
        parse_targets(" , ")


def test_host_names_wait_for_the_injected_resolver() -> None:
    spec = parse_targets("linux1.lab.example.test 198.18.0.20 web1/31", exclude="gone.lab.example.test")
    assert spec.host_names == ("linux1.lab.example.test", "web1", "gone.lab.example.test")
    assert spec.count() == 1 + 1 + 2
    with pytest.raises(TargetSpecError, match="has not been resolved"):
        list(spec)
    table = {
        "linux1.lab.example.test": "198.18.0.10",
        "web1": "198.18.0.13",
        "gone.lab.example.test": "198.18.0.12",
    }
    resolved = spec.resolved(lambda name: ipaddress.ip_address(table[name]))
    assert list(resolved) == [
        Target(ipaddress.ip_address("198.18.0.10"), "linux1.lab.example.test"),
        Target(ipaddress.ip_address("198.18.0.20"), None),
        Target(ipaddress.ip_address("198.18.0.13"), None),
    ]
    assert resolved.count() == 3


def test_system_resolver_errors_name_the_host() -> None:
    with pytest.raises(TargetSpecError, match=r"cannot resolve host name 'no-such-host\.invalid'"):
        system_resolver("no-such-host.invalid")


def test_first_outside_finds_the_address_a_policy_must_refuse() -> None:
    lab = [ipaddress.ip_network("198.18.0.0/15"), ipaddress.ip_network("127.0.0.0/8")]
    assert parse_targets("198.18.0.0/16 127.0.0.1 198.19.255.255").first_outside(lab) is None
    assert str(parse_targets("198.18.0.1 198.17.255.250-198.18.0.5").first_outside(lab)) == "198.17.255.250"
    # the only outsider is excluded: nothing is refused
    assert parse_targets("198.18.0.0/14", exclude="198.16.0.0/15,198.20.0.0/15").first_outside(lab) is None
    assert str(parse_targets("127.0.0.1 ::1").first_outside(lab)) == "::1"


# --- properties against a brute-force model ------------------------------------------------------


@st.composite
def small_tokens(draw: st.DrawFn) -> str:
    third = draw(st.integers(0, 3))
    kind = draw(st.sampled_from(["single", "cidr", "octets", "range", "list"]))
    if kind == "single":
        return f"10.0.{third}.{draw(st.integers(0, 255))}"
    if kind == "cidr":
        return f"10.0.{third}.{draw(st.integers(0, 255))}/{draw(st.integers(26, 32))}"
    if kind == "octets":
        low = draw(st.integers(0, 250))
        high = draw(st.integers(low, min(255, low + 8)))
        third_high = draw(st.integers(third, 3))
        return f"10.0.{third}-{third_high}.{low}-{high}"
    if kind == "range":
        first = draw(st.integers(0, 1023))
        last = draw(st.integers(first, first + 40))
        return f"{ipaddress.IPv4Address(0x0A000000 + first)}-{ipaddress.IPv4Address(0x0A000000 + last)}"
    values = draw(st.lists(st.integers(0, 255), min_size=1, max_size=4))
    return f"10.0.{third}." + ",".join(map(str, values))


def brute_force(token: str) -> list[int]:
    """Expand one token the slow, obvious way."""
    if "/" in token:
        return [int(a) for a in ipaddress.ip_network(token, strict=False)]
    if token.count(".") == 6:
        first, last = token.split("-")
        return list(range(int(ipaddress.ip_address(first)), int(ipaddress.ip_address(last)) + 1))
    octets = []
    for part in token.split("."):
        values: list[int] = []
        for item in part.split(","):
            low, _, high = item.partition("-")
            values.extend(range(int(low), int(high or low) + 1))
        octets.append(sorted(set(values)))
    return [(a << 24) | (b << 16) | (c << 8) | d for a, b, c, d in itertools.product(*octets)]


@settings(max_examples=200, deadline=None)
@given(
    targets=st.lists(small_tokens(), min_size=1, max_size=4),
    excludes=st.lists(small_tokens(), max_size=3),
)
def test_iteration_and_count_match_the_model(targets: list[str], excludes: list[str]) -> None:
    spec = parse_targets(" ".join(targets), " ".join(excludes))
    excluded = {value for token in excludes for value in brute_force(token)}
    expected: list[int] = []
    seen: set[int] = set()
    for token in targets:
        for value in brute_force(token):
            if value not in excluded and value not in seen:
                seen.add(value)
                expected.append(value)
    assert [int(target.address) for target in spec] == expected
    assert spec.count() == len(expected)


@settings(max_examples=200, deadline=None)
@given(
    targets=st.lists(small_tokens(), min_size=1, max_size=3),
    allowed=st.lists(
        st.tuples(st.integers(0, 1023), st.integers(22, 32)).map(
            lambda pair: ipaddress.ip_network((0x0A000000 + pair[0], pair[1]), strict=False)
        ),
        max_size=3,
    ),
)
def test_first_outside_matches_the_model(targets: list[str], allowed: list[ipaddress.IPv4Network]) -> None:
    spec = parse_targets(" ".join(targets))
    outside = [t.address for t in spec if not any(t.address in network for network in allowed)]
    found = spec.first_outside(allowed)
    if not outside:
        assert found is None
    else:
        assert found in outside


# -- edges a mutant of the parser would cross (a scan outside the given range is a safety matter) ---------


@pytest.mark.parametrize(
    ("spec", "count", "first", "last"),
    [
        ("10.0.0.0/32", 1, "10.0.0.0", "10.0.0.0"),
        ("10.0.0.7/31", 2, "10.0.0.6", "10.0.0.7"),
        ("10.0.0.0/24", 256, "10.0.0.0", "10.0.0.255"),
        ("10.0.0.0-255", 256, "10.0.0.0", "10.0.0.255"),
        ("10.0.0.255", 1, "10.0.0.255", "10.0.0.255"),
        ("10.0.0.250-255", 6, "10.0.0.250", "10.0.0.255"),
        ("10.0.0.5-5", 1, "10.0.0.5", "10.0.0.5"),
        ("2001:db8::1/128", 1, "2001:db8::1", "2001:db8::1"),
        ("2001:db8::/127", 2, "2001:db8::", "2001:db8::1"),
    ],
)
def test_accepted_boundaries(spec: str, count: int, first: str, last: str) -> None:
    parsed = parse_targets(spec)
    listed = [str(target.address) for target in parsed]
    assert (parsed.count(), listed[0], listed[-1], len(listed)) == (count, first, last, count)


def test_slash_zero_is_every_address_counted_not_expanded() -> None:
    assert parse_targets("10.0.0.0/0").count() == 2**32
    assert parse_targets("2001:db8::/0").count() == 2**128


#: Octets past 255, backwards ranges, prefixes past the family's width, non-ASCII digits.
REFUSED_TARGETS = [
    *["10.0.0.256", "10.0.0.250-300", "10.0.0.250-256", "10.0.0.300-301", "10.0.256-257.1", "10.0.0.6-5"],
    *["10.0.0.9-10.0.0.8", "10.0.0.0/33", "10.0.0.0/-1", "2001:db8::/129", "web1/33", "web1/-1"],
    *["10.0.0.1/²", "10.0.0.1/٣٢", "web1/٣", "10.0.0.1/+8", "٣.0.0.1", "10.0.0.٣"],
    "10.0.0.1/ 8",
]


@pytest.mark.parametrize("spec", REFUSED_TARGETS)
def test_refused_boundaries_are_target_spec_errors(spec: str) -> None:
    with pytest.raises(TargetSpecError, match=r"^bad target '") as caught:
        parse_targets(spec)
    assert "\n" not in str(caught.value)


def test_white_space_and_duplicates() -> None:
    assert addresses("  10.0.0.1 \t10.0.0.1,10.0.0.1\n") == ["10.0.0.1"]
    assert addresses("10.0.0.1 - 10.0.0.2") == ["10.0.0.1", "10.0.0.2"]


def test_a_host_name_longer_than_253_characters_is_refused() -> None:
    longest = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 characters: the DNS limit
    assert parse_targets(longest).host_names == (longest,)
    with pytest.raises(TargetSpecError, match="not an address, range, network or host name"):
        parse_targets(longest + "b")


def test_a_page_per_address_of_a_slash_16_counts_and_streams_exactly() -> None:
    """A /16 given address by address (as a scan hands its pages on), shuffled, with repeats and
    exclusions: count and iteration agree with the obvious set arithmetic (quadratic counting took
    hours on this; the suite's timeout stops such a regression)."""
    base = int(ipaddress.IPv4Address("198.19.0.0"))
    values = list(range(base, base + 65536))
    order = values[::7] + values  # every seventh address twice
    excluded = {base + n for n in range(0, 65536, 5)} | set(range(base + 1000, base + 2000))
    spec = parse_targets(
        [str(ipaddress.IPv4Address(v)) for v in order],
        ["198.19.3.232-198.19.7.207", *(str(ipaddress.IPv4Address(base + n)) for n in range(0, 65536, 5))],
    )
    expected = [v for v in dict.fromkeys(order) if v not in excluded]
    assert spec.count() == len(expected)
    assert [int(target.address) for target in spec] == expected
    assert spec.first_outside([ipaddress.ip_network("198.19.0.0/16")]) is None
    # The first token (in order) outside the lower half: every seventh address, 198.19.128.6 first.
    outside = spec.first_outside([ipaddress.ip_network("198.19.0.0/17")])
    assert outside == ipaddress.ip_address("198.19.128.6")


@settings(max_examples=200, deadline=None)
@given(
    targets=st.lists(small_tokens(), min_size=1, max_size=4),
    excludes=st.lists(small_tokens(), max_size=3),
    size=st.one_of(st.none(), st.integers(1, 300)),
)
def test_batches_hold_every_address_once_in_order(
    targets: list[str], excludes: list[str], size: int | None
) -> None:
    spec = parse_targets(" ".join(targets), " ".join(excludes))
    batches = list(spec.batches(size))
    held = [[int(target.address) for target in parse_targets(list(batch))] for batch in batches]
    assert [value for batch in held for value in batch] == sorted(int(target.address) for target in spec)
    if size is None:
        assert len(batches) <= 1
    else:  # full batches but the last (the tokens are IPv4: one family)
        assert all(len(batch) == size for batch in held[:-1])
        assert all(0 < len(batch) <= size for batch in held)


def test_counting_huge_octet_expressions_falls_back_to_boxes() -> None:
    spec = parse_targets("10.*.*.1-3,7 10.0.0.0/16 10.1.2.3", exclude="10.5.*.*")
    # 255 second octets x 256 x 4 values, plus the /16's addresses not of the form *.*.*.{1,2,3,7}
    assert spec.count() == 255 * 256 * 4 + (65536 - 256 * 4)
    # Batches of such an expression (more runs than are listed) expand its family, and hold it all.
    assert sum(parse_targets(list(batch)).count() for batch in spec.batches(100_000)) == spec.count()

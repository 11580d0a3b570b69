"""Property tests of the capability step ordering, against the page's rules restated as set comparisons."""

from __future__ import annotations

import re
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from midprobe.capabilities.errors import BadArgumentException
from midprobe.capabilities.model import Capability, CapabilityDefinition, MidServer, MidStatus
from midprobe.capabilities.selection import MidSelector, SelectionRequest, Step

NAMES = ("SSH", "SNMP", "WMI")
SELECTOR = MidSelector(tuple(CapabilityDefinition(name) for name in NAMES))

mid_capabilities = st.lists(
    st.builds(Capability, st.sampled_from((*NAMES, "ALL")), st.sampled_from(("", "a", "b", "*"))), max_size=5
)
requests = st.lists(
    st.builds(Capability, st.sampled_from(NAMES), st.sampled_from(("", "a", "b"))), max_size=3
)


@st.composite
def mid_lists(draw: st.DrawFn) -> list[MidServer]:
    capability_lists = draw(st.lists(mid_capabilities, max_size=6))
    return [
        MidServer(f"mid-{index}", MidStatus.UP, True, ("ALL",), (), (), tuple(capabilities))
        for index, capabilities in enumerate(capability_lists)
    ]


def pairs(mid: MidServer) -> set[tuple[str, str]]:
    return {(c.name, c.value) for c in mid.capabilities}


def exact(mid: MidServer, wanted: list[Capability]) -> bool:
    # Every requested pair is one of the MID's pairs; a MID's * pairs can never equal a request's value here.
    return all((w.name, w.value) in pairs(mid) for w in wanted)


def wildcard(mid: MidServer, wanted: list[Capability]) -> bool:
    return all(
        (w.name, w.value) in pairs(mid) or (w.value != "" and (w.name, "*") in pairs(mid)) for w in wanted
    )


def has_all(mid: MidServer) -> bool:
    return any(c.name == "ALL" for c in mid.capabilities)


def choose(mids: list[MidServer], wanted: list[Capability]) -> tuple[Step | None, list[str], dict[str, str]]:
    result = SELECTOR.select(mids, SelectionRequest(tuple(wanted)))
    return result.step, list(result.names), result.rejected


@settings(max_examples=300)
@given(mid_lists(), requests)
def test_if_any_mid_matches_exactly_the_result_is_exactly_the_exact_matchers(
    mids: list[MidServer], wanted: list[Capability]
) -> None:
    exact_names = [m.name for m in mids if exact(m, wanted)]
    step, chosen, _ = choose(mids, wanted)
    if exact_names:
        assert (step, chosen) == (Step.EXACT, exact_names)
    else:
        assert step is not Step.EXACT


@settings(max_examples=300)
@given(mid_lists(), requests)
def test_wildcard_is_used_only_without_exact_matches_and_returns_exactly_the_wildcard_matchers(
    mids: list[MidServer], wanted: list[Capability]
) -> None:
    step, chosen, _ = choose(mids, wanted)
    if step is Step.WILDCARD:
        assert not any(exact(m, wanted) for m in mids)
        assert chosen == [m.name for m in mids if wildcard(m, wanted)]
    if step is Step.EXACT:  # a MID that matches only through * never rides along with exact matches
        assert all(exact(m, wanted) for m in mids if m.name in chosen)


@settings(max_examples=300)
@given(mid_lists(), requests)
def test_all_is_used_only_when_no_mid_matches_exactly_or_by_wildcard(
    mids: list[MidServer], wanted: list[Capability]
) -> None:
    step, chosen, _ = choose(mids, wanted)
    some_match = any(wildcard(m, wanted) for m in mids)
    if step is Step.ALL:
        assert not some_match
        assert chosen == [m.name for m in mids if has_all(m)]
    if step is None:
        assert chosen == []
        assert not some_match
        assert not any(has_all(m) for m in mids)


@given(mid_lists(), requests)
def test_chosen_and_rejected_partition_the_input(mids: list[MidServer], wanted: list[Capability]) -> None:
    _, chosen, rejected = choose(mids, wanted)
    assert set(chosen).isdisjoint(rejected)
    assert set(chosen) | set(rejected) == {m.name for m in mids}
    assert all(reason.strip() for reason in rejected.values())


@given(mid_lists(), requests, st.randoms(use_true_random=False))
def test_the_order_of_the_mids_does_not_change_who_is_chosen(
    mids: list[MidServer], wanted: list[Capability], random: Random
) -> None:
    shuffled = list(mids)
    random.shuffle(shuffled)
    first, second = choose(mids, wanted), choose(shuffled, wanted)
    assert first[0] == second[0]
    assert set(first[1]) == set(second[1])


@given(mid_lists(), requests)
def test_adding_a_star_record_never_changes_an_exact_result(
    mids: list[MidServer], wanted: list[Capability]
) -> None:
    step, chosen, _ = choose(mids, wanted)
    if step is not Step.EXACT or not mids:
        return
    starred = [
        MidServer(
            m.name,
            m.status,
            m.validated,
            m.applications,
            (),
            (),
            (*m.capabilities, *(Capability(n, "*") for n in NAMES)),
        )
        for m in mids
    ]
    assert choose(starred, wanted)[:2] == (step, chosen)


@given(
    mid_lists(),
    requests,
    st.sampled_from(("Telnet", "ssh", "All Things", "nmap")),
    st.sampled_from(("", "a", "*")),
)
def test_an_undefined_name_always_raises_whatever_the_mids(
    mids: list[MidServer], wanted: list[Capability], undefined: str, value: str
) -> None:
    request = SelectionRequest((*wanted, Capability(undefined, value)))
    with pytest.raises(BadArgumentException, match=rf"^BadArgumentException: .*{re.escape(repr(undefined))}"):
        SELECTOR.select(mids, request)


@given(mid_lists(), requests, st.sampled_from([s for s in MidStatus if s is not MidStatus.UP]))
def test_a_mid_that_is_not_up_is_never_chosen(
    mids: list[MidServer], wanted: list[Capability], status: MidStatus
) -> None:
    down = [MidServer(m.name, status, True, ("ALL",), (), (), m.capabilities) for m in mids]
    unvalidated = [MidServer(m.name, MidStatus.UP, False, ("ALL",), (), (), m.capabilities) for m in mids]
    assert choose(down, wanted)[:2] == (None, [])
    assert choose(unvalidated, wanted)[:2] == (None, [])

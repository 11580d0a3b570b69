"""Credential ordering (affinity, order, file order, scope, public fallback) and the failure tracker."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from midprobe.probes.credentials import (
    PUBLIC_COMMUNITY_ID,
    Credential,
    CredentialStore,
    FailurePolicy,
    FailureTracker,
    InMemoryAffinityStore,
    Secret,
    SNMPCommunityCredential,
    SNMPv3Credential,
    SSHPasswordCredential,
    order_candidates,
    parse_credentials,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ssh(
    id_: str, order: int = 100, ranges: tuple[str, ...] = (), tags: frozenset[str] = frozenset()
) -> Credential:
    return SSHPasswordCredential(
        id=id_,
        order=order,
        user="u",
        password=Secret("pw-" + id_),
        ip_ranges=tuple(ipaddress.ip_network(r) for r in ranges),
        tags=tags,
    )


def community(id_: str, text: str = "c0mmunity", order: int = 100, version: str = "2c") -> Credential:
    return SNMPCommunityCredential(id=id_, community=Secret(text), order=order, version=version)  # type: ignore[arg-type]


def ids(credentials: tuple[Credential, ...]) -> list[str]:
    return [credential.id for credential in credentials]


def test_ascending_order_with_file_order_breaking_ties() -> None:
    creds = [ssh("c", 20), ssh("a", 10), ssh("d", 20), ssh("b", 10)]
    assert ids(order_candidates(creds, "198.18.0.10", "ssh")) == ["a", "b", "c", "d"]


def test_affinity_first_then_the_rest_in_order() -> None:
    creds = [ssh("a", 10), ssh("b", 20), ssh("c", 30)]
    assert ids(order_candidates(creds, "198.18.0.10", "ssh", affinity_id="c")) == ["c", "a", "b"]
    assert ids(order_candidates(creds, "198.18.0.10", "ssh", affinity_id="gone")) == ["a", "b", "c"]


def test_scope_by_ip_ranges_also_for_the_affinity() -> None:
    creds = [
        ssh("lab", 10, ("198.18.0.0/24",)),
        ssh("other", 20, ("198.18.1.0/24", "198.18.2.7")),
        ssh("any"),
    ]
    assert ids(order_candidates(creds, "198.18.0.10", "ssh", affinity_id="other")) == ["lab", "any"]
    assert ids(order_candidates(creds, "198.18.2.7", "ssh")) == ["other", "any"]
    assert ids(order_candidates(creds, "2001:db8::1", "ssh")) == ["any"]


def test_protocols_are_kept_apart_and_snmp_ends_with_public() -> None:
    creds = [ssh("s"), community("ro", order=5), SNMPv3Credential(id="v3", user="m", order=1)]
    assert ids(order_candidates(creds, "198.18.0.10", "ssh")) == ["s"]
    assert ids(order_candidates(creds, "198.18.0.10", "snmp")) == ["v3", "ro", PUBLIC_COMMUNITY_ID]
    assert ids(order_candidates(creds, "198.18.0.10", "snmp", snmp_public_fallback=False)) == ["v3", "ro"]
    with pytest.raises(ValueError, match="unknown protocol 'wmi'"):
        order_candidates(creds, "198.18.0.10", "wmi")


def test_public_is_not_added_twice_nor_when_the_request_restricts() -> None:
    assert ids(order_candidates([community("mine", "public")], "198.18.0.10", "snmp")) == ["mine"]
    v1_public = community("old", "public", version="1")
    assert ids(order_candidates([v1_public], "198.18.0.10", "snmp")) == ["old", PUBLIC_COMMUNITY_ID]
    creds = [community("ro"), community("rw")]
    assert ids(order_candidates(creds, "198.18.0.10", "snmp", restrict_id="rw")) == ["rw"]
    assert ids(order_candidates(creds, "198.18.0.10", "snmp", restrict_id="public")) == [PUBLIC_COMMUNITY_ID]
    assert ids(order_candidates(creds, "198.18.0.10", "snmp", restrict_tag="lab")) == []


def test_restriction_by_tag() -> None:
    creds = [
        ssh("a", tags=frozenset({"lab"})),
        ssh("b", tags=frozenset({"prod"})),
        ssh("c", tags=frozenset({"lab"})),
    ]
    assert ids(order_candidates(creds, "198.18.0.10", "ssh", restrict_tag="lab")) == ["a", "c"]
    assert ids(order_candidates(creds, "198.18.0.10", "ssh", restrict_tag="lab", restrict_id="c")) == ["c"]


def test_store_keeps_affinity_per_device_and_protocol() -> None:
    store = CredentialStore([ssh("a", 10), ssh("b", 20), community("ro")], affinity=InMemoryAffinityStore())
    store.record_success("198.18.0.10", "ssh", "b")
    assert ids(store.candidates("198.18.0.10", "ssh")) == ["b", "a"]
    assert ids(store.candidates("198.18.0.11", "ssh")) == ["a", "b"]
    assert ids(store.candidates("198.18.0.10", "snmp")) == ["ro", PUBLIC_COMMUNITY_ID]
    assert ids(store.candidates("198.18.0.10", "ssh", affinity_id="a")) == ["a", "b"]


def test_an_address_that_failed_every_credential_is_skipped_for_five_minutes() -> None:
    clock = FakeClock()
    store = CredentialStore([ssh("a")], tracker=FailureTracker(clock=clock))
    store.record_exhausted("198.18.0.10", "ssh")
    assert store.skip_remaining("198.18.0.10", "ssh") == 300.0
    assert store.skip_remaining("198.18.0.10", "snmp") == 0.0
    assert store.skip_remaining("198.18.0.11", "ssh") == 0.0
    clock.now += 299.9
    assert store.skip_remaining("198.18.0.10", "ssh") == pytest.approx(0.1)
    clock.now += 0.1
    assert store.skip_remaining("198.18.0.10", "ssh") == 0.0


def test_a_success_ends_the_skip() -> None:
    clock = FakeClock()
    store = CredentialStore([ssh("a")], tracker=FailureTracker(clock=clock))
    store.record_exhausted("198.18.0.10", "ssh")
    store.record_success("198.18.0.10", "ssh", "a")
    assert store.skip_remaining("198.18.0.10", "ssh") == 0.0


def test_per_address_failure_budget_holds_a_credential_back_on_that_address_only() -> None:
    clock = FakeClock()
    tracker = FailureTracker(FailurePolicy(per_address_limit=2, window_seconds=900), clock=clock)
    store = CredentialStore([ssh("a", 10), ssh("b", 20)], tracker=tracker)
    store.record_failure("198.18.0.10", "ssh", "a")
    assert ids(store.candidates("198.18.0.10", "ssh")) == ["a", "b"]
    clock.now += 10
    store.record_failure("198.18.0.10", "ssh", "a")
    assert ids(store.candidates("198.18.0.10", "ssh")) == ["b"]
    assert ids(store.candidates("198.18.0.11", "ssh")) == ["a", "b"]
    clock.now += 890  # the first failure ages out of the window
    assert ids(store.candidates("198.18.0.10", "ssh")) == ["a", "b"]


def test_credential_budget_across_addresses_protects_a_directory_account() -> None:
    clock = FakeClock()
    text = (
        '[[credential]]\nid = "domain"\ntype = "ssh_password"\nuser = "svc"\npassword = "x"\nfailure_budget = 3\n'
        '[[credential]]\nid = "local"\ntype = "ssh_password"\nuser = "root"\npassword = "y"\n'
    )
    store = CredentialStore.from_file(parse_credentials(text), tracker=FailureTracker(clock=clock))
    for host in ("198.18.0.10", "198.18.0.11", "198.18.0.12"):
        store.record_failure(host, "ssh", "domain")
        store.record_failure(host, "ssh", "local")
    assert ids(store.candidates("198.18.0.20", "ssh")) == ["local"]
    store.record_success("198.18.0.13", "ssh", "domain")  # a good login restarts the count
    assert ids(store.candidates("198.18.0.20", "ssh")) == ["domain", "local"]


def test_global_limit_from_the_policy() -> None:
    tracker = FailureTracker(FailurePolicy(per_credential_limit=1), clock=FakeClock())
    tracker.record_failure("198.18.0.10", "a")
    assert not tracker.allows("198.18.0.99", "a")
    assert tracker.allows("198.18.0.99", "a", budget=5)


def test_tracker_forgets_old_entries() -> None:
    clock = FakeClock()
    tracker = FailureTracker(FailurePolicy(window_seconds=10), clock=clock)
    for index in range(FailureTracker._PRUNE_EVERY):
        tracker.record_failure(f"198.18.{index // 256}.{index % 256}", "a")
        clock.now += 0.001
    clock.now += 20
    for _ in range(FailureTracker._PRUNE_EVERY):
        tracker.record_exhausted("198.18.9.9", "ssh")
    assert len(tracker._per_address) == 0


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="per_address_limit"):
        FailurePolicy(per_address_limit=0)


# -- properties ----------------------------------------------------------------------------------

NETWORKS = ["198.18.0.0/24", "198.18.1.0/24", "198.18.0.0/16", "198.18.0.10/32"]


@st.composite
def credential_lists(draw: st.DrawFn) -> list[Credential]:
    count = draw(st.integers(0, 8))
    result: list[Credential] = []
    for index in range(count):
        ranges = tuple(draw(st.lists(st.sampled_from(NETWORKS), max_size=2, unique=True)))
        tags = frozenset(draw(st.lists(st.sampled_from(["lab", "prod"]), max_size=2, unique=True)))
        if draw(st.booleans()):
            result.append(ssh(f"c{index}", draw(st.integers(0, 3)), ranges, tags))
        else:
            credential = SNMPCommunityCredential(
                id=f"c{index}",
                community=Secret(draw(st.sampled_from(["public", "private1"]))),
                order=draw(st.integers(0, 3)),
                ip_ranges=tuple(ipaddress.ip_network(r) for r in ranges),
                tags=tags,
            )
            result.append(credential)
    return result


@given(
    credential_lists(),
    st.sampled_from(["198.18.0.10", "198.18.1.5", "198.19.0.1"]),
    st.sampled_from(["ssh", "snmp"]),
    st.one_of(st.none(), st.sampled_from(["c0", "c1", "c2", "c5"])),
    st.one_of(st.none(), st.sampled_from(["lab", "prod"])),
)
def test_ordering_properties(
    creds: list[Credential], address: str, protocol: str, affinity: str | None, tag: str | None
) -> None:
    ordered = order_candidates(creds, address, protocol, affinity_id=affinity, restrict_tag=tag)
    configured = [c for c in ordered if c.id != PUBLIC_COMMUNITY_ID or c in creds]
    applicable = [
        c
        for c in creds
        if c.protocol == protocol and c.applies_to(address) and (tag is None or tag in c.tags)
    ]
    # exactly the applicable credentials (plus possibly public), each once
    assert sorted(ids(tuple(configured))) == sorted(c.id for c in applicable)
    assert len(set(ids(ordered))) == len(ordered)
    rest = [c for c in configured if c.id != affinity]
    if affinity is not None and any(c.id == affinity for c in applicable):
        assert ordered[0].id == affinity
    # the rest ascend by order, file order breaking ties
    position = {c.id: index for index, c in enumerate(creds)}
    keys = [(c.order, position[c.id]) for c in rest]
    assert keys == sorted(keys)
    # public: only for SNMP, only without a tag restriction, last, and never beside a configured v2c public
    has_public = bool(ordered) and ordered[-1].id == PUBLIC_COMMUNITY_ID and ordered[-1] not in creds
    configured_public = any(
        isinstance(c, SNMPCommunityCredential) and c.community.reveal() == "public" and c.version == "2c"
        for c in applicable
    )
    assert has_public == (protocol == "snmp" and tag is None and not configured_public)

"""Value tests: the built-in Resolve DNS matcher and user-registered matchers (ServiceNow's rules)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from midprobe.capabilities.errors import ConfigError
from midprobe.capabilities.value_tests import RESOLVE_DNS, ValueTestRegistry, resolve_dns

# -- the seed's Resolve DNS examples and rules ---------------------------------------------------------


def test_service_now_com_finds_both_seed_devices() -> None:
    assert resolve_dns("service-now.com", "lnxlab01.sandiego.service-now.com")
    assert resolve_dns("service-now.com", "dbsrv101.sanjose.service-now.com")


def test_sandiego_service_now_com_finds_only_lnxlab01() -> None:
    assert resolve_dns("sandiego.service-now.com", "lnxlab01.sandiego.service-now.com")
    assert not resolve_dns("sandiego.service-now.com", "dbsrv101.sanjose.service-now.com")


def test_the_value_is_prefaced_with_a_dot_so_a_partial_label_does_not_match() -> None:
    assert not resolve_dns("service-now.com", "lnxlab01.xservice-now.com")
    assert not resolve_dns("now.com", "lnxlab01.service-now.com")
    assert resolve_dns("com", "lnxlab01.service-now.com")  # one or more sub-domains, ending the string


def test_a_value_that_already_has_the_leading_dot_gets_no_second_one() -> None:
    assert resolve_dns(".service-now.com", "lnxlab01.sandiego.service-now.com")


def test_matching_names_must_end_with_the_domain() -> None:
    assert not resolve_dns("service-now.com", "service-now.com.example.org")


def test_the_bare_domain_itself_does_not_end_with_dot_domain() -> None:
    assert not resolve_dns("service-now.com", "service-now.com")


@pytest.mark.parametrize("name", ["lnxlab01.sandiego.service-now.com", "host.example.org", "x", ""])
def test_a_blank_value_matches_all_domains(name: str) -> None:
    assert resolve_dns("", name)
    assert resolve_dns("  ", name)


def test_dns_names_compare_case_insensitively() -> None:
    assert resolve_dns("SanDiego.Service-Now.COM", "LNXLAB01.sandiego.service-now.com")


def test_a_trailing_root_dot_is_ignored_on_either_side() -> None:
    assert resolve_dns("service-now.com.", "lnxlab01.sandiego.service-now.com")
    assert resolve_dns("service-now.com", "lnxlab01.sandiego.service-now.com.")
    assert not resolve_dns("sandiego.service-now.com.", "dbsrv101.sanjose.service-now.com.")


_LABEL = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?\Z")


@given(st.lists(_LABEL, min_size=1, max_size=4), st.lists(_LABEL, min_size=1, max_size=3))
def test_any_host_under_a_domain_matches_it(domain: list[str], host: list[str]) -> None:
    name = ".".join(domain)
    assert resolve_dns(name, ".".join(host + domain))
    assert resolve_dns(name.upper() + ".", ".".join(host + domain).upper())


@given(st.lists(_LABEL, min_size=1, max_size=3), st.lists(_LABEL, min_size=1, max_size=3))
def test_a_name_matches_a_domain_only_if_its_labels_end_with_the_domain_labels(
    domain: list[str], name: list[str]
) -> None:
    ends_with_labels = len(name) > len(domain) and name[-len(domain) :] == domain
    assert resolve_dns(".".join(domain), ".".join(name)) == ends_with_labels


# -- the registry ---------------------------------------------------------------------------------------


def test_resolve_dns_is_registered_by_default_and_can_be_left_out() -> None:
    assert RESOLVE_DNS in ValueTestRegistry()
    assert RESOLVE_DNS not in ValueTestRegistry(builtins=False)


def test_registries_are_per_instance() -> None:
    first, second = ValueTestRegistry(), ValueTestRegistry()
    first.register("site", lambda mid, requested: mid == requested[:3])
    assert "site" in first
    assert "site" not in second


def test_a_user_matcher_replaces_equality_and_sees_lower_cased_values() -> None:
    seen: list[tuple[str, str]] = []

    def prefix(mid_value: str, requested_value: str) -> bool:
        seen.append((mid_value, requested_value))
        return requested_value.startswith(mid_value)

    registry = ValueTestRegistry()
    registry.register("prefix", prefix)
    assert registry.matches("prefix", "Rack-1", "RACK-12")
    assert not registry.matches("prefix", "rack-2", "rack-12")
    assert seen == [("rack-1", "rack-12"), ("rack-2", "rack-12")]


def test_a_blank_mid_value_matches_every_request_without_asking_the_matcher() -> None:
    registry = ValueTestRegistry(builtins=False)
    registry.register("never", lambda mid, requested: False)
    assert registry.matches("never", "", "anything")
    assert not registry.matches("never", "x", "anything")


def test_a_duplicate_registration_is_an_error_unless_replacing() -> None:
    registry = ValueTestRegistry()
    with pytest.raises(ConfigError, match=r"'resolve_dns' is already registered"):
        registry.register(RESOLVE_DNS, lambda mid, requested: True)
    registry.register(RESOLVE_DNS, lambda mid, requested: True, replace=True)
    assert registry.matches(RESOLVE_DNS, "example.com", "other.org")


@pytest.mark.parametrize("name", ["", "has space", "1st", None])
def test_matcher_names_must_be_identifiers(name: object) -> None:
    with pytest.raises(ConfigError, match=r"must be an identifier"):
        ValueTestRegistry().register(name, lambda mid, requested: True)  # type: ignore[arg-type]


def test_an_unknown_matcher_name_lists_the_registered_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"no value test named 'resolve_dsn' is registered \(did you mean 'resolve_dns'\?\)"
    ):
        ValueTestRegistry().get("resolve_dsn")


def test_a_failing_user_matcher_becomes_a_one_line_config_error() -> None:
    registry = ValueTestRegistry()
    registry.register("broken", lambda mid, requested: 1 / 0 > 0)
    with pytest.raises(ConfigError, match=r"value test 'broken' failed on \('a', 'b'\): ZeroDivisionError"):
        registry.matches("broken", "a", "b")


def test_a_matcher_must_answer_true_or_false() -> None:
    registry = ValueTestRegistry()
    registry.register("sloppy", lambda mid, requested: "yes")  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigError, match=r"returned 'yes', expected True or False"):
        registry.matches("sloppy", "a", "b")

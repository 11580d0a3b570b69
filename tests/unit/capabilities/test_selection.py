"""MID selection, one test (or more) per sentence of the ServiceNow capabilities page and docs/ecc-reference.md section 3."""

from __future__ import annotations

import pytest

from midprobe.capabilities.errors import BadArgumentException, ConfigError
from midprobe.capabilities.ipranges import IPRange
from midprobe.capabilities.model import (
    Application,
    Capability,
    CapabilityDefinition,
    MidServer,
    MidStatus,
)
from midprobe.capabilities.selection import (
    MidSelector,
    SelectionPolicy,
    SelectionRequest,
    Step,
    Tier,
)
from midprobe.capabilities.value_tests import ValueTestRegistry

DEFINITIONS = (
    CapabilityDefinition("SSH"),
    CapabilityDefinition("SNMP"),
    CapabilityDefinition("Cloud Management"),
    CapabilityDefinition("Resolve DNS", "resolve_dns"),
)


def caps(*texts: str) -> tuple[Capability, ...]:
    """``"SSH"``, ``"Cloud Management:us-west"`` (display form) -> capabilities."""
    result = []
    for text in texts:
        name, _, value = text.partition(":")
        result.append(Capability(name, value))
    return tuple(result)


def mid(
    name: str,
    *capabilities: str,
    status: MidStatus = MidStatus.UP,
    validated: bool = True,
    applications: tuple[str, ...] = ("ALL",),
    ip_ranges: tuple[str, ...] = ("ALL",),
    excluded: tuple[str, ...] = (),
    nmap: bool = False,
) -> MidServer:
    return MidServer(
        name,
        status,
        validated,
        applications,
        tuple(IPRange.parse(text) for text in ip_ranges),
        tuple(IPRange.parse(text) for text in excluded),
        caps(*capabilities),
        nmap,
    )


def select(
    mids: list[MidServer],
    *requested: str,
    application: str | None = None,
    ip: str | None = None,
    policy: SelectionPolicy | None = None,
    selector: MidSelector | None = None,
) -> tuple[Step | None, list[str], dict[str, str]]:
    chooser = selector or MidSelector(DEFINITIONS, policy=policy)
    request = SelectionRequest.build(requested, application=application, ip=ip)
    result = chooser.select(mids, request)
    return result.step, list(result.names), result.rejected


# -- "The selector produces a list of suitable MIDs using filters in the following order:
#     server status > applications > IP range > capabilities." -------------------------------------------


def test_filters_apply_in_order_status_application_ip_range_capabilities() -> None:
    mids = [
        mid("down-wrong-app", "SSH", status=MidStatus.DOWN, applications=("Orchestration",)),
        mid("wrong-app-wrong-ip", "SSH", applications=("Orchestration",), ip_ranges=("172.16.0.0/12",)),
        mid("wrong-ip-no-ssh", "SNMP", ip_ranges=("172.16.0.0/12",)),
        mid("no-ssh", "SNMP", applications=("Discovery",)),
        mid("good", "SSH", applications=("Discovery",), ip_ranges=("10.0.0.0/8",)),
    ]
    step, chosen, rejected = select(mids, "SSH", application="Discovery", ip="10.1.2.3")
    assert (step, chosen) == (Step.EXACT, ["good"])
    assert rejected["down-wrong-app"].startswith("status is Down")
    assert rejected["wrong-app-wrong-ip"].startswith("does not serve application 'Discovery'")
    assert rejected["wrong-ip-no-ssh"].startswith("10.1.2.3 is outside its IP ranges (172.16.0.0/12)")
    assert rejected["no-ssh"] == "no SSH capability, and no ALL capability"


# -- status: "A MID only takes work while it is Up and validated." --------------------------------------------


@pytest.mark.parametrize("status", [status for status in MidStatus if status is not MidStatus.UP])
def test_only_up_mid_servers_are_selected(status: MidStatus) -> None:
    step, chosen, rejected = select([mid("m", "SSH", status=status), mid("up", "SNMP")], "SSH")
    assert chosen == []
    assert step is None
    assert rejected["m"] == f"status is {status.value} (selectable statuses: Up)"


def test_an_up_mid_that_is_not_validated_is_not_selected() -> None:
    step, chosen, rejected = select([mid("m", "SSH", validated=False)], "SSH")
    assert (step, chosen) == (None, [])
    assert rejected["m"].startswith("not validated")


# -- applications: "ALL = every application" --------------------------------------------------------------


def test_a_mid_serves_only_its_applications_and_all_serves_every_application() -> None:
    mids = [
        mid("disco", "SSH", applications=("Discovery",)),
        mid("orch", "SSH", applications=("Orchestration",)),
        mid("every", "SSH", applications=("ALL",)),
        mid("none", "SSH", applications=()),
    ]
    _, chosen, rejected = select(mids, "SSH", application="Discovery")
    assert chosen == ["disco", "every"]
    assert rejected["orch"] == "does not serve application 'Discovery' (its applications: Orchestration)"
    assert rejected["none"] == "does not serve application 'Discovery' (its applications: none)"


def test_without_an_application_request_the_application_filter_is_skipped() -> None:
    _, chosen, _ = select([mid("orch", "SSH", applications=("Orchestration",))], "SSH")
    assert chosen == ["orch"]


# -- IP ranges: "type Include or Exclude; an ALL range = every address; ranges as single IPs, a-b, /n;
#     excluded ranges are ignored for MIDs with the ALL application" --------------------------------------------


def test_the_address_must_be_in_an_included_range_and_not_in_an_excluded_one() -> None:
    sandiego = mid(
        "mid-sandiego",
        "SSH",
        applications=("Discovery",),
        ip_ranges=("10.0.0.0/8", "192.168.1.10-192.168.1.50", "172.16.5.5"),
        excluded=("10.9.0.0/16",),
    )
    for address in ("10.1.1.1", "192.168.1.10", "192.168.1.50", "172.16.5.5"):
        assert select([sandiego], "SSH", ip=address)[1] == ["mid-sandiego"], address
    for address in ("192.168.1.51", "172.16.5.6", "11.0.0.1", "2001:db8::1"):
        assert select([sandiego], "SSH", ip=address)[1] == [], address
    _, chosen, rejected = select([sandiego], "SSH", ip="10.9.3.4")
    assert chosen == []
    assert rejected["mid-sandiego"] == "10.9.3.4 is in its excluded IP range 10.9.0.0/16"


def test_excluded_ranges_are_ignored_for_a_mid_with_the_all_application() -> None:
    every = mid("every", "SSH", applications=("ALL",), ip_ranges=("10.0.0.0/8",), excluded=("10.9.0.0/16",))
    assert select([every], "SSH", ip="10.9.3.4")[1] == ["every"]
    assert select([every], "SSH", ip="10.9.3.4", application="Discovery")[1] == ["every"]


def test_the_all_range_holds_every_ipv4_and_ipv6_address() -> None:
    anywhere = mid("anywhere", "SSH", ip_ranges=("ALL",))
    for address in ("0.0.0.0", "203.0.113.9", "2001:db8::1", "::1"):
        assert select([anywhere], "SSH", ip=address)[1] == ["anywhere"]


def test_ipv6_ranges_select_ipv6_targets() -> None:
    six = mid(
        "six",
        "SSH",
        ip_ranges=("2001:db8::/32",),
        excluded=("2001:db8:bad::/48",),
        applications=("Discovery",),
    )
    assert select([six], "SSH", ip="2001:db8:1::5")[1] == ["six"]
    assert select([six], "SSH", ip="2001:db8:bad::5")[1] == []
    assert select([six], "SSH", ip="10.0.0.1")[1] == []


def test_a_mid_without_ranges_serves_no_address_but_any_request_without_one() -> None:
    bare = mid("bare", "SSH", ip_ranges=())
    assert select([bare], "SSH", ip="10.0.0.1")[2]["bare"] == "10.0.0.1 is outside its IP ranges (none)"
    assert select([bare], "SSH")[1] == ["bare"]


# -- "if a step finds at least one MID server, the remaining steps are skipped" ------------------------------


def test_the_first_step_that_finds_a_mid_wins() -> None:
    mids = [mid("exact", "SSH:lab"), mid("wild", "SSH:*"), mid("all", "ALL")]
    assert select(mids, "SSH=lab")[:2] == (Step.EXACT, ["exact"])
    assert select(mids[1:], "SSH=lab")[:2] == (Step.WILDCARD, ["wild"])
    assert select(mids[2:], "SSH=lab")[:2] == (Step.ALL, ["all"])
    assert select([mid("other", "SNMP")], "SSH=lab")[:2] == (None, [])


# -- 1. "Exact value match: Find each MID Server containing capabilities with name/value pairs with an exact
#       match to all requested capability name/value pairs. Blank is a valid value. * values are ignored." --------


def test_exact_step_needs_every_requested_pair() -> None:
    mids = [mid("both", "SSH", "SNMP:public"), mid("ssh-only", "SSH"), mid("snmp-only", "SNMP:public")]
    step, chosen, rejected = select(mids, "SSH", "SNMP=public")
    assert (step, chosen) == (Step.EXACT, ["both"])
    assert rejected["ssh-only"] == "no SNMP capability, and no ALL capability"


def test_blank_is_a_valid_value_that_equals_only_blank() -> None:
    mids = [mid("blank", "SSH"), mid("valued", "SSH:lab")]
    assert select(mids, "SSH")[:2] == (Step.EXACT, ["blank"])
    assert select(mids, "SSH=lab")[:2] == (Step.EXACT, ["valued"])
    assert (
        select([mid("valued", "SSH:lab")], "SSH")[2]["valued"]
        == "no match for SSH (it has SSH:lab), and no ALL capability"
    )


def test_exact_values_are_compared_exactly() -> None:
    assert select([mid("m", "Cloud Management:us-west")], "Cloud Management=US-West")[1] == []
    assert select([mid("m", "Cloud Management:us-west")], "Cloud Management=us-west2")[1] == []


def test_wildcard_values_are_ignored_at_the_exact_step() -> None:
    mids = [mid("star", "SSH:*"), mid("lab", "SSH:lab")]
    step, chosen, rejected = select(mids, "SSH=lab")
    assert (step, chosen) == (Step.EXACT, ["lab"])
    assert rejected["star"] == (
        "SSH:lab matches only a * value, and exact matches come first (the exact step found 1 MID server)"
    )


def test_a_mid_may_carry_several_values_of_one_capability() -> None:
    both = mid("both", "Cloud Management:us-west", "Cloud Management:us-east")
    assert select([both], "Cloud Management=us-east")[:2] == (Step.EXACT, ["both"])


def test_no_requested_capability_means_every_suitable_mid_matches_exactly() -> None:
    assert select([mid("a"), mid("b", "SSH")])[:2] == (Step.EXACT, ["a", "b"])


# -- 2. "Wildcard value match: The same as an exact value match, but also allows a non-blank request value to
#       match MID server capability records containing value *." ---------------------------------------------------


def test_wildcard_step_lets_a_non_blank_request_match_a_star() -> None:
    mids = [mid("star", "Cloud Management:*"), mid("east", "Cloud Management:us-east")]
    assert select(mids, "Cloud Management=eu-central")[:2] == (Step.WILDCARD, ["star"])


def test_a_blank_request_never_matches_a_star() -> None:
    step, chosen, rejected = select([mid("star", "SSH:*")], "SSH")
    assert (step, chosen) == (None, [])
    assert rejected["star"] == "no match for SSH (it has SSH:*), and no ALL capability"


def test_the_wildcard_step_still_needs_every_other_pair_exactly() -> None:
    mids = [mid("star-no-snmp", "SSH:*"), mid("star-snmp", "SSH:*", "SNMP")]
    assert select(mids, "SSH=lab", "SNMP")[:2] == (Step.WILDCARD, ["star-snmp"])
    assert select(mids, "SSH=lab", "SNMP=public")[:2] == (None, [])


# -- 3. "Special capability name ALL: Find each MID Server containing the special capability name ALL, ignoring
#       capability's value field." -----------------------------------------------------------------------------


def test_all_step_ignores_the_value_of_all() -> None:
    mids = [mid("all-blank", "ALL"), mid("all-valued", "ALL:whatever"), mid("ssh-other", "SSH:other")]
    step, chosen, rejected = select(mids, "SSH=lab")
    assert (step, chosen) == (Step.ALL, ["all-blank", "all-valued"])
    assert rejected["ssh-other"] == "no match for SSH:lab (it has SSH:other), and no ALL capability"


def test_all_is_not_used_while_an_earlier_step_finds_a_mid() -> None:
    _, chosen, rejected = select([mid("ssh", "SSH"), mid("all", "ALL")], "SSH")
    assert chosen == ["ssh"]
    assert rejected["all"].startswith(
        "no SSH capability; its ALL capability counts only when no step before it"
    )


# -- "If the requested capability name does not exist in the ecc_agent_capability table, BadArgumentException
#     is thrown rather than falling back to the ALL capability." ------------------------------------------------


def test_an_undefined_capability_raises_instead_of_falling_back_to_all() -> None:
    with pytest.raises(
        BadArgumentException, match=r"^BadArgumentException: requested capability not defined: 'WMI'"
    ):
        select([mid("all", "ALL"), mid("every", "ALL", applications=("ALL",))], "WMI")


def test_an_undefined_capability_raises_before_any_filter_even_with_no_mids() -> None:
    with pytest.raises(BadArgumentException, match=r"'Telnet'.*there is no fallback to ALL"):
        select([], "SSH", "Telnet")
    with pytest.raises(BadArgumentException):
        select([mid("down", status=MidStatus.DOWN)], "Telnet", application="Nothing", ip="10.0.0.1")


def test_an_undefined_name_that_differs_only_in_case_gets_a_suggestion() -> None:
    with pytest.raises(BadArgumentException, match=r"'ssh' \(did you mean 'SSH'\?\)"):
        select([mid("ssh", "SSH")], "ssh")


def test_all_and_nmap_are_always_defined() -> None:
    selector = MidSelector(())
    assert selector.defined_names == ("ALL", "Nmap")
    assert selector.select([mid("n", nmap=True)], SelectionRequest.build(["Nmap"])).names == ("n",)


# -- Value tests: "A capability may have a script f(mid_value, requested_value) (values lower-cased) that
#    replaces equality; a blank MID value matches every request." ------------------------------------------------


def test_the_seed_example_service_now_com_finds_both_devices() -> None:
    corp = mid("corp", "Resolve DNS:service-now.com")
    for device in ("lnxlab01.sandiego.service-now.com", "dbsrv101.sanjose.service-now.com"):
        assert select([corp], f"Resolve DNS={device}")[:2] == (Step.EXACT, ["corp"]), device


def test_the_seed_example_sandiego_service_now_com_finds_only_lnxlab01() -> None:
    sandiego = mid("sandiego", "Resolve DNS:sandiego.service-now.com")
    assert select([sandiego], "Resolve DNS=lnxlab01.sandiego.service-now.com")[1] == ["sandiego"]
    step, chosen, rejected = select([sandiego], "Resolve DNS=dbsrv101.sanjose.service-now.com")
    assert (step, chosen) == (None, [])
    assert rejected["sandiego"] == (
        "no match for Resolve DNS:dbsrv101.sanjose.service-now.com (it has Resolve DNS:sandiego.service-now.com), "
        "and no ALL capability"
    )


def test_a_blank_resolve_dns_value_matches_all_domains() -> None:
    anyname = mid("any", "Resolve DNS")
    for device in ("lnxlab01.sandiego.service-now.com", "host.example.org", "x"):
        assert select([anyname], f"Resolve DNS={device}")[:2] == (Step.EXACT, ["any"])


def test_resolve_dns_through_selection_is_case_insensitive_and_ignores_the_root_dot() -> None:
    sandiego = mid("sandiego", "Resolve DNS:SanDiego.Service-Now.com.")
    assert select([sandiego], "Resolve DNS=LNXLAB01.sandiego.service-now.com.")[1] == ["sandiego"]


def test_both_seed_mids_found_for_lnxlab01_but_only_corp_for_dbsrv101() -> None:
    mids = [
        mid("sandiego", "Resolve DNS:sandiego.service-now.com"),
        mid("corp", "Resolve DNS:service-now.com"),
    ]
    assert select(mids, "Resolve DNS=lnxlab01.sandiego.service-now.com")[1] == ["sandiego", "corp"]
    assert select(mids, "Resolve DNS=dbsrv101.sanjose.service-now.com")[1] == ["corp"]


def test_a_user_value_test_replaces_equality_with_lower_cased_values() -> None:
    registry = ValueTestRegistry()
    calls: list[tuple[str, str]] = []

    def rack(mid_value: str, requested_value: str) -> bool:
        calls.append((mid_value, requested_value))
        return requested_value.startswith(mid_value + "-")

    registry.register("rack_prefix", rack)
    selector = MidSelector((CapabilityDefinition("Rack", "rack_prefix"),), value_tests=registry)
    mids = [mid("r1", "Rack:R1"), mid("r2", "Rack:r2"), mid("any", "Rack")]
    assert select(mids, "Rack=R1-U07", selector=selector)[1] == ["r1", "any"]
    assert ("r1", "r1-u07") in calls
    assert all(mid_value for mid_value, _ in calls)  # the blank MID value never reached the script


def test_a_star_still_counts_at_the_wildcard_step_for_value_tested_capabilities() -> None:
    mids = [mid("star", "Resolve DNS:*"), mid("other", "Resolve DNS:example.org")]
    assert select(mids, "Resolve DNS=host.example.com")[:2] == (Step.WILDCARD, ["star"])


def test_an_unregistered_value_test_fails_when_the_selector_is_built() -> None:
    with pytest.raises(ConfigError, match=r"no value test named 'site' is registered"):
        MidSelector((CapabilityDefinition("Site", "site"),))


# -- Nmap: "Installing nmap on a MID adds the Nmap capability automatically; removing nmap removes it;
#    ... ALL does not imply it." --------------------------------------------------------------------------------


def test_the_nmap_capability_follows_nmap_installed() -> None:
    mids = [mid("with", nmap=True), mid("without", nmap=False)]
    step, chosen, rejected = select(mids, "Nmap")
    assert (step, chosen) == (Step.EXACT, ["with"])
    assert rejected["without"] == "no Nmap capability (nmap is not installed on it), and no ALL capability"


def test_all_does_not_imply_nmap() -> None:
    step, chosen, rejected = select([mid("all", "ALL")], "Nmap")
    assert (step, chosen) == (None, [])
    assert rejected["all"].endswith("it has ALL, but ALL does not imply Nmap")
    assert select([mid("all", "ALL", nmap=True)], "Nmap", "SSH=lab")[:2] == (Step.ALL, ["all"])


# -- Display: "A capability with a value is shown as name:value (e.g. Cloud Management:us-west)." -------------


def test_us_west_cloud_management_is_shown_as_name_colon_value_and_matched_exactly() -> None:
    mids = [
        mid("west", "Cloud Management:us-west"),
        mid("east", "Cloud Management:us-east"),
        mid("star", "Cloud Management:*"),
    ]
    step, chosen, rejected = select(mids, "Cloud Management=us-west")
    assert (step, chosen) == (Step.EXACT, ["west"])
    assert [str(c) for c in mids[0].capabilities] == ["Cloud Management:us-west"]
    assert "it has Cloud Management:us-east" in rejected["east"]


# -- The result -------------------------------------------------------------------------------------------------


def test_every_mid_not_chosen_has_a_reason_and_order_is_kept() -> None:
    mids = [mid("c", "SSH"), mid("b", "SNMP"), mid("a", "SSH", status=MidStatus.DOWN), mid("d", "SSH")]
    result = MidSelector(DEFINITIONS).select(mids, SelectionRequest.build(["SSH"]))
    assert result.names == ("c", "d")
    assert [rejection.mid_server for rejection in result.rejections] == ["b", "a"]
    assert result.to_json() == {
        "step": "exact",
        "mid_servers": ["c", "d"],
        "rejected": {
            "b": "no SSH capability, and no ALL capability",
            "a": "status is Down (selectable statuses: Up)",
        },
    }


def test_no_match_is_an_empty_result_with_step_none() -> None:
    result = MidSelector(DEFINITIONS).select([mid("b", "SNMP")], SelectionRequest.build(["SSH"]))
    assert result.to_json() == {
        "step": None,
        "mid_servers": [],
        "rejected": {"b": "no SSH capability, and no ALL capability"},
    }


def test_duplicate_mid_names_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"MID server names must be unique; repeated: a"):
        select([mid("a"), mid("a")])


def test_match_step_judges_one_mid_without_filters() -> None:
    selector = MidSelector(DEFINITIONS)
    down_star = mid("m", "SSH:*", status=MidStatus.DOWN)
    assert selector.match_step(down_star, caps("SSH:lab")) is Step.WILDCARD
    with pytest.raises(BadArgumentException):
        selector.match_step(down_star, caps("Telnet"))


# -- "Auto-selection prefers suitable Up MIDs, then a configured default MID, then suitable Upgrading/Paused
#    ones." (opt-in; the default policy is the issue's: Up and validated only) -------------------------------------


FALLBACK = SelectionPolicy(default_mid_server="default", include_upgrading_and_paused=True)


def test_suitable_up_mids_come_before_the_default_and_upgrading_ones() -> None:
    mids = [mid("up", "SSH"), mid("default", "SNMP"), mid("upgrading", "SSH", status=MidStatus.UPGRADING)]
    result = MidSelector(DEFINITIONS, policy=FALLBACK).select(mids, SelectionRequest.build(["SSH"]))
    assert (result.tier, result.step, result.names) == (Tier.UP, Step.EXACT, ("up",))
    assert result.rejected["upgrading"] == (
        "status is Upgrading: Upgrading/Paused MID servers are used only when no Up MID server fits"
    )


def test_the_default_mid_is_next_regardless_of_ranges_and_capabilities() -> None:
    mids = [
        mid("other", "SNMP"),
        mid("default", "SNMP", ip_ranges=("172.16.0.0/12",), applications=("Discovery",)),
        mid("paused", "SSH", status=MidStatus.PAUSED),
    ]
    result = MidSelector(DEFINITIONS, policy=FALLBACK).select(
        mids, SelectionRequest.build(["SSH"], ip="10.0.0.1", application="Discovery")
    )
    assert (result.tier, result.step, result.names) == (Tier.DEFAULT, None, ("default",))
    assert result.to_json(include_tier=True)["tier"] == "default"


def test_an_upgrading_mid_passed_over_for_the_default_says_why() -> None:
    # the default MID wins its tier; the Upgrading MID that would have matched is told it waits for Up ones
    mids = [mid("default", "SNMP"), mid("upgrading", "SSH", status=MidStatus.UPGRADING)]
    result = MidSelector(DEFINITIONS, policy=FALLBACK).select(mids, SelectionRequest.build(["SSH"]))
    assert (result.tier, result.names) == (Tier.DEFAULT, ("default",))
    assert result.rejected == {
        "upgrading": "status is Upgrading: Upgrading/Paused MID servers are used only when no Up MID server fits"
    }


def test_an_upgrading_default_mid_comes_after_suitable_upgrading_ones() -> None:
    # ladder rungs 3 and 4: suitable Upgrading/Paused MIDs, then the default MID if it is Upgrading/Paused
    default = mid("default", "SNMP", status=MidStatus.UPGRADING)
    paused = mid("paused", "SSH", status=MidStatus.PAUSED)
    selector = MidSelector(DEFINITIONS, policy=FALLBACK)
    result = selector.select([default, paused], SelectionRequest.build(["SSH"]))
    assert (result.tier, result.names) == (Tier.UPGRADING_OR_PAUSED, ("paused",))
    result = selector.select([default], SelectionRequest.build(["SSH"]))
    assert (result.tier, result.names) == (Tier.DEFAULT_UPGRADING_OR_PAUSED, ("default",))


def test_a_capability_defined_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match="'SSH' is defined twice"):
        MidSelector((CapabilityDefinition("SSH"), CapabilityDefinition("SNMP"), CapabilityDefinition("SSH")))


def test_the_default_mid_must_be_up_and_validated_and_really_have_nmap() -> None:
    selector = MidSelector(DEFINITIONS, policy=SelectionPolicy(default_mid_server="default"))
    for default in (mid("default", status=MidStatus.DOWN), mid("default", validated=False)):
        assert (
            selector.select([default], SelectionRequest.build(["SSH"], application="Discovery")).names == ()
        )
    assert selector.select([mid("default", "ALL")], SelectionRequest.build(["Nmap"])).names == ()


def test_the_default_mid_need_not_serve_the_application() -> None:
    # "The default MID Server does not need to meet any criteria (application, IP range, ... capability)"
    selector = MidSelector(DEFINITIONS, policy=SelectionPolicy(default_mid_server="default"))
    result = selector.select(
        [mid("default", applications=("Orchestration",))],
        SelectionRequest.build(["SSH"], application="Discovery"),
    )
    assert (result.tier, result.names) == (Tier.DEFAULT, ("default",))


def test_upgrading_and_paused_mids_are_the_last_resort_with_the_same_steps() -> None:
    mids = [
        mid("up", "SNMP"),
        mid("upgrading-star", "SSH:*", status=MidStatus.UPGRADING),
        mid("paused-exact", "SSH:lab", status=MidStatus.PAUSED),
        mid("draining", "SSH:lab", status=MidStatus.DRAINING),
    ]
    policy = SelectionPolicy(include_upgrading_and_paused=True)
    result = MidSelector(DEFINITIONS, policy=policy).select(mids, SelectionRequest.build(["SSH=lab"]))
    assert (result.tier, result.step, result.names) == (
        Tier.UPGRADING_OR_PAUSED,
        Step.EXACT,
        ("paused-exact",),
    )
    assert result.rejected["up"] == "no SSH capability, and no ALL capability"
    assert result.rejected["upgrading-star"].startswith(
        "SSH:lab matches only a * value, and exact matches come first"
    )
    assert result.rejected["draining"].startswith(
        "status is Draining (selectable statuses: Up, or Upgrading/Paused"
    )


def test_without_a_fallback_policy_upgrading_mids_are_never_chosen() -> None:
    result = MidSelector(DEFINITIONS).select(
        [mid("u", "SSH", status=MidStatus.UPGRADING)], SelectionRequest.build(["SSH"])
    )
    assert result.names == ()
    assert result.tier is None


# -- "Configure a default MID Server for each application": the application's own default, else the one
#    of the ALL application -------------------------------------------------------------------------------


PER_APPLICATION = SelectionPolicy(
    default_mid_server="all-default",
    applications=(
        Application("Discovery", default_mid_server="discovery-default"),
        Application("Orchestration", default_mid_server="orchestration-default"),
    ),
)
DEFAULTS = [
    mid("busy", "SNMP"),
    mid("all-default", "SNMP"),
    mid("discovery-default", "SNMP"),
    mid("orchestration-default", "SNMP"),
]


@pytest.mark.parametrize(
    ("application", "expected"),
    [
        ("Discovery", "discovery-default"),
        ("Orchestration", "orchestration-default"),
        ("Service Mapping", "all-default"),  # no default of its own
        (None, "all-default"),  # a request that names no application
    ],
)
def test_each_application_uses_its_own_default_mid(application: str | None, expected: str) -> None:
    result = MidSelector(DEFINITIONS, policy=PER_APPLICATION).select(
        DEFAULTS, SelectionRequest.build(["SSH"], application=application)
    )
    assert (result.tier, result.names) == (Tier.DEFAULT, (expected,))


def test_the_all_default_stands_in_when_the_applications_default_is_not_up() -> None:
    mids = [*DEFAULTS[:2], mid("discovery-default", "SNMP", status=MidStatus.DOWN)]
    result = MidSelector(DEFINITIONS, policy=PER_APPLICATION).select(
        mids, SelectionRequest.build(["SSH"], application="Discovery")
    )
    assert (result.tier, result.names) == (Tier.DEFAULT, ("all-default",))


def test_a_suitable_up_mid_still_beats_the_applications_default() -> None:
    mids = [*DEFAULTS, mid("ssh", "SSH")]
    result = MidSelector(DEFINITIONS, policy=PER_APPLICATION).select(
        mids, SelectionRequest.build(["SSH"], application="Discovery")
    )
    assert (result.tier, result.names) == (Tier.UP, ("ssh",))


def test_an_undefined_capability_raises_even_when_a_default_mid_is_configured() -> None:
    selector = MidSelector(DEFINITIONS, policy=PER_APPLICATION)
    with pytest.raises(
        BadArgumentException, match=r"^BadArgumentException: requested capability not defined: .Telnet."
    ):
        selector.select(DEFAULTS, SelectionRequest.build(["Telnet"], application="Discovery"))


# -- the status ladder: Up > default (Up) > Upgrading/Paused > default (Upgrading/Paused) > the rest >
#    the default whatever its status ------------------------------------------------------------------------


EVERY_LEVEL = SelectionPolicy(default_mid_server="default", include_other_statuses=True)


@pytest.mark.parametrize(
    ("present", "tier", "chosen"),
    [
        (("up", "default-up", "paused", "down"), Tier.UP, "up"),
        (("default-up", "paused", "down"), Tier.DEFAULT, "default-up"),
        (("paused", "default-paused", "down"), Tier.UPGRADING_OR_PAUSED, "paused"),
        (("default-paused", "down"), Tier.DEFAULT_UPGRADING_OR_PAUSED, "default-paused"),
        (("down", "default-down"), Tier.OTHER_STATUSES, "down"),
        (("default-down", "unvalidated-down"), Tier.DEFAULT_ANY_STATUS, "default-down"),
    ],
)
def test_the_status_ladder_is_walked_in_servicenows_order(
    present: tuple[str, ...], tier: Tier, chosen: str
) -> None:
    kinds = {
        "up": mid("up", "SSH"),
        "paused": mid("paused", "SSH", status=MidStatus.PAUSED),
        "down": mid("down", "SSH", status=MidStatus.DRAINED),
        "unvalidated-down": mid("unvalidated-down", "SSH", status=MidStatus.DOWN, validated=False),
        # the default MID has no SSH and serves another range: as the default it is used anyway
        "default-up": mid("default", "SNMP", ip_ranges=("172.16.0.0/12",)),
        "default-paused": mid("default", "SNMP", status=MidStatus.PAUSED),
        "default-down": mid("default", "SNMP", status=MidStatus.DOWN),
    }
    mids = [kinds[name] for name in present]
    result = MidSelector(DEFINITIONS, policy=EVERY_LEVEL).select(
        mids, SelectionRequest.build(["SSH"], ip="10.0.0.1")
    )
    assert (result.tier, result.names) == (tier, (kinds[chosen].name,))


def test_mids_of_the_other_statuses_wait_for_every_better_rung() -> None:
    mids = [
        mid("paused", "SSH", status=MidStatus.PAUSED),
        mid("failed", "SSH", status=MidStatus.UPGRADE_FAILED),
    ]
    result = MidSelector(DEFINITIONS, policy=EVERY_LEVEL).select(mids, SelectionRequest.build(["SSH"]))
    assert result.names == ("paused",)
    assert result.rejected["failed"] == (
        "status is Upgrade Failed: MID servers that are not Up, Upgrading or Paused are used only "
        "when no other MID server fits"
    )


def test_other_statuses_imply_upgrading_and_paused() -> None:
    policy = SelectionPolicy(include_other_statuses=True)
    result = MidSelector(DEFINITIONS, policy=policy).select(
        [mid("down", "SSH", status=MidStatus.DOWN), mid("upgrading", "SSH", status=MidStatus.UPGRADING)],
        SelectionRequest.build(["SSH"]),
    )
    assert (result.tier, result.names) == (Tier.UPGRADING_OR_PAUSED, ("upgrading",))


def test_without_other_statuses_a_down_default_is_never_chosen() -> None:
    policy = SelectionPolicy(default_mid_server="default", include_upgrading_and_paused=True)
    result = MidSelector(DEFINITIONS, policy=policy).select(
        [mid("default", "SSH", status=MidStatus.DOWN)], SelectionRequest.build(["SSH"])
    )
    assert result.names == ()
    assert result.rejected["default"] == (
        "status is Down (selectable statuses: Up, or Upgrading/Paused when no Up MID server fits)"
    )


# -- "Many applications (such as Discovery) allow Up or Degraded MID Servers, other applications only
#    allow Up MID Servers." ----------------------------------------------------------------------------------


def test_discovery_takes_a_degraded_mid_as_if_it_were_up() -> None:
    mids = [mid("degraded", "SSH", status=MidStatus.DEGRADED), mid("up", "SSH")]
    step, chosen, _ = select(mids, "SSH", application="Discovery")
    assert (step, chosen) == (Step.EXACT, ["degraded", "up"])


def test_other_applications_refuse_a_degraded_mid() -> None:
    mids = [mid("degraded", "SSH", status=MidStatus.DEGRADED)]
    _, chosen, rejected = select(mids, "SSH", application="Orchestration")
    assert chosen == []
    assert rejected["degraded"] == "status is Degraded (selectable statuses: Up)"


def test_for_discovery_the_rejection_names_degraded_as_selectable() -> None:
    _, chosen, rejected = select([mid("down", "SSH", status=MidStatus.DOWN)], "SSH", application="Discovery")
    assert chosen == []
    assert rejected["down"] == "status is Down (selectable statuses: Up or Degraded)"


def test_whether_an_application_accepts_degraded_mids_is_configurable() -> None:
    mids = [mid("degraded", "SSH", status=MidStatus.DEGRADED)]
    policy = SelectionPolicy(
        applications=(
            Application("Discovery", accepts_degraded=False),
            Application("Service Mapping", accepts_degraded=True),
        )
    )
    assert select(mids, "SSH", application="Discovery", policy=policy)[1] == []
    assert select(mids, "SSH", application="Service Mapping", policy=policy)[1] == ["degraded"]

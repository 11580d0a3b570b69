"""The capability model: display as ``name:value``, blank / value / ``*``, MID statuses, and Nmap's rules."""

from __future__ import annotations

import dataclasses

import pytest

from midprobe.capabilities.errors import ConfigError, NotAllowedByCapability
from midprobe.capabilities.ipranges import IPRange
from midprobe.capabilities.model import (
    Capability,
    CapabilityDefinition,
    MidServer,
    MidStatus,
)


def test_a_capability_with_a_value_is_shown_as_name_colon_value() -> None:
    assert str(Capability("Cloud Management", "us-west")) == "Cloud Management:us-west"


def test_a_blank_capability_is_shown_by_its_name_alone() -> None:
    assert str(Capability("SSH")) == "SSH"


def test_value_kinds_blank_string_and_wildcard() -> None:
    assert Capability("SSH").is_blank
    assert not Capability("SSH").is_wildcard
    assert Capability("SSH", "*").is_wildcard
    assert not Capability("SSH", "*").is_blank
    value = Capability("SSH", "lab")
    assert not value.is_blank
    assert not value.is_wildcard


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SSH", Capability("SSH")),
        ("Cloud Management=us-west", Capability("Cloud Management", "us-west")),
        (
            "Resolve DNS=lnxlab01.sandiego.service-now.com",
            Capability("Resolve DNS", "lnxlab01.sandiego.service-now.com"),
        ),
        ("Tag=a=b", Capability("Tag", "a=b")),
        ("SSH=", Capability("SSH")),
        (" SSH = * ", Capability("SSH", "*")),
    ],
)
def test_command_line_requests_parse_as_name_equals_value(text: str, expected: Capability) -> None:
    assert Capability.parse_request(text) == expected


@pytest.mark.parametrize("text", ["", "=value", "   "])
def test_a_request_without_a_name_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match=r"--capability: expected NAME or NAME=VALUE"):
        Capability.parse_request(text)


def test_every_servicenow_status_exists_and_parses_case_insensitively() -> None:
    expected = [
        "Up",
        "Down",
        "Paused",
        "Upgrading",
        "Upgrade Failed",
        "Draining",
        "Drained",
        "Drain Failed",
        "Degraded",
    ]
    assert [status.value for status in MidStatus] == expected
    assert MidStatus.parse("upgrade failed") is MidStatus.UPGRADE_FAILED
    with pytest.raises(ConfigError, match=r"status: unknown MID server status 'Sleeping' \(one of: Up, Down"):
        MidStatus.parse("Sleeping")


def test_nmap_is_added_exactly_when_nmap_is_installed() -> None:
    without = MidServer("mid-a", capabilities=(Capability("SSH"),))
    with_nmap = dataclasses.replace(without, nmap_installed=True)
    assert [str(c) for c in without.effective_capabilities] == ["SSH"]
    assert [str(c) for c in with_nmap.effective_capabilities] == ["SSH", "Nmap"]
    assert "Nmap" in with_nmap.capability_names()
    assert "Nmap" not in without.capability_names()


@pytest.mark.parametrize("spelling", ["Nmap", "nmap", "NMAP"])
def test_nmap_cannot_be_assigned_by_hand(spelling: str) -> None:
    with pytest.raises(
        NotAllowedByCapability, match=r"capabilities\[2\]: .*added automatically when nmap is installed"
    ):
        MidServer("mid-a", capabilities=(Capability("SSH"), Capability(spelling)))


def test_there_is_no_way_to_add_or_remove_nmap_by_hand() -> None:
    mid = MidServer("mid-a", nmap_installed=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        mid.capabilities = (Capability("Nmap"),)  # type: ignore[misc]
    with pytest.raises(NotAllowedByCapability):
        dataclasses.replace(mid, capabilities=(Capability("Nmap"),))
    # The only route: the MID reports nmap gone, and the capability goes with it.
    assert "Nmap" not in dataclasses.replace(mid, nmap_installed=False).capability_names()
    public = {name for name in dir(MidServer) if not name.startswith("_")}
    assert not {name for name in public if "add" in name or "remove" in name}


def test_lists_are_stored_as_tuples_so_records_stay_hashable() -> None:
    mid = MidServer(
        "mid-a",
        applications=["Discovery"],  # type: ignore[arg-type]
        ip_ranges=[IPRange.parse("10.0.0.0/8")],  # type: ignore[arg-type]
        capabilities=[Capability("SSH")],  # type: ignore[arg-type]
    )
    assert mid.applications == ("Discovery",)
    assert hash(mid) == hash(dataclasses.replace(mid))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: MidServer(""), r"name: MID server name must be a non-empty string"),
        (lambda: MidServer(" mid"), r"leading or trailing spaces"),
        (lambda: MidServer("m", validated="yes"), r"validated: must be true or false"),  # type: ignore[arg-type]
        (lambda: MidServer("m", ip_ranges=("10.0.0.0/8",)), r"ip_ranges\[1\]: must be a IPRange"),  # type: ignore[arg-type]
        (lambda: MidServer("m", applications=("",)), r"applications\[1\]"),
        (lambda: Capability(""), r"capability name must be a non-empty string"),
        (
            lambda: CapabilityDefinition("ALL", "resolve_dns"),
            r"built-in capability ALL cannot have a value test",
        ),
        (
            lambda: CapabilityDefinition("Nmap", "resolve_dns"),
            r"built-in capability Nmap cannot have a value test",
        ),
    ],
)
def test_bad_records_are_refused_with_the_field_named(build: object, message: str) -> None:
    assert callable(build)
    with pytest.raises(ConfigError, match=message):
        build()

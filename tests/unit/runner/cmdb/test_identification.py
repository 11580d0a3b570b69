"""Identification rules: serial number, then MAC addresses, then name and IP; merges and conflicts."""

from __future__ import annotations

import pytest

from midprobe.capabilities.errors import ConfigError
from midprobe.runner.cmdb.identification import identify
from midprobe.runner.cmdb.model import ConfigurationItem, DiscoveredDevice, NetworkInterface, usable_serial

MAC_A, MAC_B, MAC_C = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"


def ci(
    sys_id: str,
    *,
    name: str = "host",
    ip: str | None = None,
    serial: str | None = None,
    macs: tuple[str, ...] = (),
    first: str = "2026-01-01",
) -> ConfigurationItem:
    return ConfigurationItem(
        sys_id=sys_id,
        sys_class_name="cmdb_ci_linux_server",
        name=name,
        ip_address=ip,
        mac_address=None,
        serial_number=serial,
        attributes={},
        first_discovered=first,
        last_discovered=first,
        last_discovery=None,
        interfaces=tuple(NetworkInterface(f"eth{i}", m) for i, m in enumerate(macs)),
        ip_addresses=(ip,) if ip else (),
    )


def device(
    *,
    name: str = "host",
    ip: str | None = "198.18.0.10",
    serial: str | None = None,
    macs: tuple[str, ...] = (),
) -> DiscoveredDevice:
    return DiscoveredDevice(
        "cmdb_ci_linux_server",
        name,
        ip_address=ip,
        serial_number=serial,
        interfaces=tuple(
            NetworkInterface(f"eth{i}", m, (ip,) if ip and i == 0 else ()) for i, m in enumerate(macs)
        ),
    )


def test_nothing_known_inserts() -> None:
    assert identify(device(serial="SN1"), []).action == "insert"


def test_serial_number_outranks_mac_and_name() -> None:
    by_name = ci("a" * 32, ip="198.18.0.10")
    by_serial = ci("b" * 32, name="other", ip="198.18.0.99", serial="SN1")
    decision = identify(device(serial="SN1"), [by_name, by_serial])
    assert (decision.action, decision.ci, decision.rule) == ("update", "b" * 32, "serial_number")
    assert decision.absorbed == ("a" * 32,)  # the name+IP CI was the same device: merged


def test_a_device_that_changed_address_is_found_by_its_mac() -> None:
    known = ci("a" * 32, ip="198.18.0.10", macs=(MAC_A,))
    decision = identify(device(ip="198.18.0.50", macs=(MAC_A, MAC_B)), [known])
    assert (decision.action, decision.ci, decision.rule) == ("update", "a" * 32, "mac_address")


def test_name_and_ip_match_only_together() -> None:
    known = ci("a" * 32, name="Host", ip="198.18.0.10")
    assert identify(device(name="host"), [known]).rule == "name_ip"  # names compare without case
    assert identify(device(name="other"), [known]).action == "insert"
    assert identify(device(name="host", ip="198.18.0.11"), [known]).action == "insert"


def test_two_cis_sharing_macs_are_merged_into_the_oldest() -> None:
    newer = ci("b" * 32, macs=(MAC_B,), first="2026-02-01")
    older = ci("c" * 32, macs=(MAC_A,), first="2026-01-01")
    decision = identify(device(ip=None, macs=(MAC_A, MAC_B)), [newer, older])
    assert (decision.ci, decision.absorbed) == ("c" * 32, ("b" * 32,))


def test_two_cis_with_the_same_serial_are_a_conflict_not_a_guess() -> None:
    decision = identify(device(serial="SN1"), [ci("a" * 32, serial="SN1"), ci("b" * 32, serial="SN1")])
    assert decision.action == "conflict"
    assert decision.conflicting == ("a" * 32, "b" * 32)
    assert "serial number 'SN1'" in decision.reason


def test_a_mac_match_with_another_serial_is_a_conflict() -> None:
    decision = identify(device(serial="SN2", macs=(MAC_A,)), [ci("a" * 32, serial="SN1", macs=(MAC_A,))])
    assert decision.action == "conflict"
    assert "'SN1'" in decision.reason
    assert "'SN2'" in decision.reason


def test_merge_candidates_with_other_serials_are_a_conflict() -> None:
    primary = ci("a" * 32, serial="SN1", macs=(MAC_A,))
    stranger = ci("b" * 32, serial="SN9", macs=(MAC_C,), ip="198.18.0.10")
    decision = identify(device(serial="SN1", macs=(MAC_A,)), [primary, stranger])
    assert decision.action == "conflict"
    assert decision.conflicting == ("a" * 32, "b" * 32)


def test_two_merge_candidates_with_different_serials_conflict_even_without_a_device_serial() -> None:
    one = ci("a" * 32, serial="SN1", macs=(MAC_A,))
    two = ci("b" * 32, serial="SN2", macs=(MAC_B,), first="2026-03-01")
    assert identify(device(ip=None, macs=(MAC_A, MAC_B)), [one, two]).action == "conflict"


@pytest.mark.parametrize(
    "placeholder", ["", "To be filled by O.E.M.", "0", "000000", "Default string", "N/A"]
)
def test_placeholder_serials_identify_nothing(placeholder: str) -> None:
    assert usable_serial(placeholder) is None
    assert (
        identify(device(serial=placeholder), [ci("a" * 32, name="x", serial=placeholder)]).action == "insert"
    )


def test_multicast_and_zero_macs_identify_nothing() -> None:
    known = ci("a" * 32, name="x", macs=("01:00:5e:00:00:01", "00:00:00:00:00:00"))
    assert identify(device(macs=("01:00:5e:00:00:01", "00:00:00:00:00:00")), [known]).action == "insert"


@pytest.mark.parametrize(
    "shared", ["00:00:5e:00:01:0a", "00:00:5e:00:02:0a", "00:00:0c:07:ac:01", "00:00:0c:9f:f0:01"]
)
def test_virtual_router_macs_shared_by_two_routers_identify_nothing(shared: str) -> None:
    other_router = ci("a" * 32, name="r1", macs=(shared, "02:00:00:00:00:01"))
    assert identify(device(macs=(shared, "02:00:00:00:00:02")), [other_router]).action == "insert"
    assert identify(device(macs=(shared, "02:00:00:00:00:01")), [other_router]).action == "update"


def test_bad_device_fields_are_refused_with_the_field_named() -> None:
    with pytest.raises(ConfigError, match="sys_class_name"):
        DiscoveredDevice("cmdb_ci_toaster", "x")
    with pytest.raises(ConfigError, match="mac_address"):
        NetworkInterface("eth0", "02:00:00:00:00")
    with pytest.raises(ConfigError, match="ip_address"):
        DiscoveredDevice("cmdb_ci_linux_server", "x", ip_address="198.18.0.300")
    assert NetworkInterface("eth0", "AABB.CCDD.EEFF").mac_address == "aa:bb:cc:dd:ee:ff"

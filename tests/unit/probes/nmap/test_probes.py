"""The Nmap topics' contract: registry, capability, policy and deadline checks before nmap starts; CMDB data."""

from __future__ import annotations

import asyncio
import time

import pytest

from midprobe.capabilities.errors import MissingCapability, ProbeTimeout, TargetNotAllowed
from midprobe.probes.base import ProbeContext
from midprobe.probes.nmap import host_scan, service_scan
from midprobe.probes.nmap.cmdb import FALLBACK_CMDB_CLASS, OS_FAMILY_CMDB_CLASSES, cmdb_class_for_os
from midprobe.probes.nmap.parse import NmapOSClass, NmapOSMatch
from midprobe.probes.registry import default_registry
from midprobe.probes.safety import TargetPolicy

NMAP_TOPICS = {
    "NmapHostScan",
    "NmapApplicationScan",
    "NmapDiscovery",
    "NmapServiceScan",
    "NmapOSScan",
    "NmapScript",
}


def test_every_nmap_topic_is_registered_and_needs_the_nmap_capability() -> None:
    registry = default_registry()
    assert set(registry.topics()) >= NMAP_TOPICS
    for topic in NMAP_TOPICS:
        assert registry.get(topic).required_capabilities == ("Nmap",)


@pytest.mark.parametrize("source", ["10.0.0.5", "8.8.8.8", "198.17.255.0/23", "192.168.1.1-3"])
def test_targets_outside_the_policy_are_refused_before_nmap_runs(source: str) -> None:
    params = host_scan.PROBE.parse_params(source, {"ports": "22"})
    context = ProbeContext(policy=TargetPolicy.lab(), capabilities=frozenset({"Nmap"}))
    with pytest.raises(TargetNotAllowed, match="outside the allowed networks"):
        asyncio.run(host_scan.PROBE.run(params, context))


def test_without_nmap_the_probe_names_the_missing_capability(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIDPROBE_NMAP", "/nonexistent/midprobe-test/nmap")
    params = service_scan.PROBE.parse_params("198.18.200.2", {"ports": "22"})
    context = ProbeContext(policy=TargetPolicy.only(["198.18.200.0/24"]))
    with pytest.raises(MissingCapability) as caught:
        asyncio.run(service_scan.PROBE.run(params, context))
    assert str(caught.value) == (
        "topic NmapServiceScan needs the Nmap capability, which this agent does not have"
    )


def test_a_deadline_already_passed_is_a_timeout_before_nmap_runs() -> None:
    params = host_scan.PROBE.parse_params("198.18.200.2", {"ports": "22"})
    context = ProbeContext(deadline=time.monotonic() - 1.0, policy=TargetPolicy.lab())
    with pytest.raises(ProbeTimeout, match=r"NmapHostScan of 198\.18\.200\.2 timed out"):
        asyncio.run(host_scan.PROBE.run(params, context))


def _match(family: str | None, device_type: str | None = "general purpose") -> NmapOSMatch:
    return NmapOSMatch(name="x", accuracy=90, classes=(NmapOSClass(device_type, "v", family, None, 90),))


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        ("Linux", "cmdb_ci_linux_server"),
        ("Windows", "cmdb_ci_win_server"),
        ("AIX", "cmdb_ci_aix_server"),
        ("HP-UX", "cmdb_ci_hpux_server"),
        ("Solaris", "cmdb_ci_solaris_server"),
        ("Mac OS X", "cmdb_ci_osx_server"),
        ("macOS", "cmdb_ci_osx_server"),
        ("FreeBSD", "cmdb_ci_hardware"),
        ("IOS", "cmdb_ci_hardware"),
        ("embedded", "cmdb_ci_hardware"),
        (None, "cmdb_ci_hardware"),
    ],
)
def test_os_family_maps_to_the_cmdb_class(family: str | None, expected: str) -> None:
    assert cmdb_class_for_os(_match(family)) == expected


def test_only_computers_become_servers() -> None:
    assert cmdb_class_for_os(_match("Linux", "printer")) == FALLBACK_CMDB_CLASS
    assert cmdb_class_for_os(_match("Windows", None)) == "cmdb_ci_win_server"
    assert cmdb_class_for_os(None) == FALLBACK_CMDB_CLASS
    assert cmdb_class_for_os(NmapOSMatch(name="x", accuracy=50)) == FALLBACK_CMDB_CLASS


def test_the_most_accurate_class_of_a_match_decides() -> None:
    match = NmapOSMatch(
        name="Linux or Windows",
        accuracy=91,
        classes=(
            NmapOSClass("general purpose", "Microsoft", "Windows", "10", 85),
            NmapOSClass("general purpose", "Linux", "Linux", "5.X", 91),
        ),
    )
    assert cmdb_class_for_os(match) == "cmdb_ci_linux_server"


def test_the_table_covers_every_class_ecc_names() -> None:
    assert set(OS_FAMILY_CMDB_CLASSES.values()) == {
        "cmdb_ci_linux_server",
        "cmdb_ci_win_server",
        "cmdb_ci_aix_server",
        "cmdb_ci_hpux_server",
        "cmdb_ci_solaris_server",
        "cmdb_ci_osx_server",
    }

"""Which of nmap's OS guesses a host is taken to run: the most accurate, wherever nmap lists it."""

from __future__ import annotations

import pytest

from midprobe.probes.nmap.cmdb import cmdb_class_for_host, cmdb_class_for_os
from midprobe.probes.nmap.parse import NmapAddress, NmapHost, NmapOSClass, NmapOSMatch

LINUX = NmapOSMatch("Linux 5.X", 96, (NmapOSClass("general purpose", "Linux", "Linux", "5.X", 96),))
WINDOWS = NmapOSMatch("Windows 10", 88, (NmapOSClass("general purpose", "Microsoft", "Windows", "10", 88),))
AIX = NmapOSMatch("AIX 7", 91, (NmapOSClass("general purpose", "IBM", "AIX", "7.X", 91),))


def _host(*matches: NmapOSMatch) -> NmapHost:
    return NmapHost("up", "syn-ack", (NmapAddress("198.18.0.10", "ipv4"),), os_matches=matches)


@pytest.mark.parametrize("order", [(LINUX, WINDOWS, AIX), (WINDOWS, AIX, LINUX), (AIX, LINUX, WINDOWS)])
def test_the_most_accurate_os_match_is_chosen_in_any_order(order: tuple[NmapOSMatch, ...]) -> None:
    host = _host(*order)
    assert host.best_os_match == LINUX
    assert cmdb_class_for_host(host) == "cmdb_ci_linux_server"


def test_no_os_match_is_none() -> None:
    assert _host().best_os_match is None


@pytest.mark.parametrize("reverse", [False, True])
def test_the_most_accurate_os_class_decides_in_any_order(reverse: bool) -> None:
    classes = (
        NmapOSClass("general purpose", "Microsoft", "Windows", "10", 85),
        NmapOSClass("general purpose", "IBM", "AIX", "7.X", 97),
        NmapOSClass("general purpose", "Linux", "Linux", "5.X", 90),
    )
    match = NmapOSMatch("mixed", 97, classes[::-1] if reverse else classes)
    assert cmdb_class_for_os(match) == "cmdb_ci_aix_server"

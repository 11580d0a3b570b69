"""A parsed nmap host: which OS guess it runs (the most accurate, wherever nmap lists it), its state and address."""

from __future__ import annotations

import pytest

from midprobe.capabilities.errors import ProtocolError
from midprobe.probes.nmap.cmdb import cmdb_class_for_host, cmdb_class_for_os
from midprobe.probes.nmap.parse import (
    GUESS_CONFIDENCE,
    MAX_XML_BYTES,
    NmapAddress,
    NmapHost,
    NmapOSClass,
    NmapOSMatch,
    NmapService,
    parse_nmap_xml,
)

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


def test_only_an_up_host_is_up() -> None:
    assert _host().is_up
    for status in ("down", "unknown", "skipped"):
        assert not NmapHost(status, "no-response", (NmapAddress("198.18.0.10", "ipv4"),)).is_up


def test_the_address_is_the_ip_one_even_when_the_mac_comes_first() -> None:
    mac = NmapAddress("02:00:00:00:00:01", "mac")
    for ip in (NmapAddress("198.18.0.10", "ipv4"), NmapAddress("2001:db8::10", "ipv6")):
        host = NmapHost("up", "syn-ack", (mac, ip))
        assert (host.address, host.mac) == (ip.addr, mac.addr)


def test_output_over_the_size_limit_is_refused_before_parsing() -> None:
    with pytest.raises(ProtocolError, match=f"{MAX_XML_BYTES + 1} bytes is more than the {MAX_XML_BYTES}"):
        parse_nmap_xml(b"<" * (MAX_XML_BYTES + 1))


def test_a_service_is_identified_only_when_probed_above_the_guess_mark() -> None:
    def service(method: str, confidence: int) -> NmapService:
        return NmapService("ssh", method, confidence, guessed=False)

    assert service("probed", 10).identified
    assert not service("probed", GUESS_CONFIDENCE).identified  # nmap's own "ssh?" guess
    assert not service("table", 10).identified

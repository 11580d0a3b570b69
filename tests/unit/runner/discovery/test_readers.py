"""What the scan reads back from a stage's ECC input is what the probe found: each reader is fed its
probe's own encoder output and compared with the probe's typed result."""

from __future__ import annotations

from midprobe.probes.banner import PROBE as BANNER_PROBE
from midprobe.probes.banner.parsers import BannerResult, HttpHead, PortBanner, SnmpIdentity, TlsPeer
from midprobe.probes.shazzam import reading_scanners
from midprobe.probes.snmp.errors import SnmpAuthenticationFailed, SnmpTimeout, SnmpUnreachable
from midprobe.probes.sweep.host_sweep import AliveHost, SweepResult, encode_sweep
from midprobe.runner.agent.probe_runner import _one_line
from midprobe.runner.discovery.readers import read_banners, read_sweep, snmp_agent_absent
from midprobe.runner.ecc.payload import ResultsPayload

READINGS = (
    PortBanner(22, "tcp", "BannerTCP", "open", "ssh", banner="SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10"),
    PortBanner(
        80,
        "tcp",
        "HTTP",
        "open",
        "http",
        banner="Apache/2.4.62",
        http=HttpHead("HTTP/1.1", 200, "OK", "Apache"),
    ),
    PortBanner(
        443,
        "tcp",
        "HTTPS",
        "open",
        "https",
        banner="nginx",
        http=HttpHead("HTTP/1.1", 301, "Moved", "nginx"),
        tls=TlsPeer("TLSv1.3", "TLS_AES_256_GCM_SHA384", subject="CN=web1"),
    ),
    PortBanner(9100, "tcp", "BannerTCP", "open", "jetdirect", detail="raw print port: not probed"),
    PortBanner(23, "tcp", "BannerTCP", "refused", "telnet"),
    PortBanner(
        161,
        "udp",
        "SNMP",
        "open",
        "snmp",
        banner="Cisco IOS Software",
        snmp=SnmpIdentity(".1.3.6.1.4.1.9.1.1208", "Cisco IOS Software"),
    ),
)


def test_banner_readings_come_back_as_the_probe_found_them() -> None:
    result = BannerResult("198.18.0.11", None, READINGS, 12)
    payload = ResultsPayload(results=tuple(BANNER_PROBE.encode_results(result)))

    reading = read_banners(payload)

    assert reading.banners == result.banners()  # TCP only: the SNMP tap's sysDescr is no TCP banner
    assert reading.scanners == reading_scanners(result.ports)
    assert [scanner.name for scanner in reading.scanners] == ["BannerTCP", "HTTP", "HTTPS", "SNMP"]
    assert reading.snmp_answered
    assert (reading.sys_object_id, reading.sys_descr) == (".1.3.6.1.4.1.9.1.1208", "Cisco IOS Software")


def test_a_host_whose_snmp_tap_stayed_silent_has_no_snmp_identity() -> None:
    result = BannerResult("198.18.0.10", None, READINGS[:2], 3)
    reading = read_banners(ResultsPayload(results=tuple(BANNER_PROBE.encode_results(result))))
    assert not reading.snmp_answered
    assert reading.sys_object_id is None


def test_the_sweep_says_which_addresses_answered_and_whether_every_one_was_decided() -> None:
    result = SweepResult(
        targets="198.18.0.0/30",
        method="auto",
        methods_used=("arp", "icmp"),
        raw_sockets=True,
        fallback_reason=None,
        addresses=4,
        alive=(AliveHost("198.18.0.1", "arp", 0.1), AliveHost("198.18.0.3", "icmp", 0.4)),
        unreachable=0,
        silent=2,
        unchecked=0,
        probes_sent=6,
        elapsed_ms=30,
        complete=True,
    )
    reading = read_sweep(ResultsPayload(results=(encode_sweep(result),)))
    assert reading.alive == {"198.18.0.1", "198.18.0.3"}
    assert reading.methods_used == ("arp", "icmp")
    assert reading.complete


def test_only_an_absent_snmp_agent_is_no_error() -> None:
    # The error line an agent writes for each failure (runner/agent/probe_runner.py's wording).
    silent = SnmpTimeout("198.18.0.10:161", 1.0, 2, community_based=True)
    closed = SnmpUnreachable("198.18.0.10:161", "port unreachable")
    refused = SnmpAuthenticationFailed("198.18.0.10:161", "lab")
    assert snmp_agent_absent(_one_line(silent))
    assert snmp_agent_absent(_one_line(closed))
    assert not snmp_agent_absent(_one_line(refused))

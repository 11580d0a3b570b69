"""Which enrichment requests a host that answered gets: one decision for a schedule and for the scan."""

from __future__ import annotations

from midprobe.probes.dns.resolver import ResolverConfig
from midprobe.runner.discovery.probe_requests import ENRICHMENT_TOPICS, enrichment_requests, ptr_resolver
from midprobe.runner.discovery.scanning import ScannedHost
from midprobe.runner.discovery.schedule import ENRICHMENTS
from midprobe.runner.scan.pipeline import ScanSettings

WEB = ScannedHost(
    ip="198.18.0.10",
    alive=True,
    active=True,
    host_name="",
    open_ports=frozenset({443, 22, 80}),
    refused_ports=frozenset({25, 21}),
)
SILENT = ScannedHost(ip="198.18.0.11", alive=True, active=True, host_name="", open_ports=frozenset())
RESOLVER = ptr_resolver(("198.18.0.15",))


def test_every_word_asks_its_topic_on_a_host_with_open_ports() -> None:
    requests = enrichment_requests(WEB, ENRICHMENT_TOPICS, resolver=RESOLVER, nmap_timeout_seconds=60)
    assert set(requests) == set(ENRICHMENT_TOPICS.values())
    assert requests["BannerSniff"] == {"host": "198.18.0.10", "snmp_public": "true", "ports": "22,80,443"}
    assert requests["DNSNameResolver"]["dns_servers"] == "198.18.0.15"
    assert requests["DNSNameResolver"]["ip_addresses"] == "198.18.0.10"
    assert requests["NmapServiceScan"]["ports"] == "22,80,443"
    assert requests["NmapServiceScan"]["timeout_ms"] == "60000"
    # -O compares the open ports with the lowest closed one.
    assert requests["NmapOSScan"]["ports"] == "22,80,443,21"


def test_a_host_without_open_ports_gets_only_what_needs_none() -> None:
    requests = enrichment_requests(SILENT, ENRICHMENT_TOPICS, resolver=RESOLVER, nmap_timeout_seconds=60)
    assert set(requests) == {"BannerSniff", "DNSNameResolver"}
    assert "ports" not in requests["BannerSniff"]  # the SNMP tap alone
    only_banners = enrichment_requests(SILENT, {"banners", "nmap_os"}, resolver=None, nmap_timeout_seconds=60)
    assert only_banners == {}


def test_names_need_a_resolver_and_banners_without_the_tap_leave_snmp_out() -> None:
    requests = enrichment_requests(WEB, {"names", "banners"}, resolver=None, nmap_timeout_seconds=60)
    assert set(requests) == {"BannerSniff"}
    assert requests["BannerSniff"]["snmp_public"] == "false"


def test_the_scan_options_are_a_schedule_enrichment_and_ask_the_same() -> None:
    resolver = ResolverConfig(servers=("198.18.0.15",), timeout=1.0, retries=1, sockets=1)
    settings = ScanSettings(ports=(22, 80), snmp_public=True, nmap_os=True, resolver=resolver)
    assert settings.enrichment == {"banners", "snmp_public", "nmap_os", "names"}
    plain = ScanSettings(ports=(22,), sniff_banners=False)
    assert plain.enrichment == frozenset()
    as_schedule = enrichment_requests(
        WEB, ["banners", "snmp_public", "nmap_os", "names"], resolver=RESOLVER, nmap_timeout_seconds=60
    )
    as_scan = enrichment_requests(WEB, settings.enrichment, resolver=resolver, nmap_timeout_seconds=60)
    assert as_scan == as_schedule


def test_a_schedule_takes_exactly_the_enrichment_words_there_are_requests_for() -> None:
    # schedule.py keeps its own list so that reading a schedule loads no ECC code.
    assert set(ENRICHMENTS) == set(ENRICHMENT_TOPICS)

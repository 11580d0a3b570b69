"""The ECC parameters of each probe request discovery and ``midprobe scan`` send (pure, light).

One place says how a phase asks its probe: the Shazzam port scan (ports, engine, wait, retries,
rate, exclusions), the host-discovery sweep before it (``HostSweep``), and the per-host
enrichment requests (``BannerSniff``, ``DNSNameResolver``, ``NmapServiceScan``, ``NmapOSScan``)
and classifiers (``SSHClassify``, ``SNMPClassify``) with the short waits a scan uses. The
orchestrator (``runner/discovery/orchestrator.py``) builds its Shazzam requests from a schedule
with :func:`shazzam_parameters`; the scan pipeline (``runner/scan/pipeline.py``) builds every one
of its stages' requests here, so both ask the probes the same way. Which enrichment requests a host
that answered the port scan gets is one decision too (:func:`enrichment_requests`): a schedule's
``enrichment`` words and the scan's options are the same words.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Final

from midprobe.probes.ports import format_ports
from midprobe.runner.ecc.pages import PAGE_ITEMS_PARAMETER, PAGE_WAIT_PARAMETER

if TYPE_CHECKING:  # the resolver package is loaded only by a scan that looks names up
    from midprobe.probes.dns.resolver import ResolverConfig
    from midprobe.runner.discovery.scanning import ScannedHost

__all__ = [
    "DNS_RETRIES",
    "DNS_TIMEOUT_S",
    "ROUTED_SWEEP_CHUNK",
    "SNMP_RETRIES",
    "SNMP_TIMEOUT_MS",
    "SSH_COMMAND_TIMEOUT_MS",
    "SSH_CONNECT_TIMEOUT_MS",
    "SWEEP_CHUNK",
    "SWEEP_TIMEOUT_MS",
    "banner_parameters",
    "enrichment_requests",
    "name_parameters",
    "nmap_os_parameters",
    "nmap_parameters",
    "nmap_services_parameters",
    "ptr_resolver",
    "shazzam_parameters",
    "snmp_classify_parameters",
    "ssh_classify_parameters",
    "sweep_parameters",
]

#: Addresses swept at a time before their live ones are port-scanned (a /22): the first chunk, and
#: every chunk on the scanner's own link, where the ARP sweep and the port scan share the kernel's
#: neighbour table (about 1,024 entries before it refuses).
SWEEP_CHUNK: Final = 1024
#: Routed (no ARP in the chunk before), a chunk is a /20: each chunk's port scan has a start and a
#: tail of its own (its last answers and retries), and a routed /18 scans about 20 % faster in
#: four chunks than in sixteen.
ROUTED_SWEEP_CHUNK: Final = 4096
#: The longest one chunk's sweep may take (ms; ``HostSweep``'s own ceiling).
SWEEP_TIMEOUT_MS: Final = 3_600_000
#: SSH timeouts for a classify run that should not wait minutes on one host (ms).
SSH_CONNECT_TIMEOUT_MS: Final = 5_000
SSH_COMMAND_TIMEOUT_MS: Final = 20_000
#: PTR lookups: a short wait, one retry, one socket per lookup.
DNS_TIMEOUT_S: Final = 1.0
DNS_RETRIES: Final = 1
#: SNMP per-attempt wait (ms) and retries: a host without an agent costs about 2 s.
SNMP_TIMEOUT_MS: Final = 1_000
SNMP_RETRIES: Final = 1
#: The enrichment words (a schedule's ``enrichment``, the scan's options) and the topic each runs.
ENRICHMENT_TOPICS: Final = {
    "banners": "BannerSniff",
    "snmp_public": "BannerSniff",
    "nmap_services": "NmapServiceScan",
    "nmap_os": "NmapOSScan",
    "names": "DNSNameResolver",
}


def shazzam_parameters(
    ports: str,
    *,
    engine: str = "auto",
    connect_wait_ms: int = 1000,
    retries: int = 2,
    rate: float | None = None,
    exclude: str = "",
    scanners: str | None = None,
    page_wait_ms: int | None = None,
    page_items: int | None = None,
) -> dict[str, str]:
    """A Shazzam request's parameters: ``ports`` in nmap syntax, the engine, its wait for one
    port's answer and its retries, the probe rate, the exclusions, when given the scanners to run
    (``GenericTCP`` alone: no readers; else Shazzam's default set), and with ``page_wait_ms`` its
    answer in pages as hosts are decided (a page at most that long after its first host, of at
    most ``page_items`` hosts)."""
    parameters = {
        "ports": ports,
        "connect_wait": str(connect_wait_ms),
        "engine": engine,
        "retries": str(retries),
    }
    if rate is not None:
        parameters["rate"] = repr(rate)
    if exclude:
        parameters["exclude"] = exclude
    if scanners is not None:
        parameters["scanners"] = scanners
    if page_wait_ms is not None:
        parameters[PAGE_WAIT_PARAMETER] = str(page_wait_ms)
    if page_items is not None:
        parameters[PAGE_ITEMS_PARAMETER] = str(page_items)
    return parameters


def sweep_parameters(
    blocks: Sequence[str],
    *,
    wait_ms: int,
    retries: int,
    rate: float | None,
    max_addresses: int = SWEEP_CHUNK,
) -> dict[str, str]:
    """A ``HostSweep`` of ``blocks`` (CIDR blocks or addresses of one family): its waits, retries
    and rate (``None``: the probe's own) bound it; the time cap only keeps a slow ``-T0`` sweep
    from being cut."""
    parameters = {
        "targets": " ".join(blocks),
        "wait": str(max(10, wait_ms)),
        "retries": str(retries),
        "sweep_timeout": str(SWEEP_TIMEOUT_MS),
        "max_addresses": str(max_addresses),
    }
    if rate is not None:
        parameters["rate"] = str(max(1, round(rate)))
    return parameters


def banner_parameters(address: str, open_ports: Sequence[int], *, snmp_public: bool) -> dict[str, str]:
    """``BannerSniff`` on ``open_ports`` (none: the SNMP tap alone, with ``snmp_public``)."""
    parameters = {"host": address, "snmp_public": "true" if snmp_public else "false"}
    if open_ports:
        parameters["ports"] = format_ports(tuple(open_ports))
    return parameters


def ptr_resolver(servers: Sequence[str]) -> ResolverConfig:
    """How PTR names are asked of ``servers`` (IP addresses): a short wait, one retry."""
    from midprobe.probes.dns.resolver import ResolverConfig

    return ResolverConfig(servers=tuple(servers), timeout=DNS_TIMEOUT_S, retries=DNS_RETRIES, sockets=1)


def name_parameters(address: str, resolver: ResolverConfig) -> dict[str, str]:
    """``DNSNameResolver`` (PTR) for ``address``, asking ``resolver``'s servers."""
    return {
        "ip_addresses": address,
        "dns_servers": ",".join(resolver.servers),
        "dns_port": str(resolver.port),
        "timeout": str(max(1, round(resolver.timeout * 1000))),
        "retries": str(resolver.retries),
        "concurrency": str(resolver.concurrency),
    }


def nmap_parameters(parameters: dict[str, str], timeout_seconds: float) -> dict[str, str]:
    """An nmap request's own parameters with what every nmap run of one host shares: no name
    lookups, ``-T4``, cut at ``timeout_seconds``."""
    return {
        **parameters,
        "resolve_names": "false",
        "timing": "4",
        "timeout_ms": str(round(timeout_seconds * 1000)),
    }


def nmap_services_parameters(open_ports: Sequence[int], *, syn: bool) -> dict[str, str]:
    """``NmapServiceScan`` (``-sV``) on the open ports, ``-sS`` or ``-sT``."""
    return {"ports": format_ports(tuple(open_ports)), "scan_technique": "syn" if syn else "connect"}


def nmap_os_parameters(open_ports: Sequence[int], refused_ports: Sequence[int]) -> dict[str, str]:
    """``NmapOSScan`` (``-O``); most accurate with one open and one closed port to compare."""
    return {"ports": format_ports((*open_ports, *refused_ports[:1])), "osscan_guess": "true"}


def ssh_classify_parameters() -> dict[str, str]:
    """``SSHClassify`` with short timeouts (a scan should not wait minutes on one host)."""
    return {
        "connect_timeout_ms": str(SSH_CONNECT_TIMEOUT_MS),
        "command_timeout_ms": str(SSH_COMMAND_TIMEOUT_MS),
        "channel_timeout_ms": str(SSH_COMMAND_TIMEOUT_MS),
    }


def snmp_classify_parameters() -> dict[str, str]:
    """``SNMPClassify`` with a short wait: a host without an agent costs about 2 s."""
    return {"timeout": str(SNMP_TIMEOUT_MS), "retries": str(SNMP_RETRIES)}


def enrichment_requests(
    host: ScannedHost,
    wanted: Collection[str],
    *,
    resolver: ResolverConfig | None,
    nmap_timeout_seconds: float,
    nmap_syn: bool = False,
) -> dict[str, dict[str, str]]:
    """The enrichment requests (topic -> parameters) of one host that answered the port scan, for
    the ``wanted`` words of :data:`ENRICHMENT_TOPICS`: banners (``BannerSniff``) and nmap (``-sV``,
    ``-O``, each cut at ``nmap_timeout_seconds``) where ports are open, the SNMP tap and the PTR
    name (at ``resolver``'s servers; none: no lookup) on any host that answered."""
    open_ports = sorted(host.open_ports)
    requests: dict[str, dict[str, str]] = {}
    if "names" in wanted and resolver is not None:
        requests["DNSNameResolver"] = name_parameters(host.ip, resolver)
    banners = open_ports if "banners" in wanted else []
    if banners or "snmp_public" in wanted:  # one BannerSniff reads both
        requests["BannerSniff"] = banner_parameters(host.ip, banners, snmp_public="snmp_public" in wanted)
    if open_ports and "nmap_services" in wanted:
        services = nmap_services_parameters(open_ports, syn=nmap_syn)
        requests["NmapServiceScan"] = nmap_parameters(services, nmap_timeout_seconds)
    if open_ports and "nmap_os" in wanted:
        os_scan = nmap_os_parameters(open_ports, sorted(host.refused_ports))
        requests["NmapOSScan"] = nmap_parameters(os_scan, nmap_timeout_seconds)
    return requests

"""``BannerSniff`` (our topic): the first bytes a host's open ports say, as typed, sanitised results.

Per TCP port (parameter ``ports``): HTTP ports get ``HEAD / HTTP/1.0`` and report the status line
and ``Server`` header; HTTPS ports the same over an unverified TLS handshake (certificate subject
and issuer recorded); every other port is given a NULL wait to speak first (an SSH identification
line, an FTP/SMTP greeting), and a port that stays silent gets the HEAD request too and a probe wait
for its answer, except raw print ports (9100-9107), which print what they receive and are never
sent anything. Both waits are 8 round trips of the port's connect, at least ``null_wait`` (120 ms)
and ``probe_wait`` (250 ms), at most ``banner_wait`` (Shazzam's BannerTCP wait, 1500 ms). SNMP (UDP 161, community ``public``: one GET of sysObjectID.0 and
sysDescr.0, 1000 ms wait, 2 taps) only with ``snmp_public=true``. Parsers and the encoder are pure;
see docs/banner.md for the parameters and the ``<result>`` layout.

Modules: ``defaults`` (the waits a Shazzam request shares), ``parsers`` (constants, typed results,
parameters, pure parsers), ``sniffer`` (the I/O), ``probe`` (the encoder and the ``BannerSniff`` probe
object). Import from here; each submodule is loaded when a name of it is first used, so the port
scan (``probes/shazzam.py``), which needs only ``defaults`` unless it reads banners, loads no other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from midprobe.probes.lazy import lazy_names

if TYPE_CHECKING:
    from midprobe.probes.banner.defaults import (
        DEFAULT_BANNER_WAIT_MS,
        DEFAULT_SNMP_TAPS,
        DEFAULT_SNMP_WAIT_MS,
    )
    from midprobe.probes.banner.parsers import (
        PRINT_PORTS,
        TOPIC,
        BannerParams,
        BannerResult,
        HttpHead,
        PortBanner,
        SnmpIdentity,
        TlsPeer,
        describe_certificate,
        guess_service,
        http_request,
        parse_banner_params,
        parse_http_head,
        parse_snmp_identity,
        sanitize,
        scanner_for,
        snmp_identity_request,
        ssh_identification,
    )
    from midprobe.probes.banner.probe import (
        BANNER_SNIFF_PROBE,
        PROBE,
        PROBES,
        BannerSniffProbe,
        encode_banners,
    )
    from midprobe.probes.banner.sniffer import sniff

#: Which submodule defines each name of the package.
_DEFINED_IN: dict[str, str] = {
    "DEFAULT_BANNER_WAIT_MS": "defaults",
    "DEFAULT_SNMP_TAPS": "defaults",
    "DEFAULT_SNMP_WAIT_MS": "defaults",
    "PRINT_PORTS": "parsers",
    "TOPIC": "parsers",
    "BannerParams": "parsers",
    "BannerResult": "parsers",
    "HttpHead": "parsers",
    "PortBanner": "parsers",
    "SnmpIdentity": "parsers",
    "TlsPeer": "parsers",
    "describe_certificate": "parsers",
    "guess_service": "parsers",
    "http_request": "parsers",
    "parse_banner_params": "parsers",
    "parse_http_head": "parsers",
    "parse_snmp_identity": "parsers",
    "sanitize": "parsers",
    "scanner_for": "parsers",
    "snmp_identity_request": "parsers",
    "ssh_identification": "parsers",
    "BANNER_SNIFF_PROBE": "probe",
    "PROBE": "probe",
    "PROBES": "probe",
    "BannerSniffProbe": "probe",
    "encode_banners": "probe",
    "sniff": "sniffer",
}


if not TYPE_CHECKING:  # the type checker reads the names above, and flags any other
    __getattr__ = lazy_names(__name__, _DEFINED_IN)


__all__ = [
    "BANNER_SNIFF_PROBE",
    "DEFAULT_BANNER_WAIT_MS",
    "DEFAULT_SNMP_TAPS",
    "DEFAULT_SNMP_WAIT_MS",
    "PRINT_PORTS",
    "PROBE",
    "PROBES",
    "TOPIC",
    "BannerParams",
    "BannerResult",
    "BannerSniffProbe",
    "HttpHead",
    "PortBanner",
    "SnmpIdentity",
    "TlsPeer",
    "describe_certificate",
    "encode_banners",
    "guess_service",
    "http_request",
    "parse_banner_params",
    "parse_http_head",
    "parse_snmp_identity",
    "sanitize",
    "scanner_for",
    "sniff",
    "snmp_identity_request",
    "ssh_identification",
]

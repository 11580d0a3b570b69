"""What ``midprobe scan`` says about one host, and its three renderings (table row, JSON line, ECC XML).

The JSON keys ``address``, ``hostname``, ``open_tcp_ports``, ``ci_class`` and ``evidence`` are a
contract (docs/scan.md); more keys may be added, these never change meaning.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from midprobe.probes.ports import service_name
from midprobe.probes.shazzam import ShazzamHost, ShazzamScanner, add_scanners, encode_host


@dataclass(frozen=True)
class HostReport:
    """Everything the scan learned about one address that answered, or whose scan is incomplete."""

    address: str
    hostname: str | None = None
    open_tcp_ports: tuple[int, ...] = ()
    #: Ports that answered with a reset (the host is alive, nothing listens there).
    refused_tcp_ports: tuple[int, ...] = ()
    ci_class: str | None = None
    confidence: float = 0.0
    evidence: tuple[str, ...] = ()
    #: Banners by port (SSH identification line, HTTP Server header, ...).
    banners: Mapping[int, str] = field(default_factory=dict)
    #: What nmap's version detection identified, by port (``ssh OpenSSH 9.2p1``), with ``--nmap``.
    services: Mapping[int, str] = field(default_factory=dict)
    #: Shazzam scanner elements for what the banner readers found (BannerTCP, HTTP/HTTPS, SNMP tap).
    reader_scanners: tuple[ShazzamScanner, ...] = ()
    #: The credential that worked, by protocol (``ssh``, ``snmp``): ids only, never secrets.
    credential_id: Mapping[str, str] = field(default_factory=dict)
    #: Facts from SSH (os name and version, kernel, ...).
    os: Mapping[str, str] | None = None
    sys_descr: str | None = None
    sys_object_id: str | None = None
    #: nmap's best OS guess, when ``--os`` was given.
    nmap_os: str | None = None
    #: How the open ports were found (``connect`` or ``syn``).
    engine: str = ""
    #: Problems met while probing this host (a probe that failed); the scan goes on.
    errors: tuple[str, ...] = ()
    #: Something answered (False only for an incomplete host nothing answered yet).
    alive: bool = True
    #: Why some of its ports were never probed (the kernel refused the sends: ENOBUFS); ``None``
    #: when every port was. Such a host is not known to be down.
    incomplete: str | None = None

    def to_json_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "address": self.address,
            "hostname": self.hostname,
            "open_tcp_ports": sorted(self.open_tcp_ports),
            "ci_class": self.ci_class,
            "confidence": self.confidence,
            "evidence": list(self.evidence),
            "banners": {str(port): text for port, text in sorted(self.banners.items())},
            "engine": self.engine,
        }
        if self.services:
            data["services"] = {str(port): text for port, text in sorted(self.services.items())}
        if self.credential_id:
            data["credential_id"] = dict(sorted(self.credential_id.items()))  # by protocol: stable
        if self.os is not None:
            data["os"] = dict(self.os)
        if self.sys_descr is not None:
            data["sys_descr"] = self.sys_descr
        if self.sys_object_id is not None:
            data["sys_object_id"] = self.sys_object_id
        if self.nmap_os is not None:
            data["nmap_os"] = self.nmap_os
        if self.errors:
            data["errors"] = list(self.errors)
        if self.incomplete is not None:
            data["incomplete"] = self.incomplete
        return data

    def to_json_line(self) -> str:
        return json.dumps(self.to_json_dict(), separators=(",", ":"))

    def to_shazzam_host(self) -> ShazzamHost:
        """The Shazzam view: one ``GenericTCP`` scanner per open and per refused port, plus the
        banner readers' scanners (BannerTCP, HTTP/HTTPS, SNMP), merged as the Shazzam probe does."""
        outcomes = [(port, "open") for port in self.open_tcp_ports]
        outcomes += [(port, "refused") for port in self.refused_tcp_ports]
        host_name, _, domain_name = (self.hostname or "").rstrip(".").partition(".")
        generic = ShazzamHost(
            ip=self.address,
            alive=self.alive,
            active=bool(self.open_tcp_ports),
            host_name=host_name,
            domain_name=domain_name,
            scanners=tuple(
                ShazzamScanner(
                    port=port,
                    result="open" if outcome == "open" else "refused",
                    portprobe=service_name(port),
                    service=service_name(port),
                )
                for port, outcome in sorted(outcomes)
            ),
            incomplete=self.incomplete,
        )
        return add_scanners(generic, self.reader_scanners)

    def to_shazzam_element(self) -> ET.Element:
        """The host as a Shazzam ``<host>`` element (docs/shazzam.md), the same as the Shazzam probe
        writes it, plus what enrichment added: ``ci_class`` on the host and ``<evidence>`` children."""
        host = encode_host(self.to_shazzam_host())
        if self.ci_class:
            host.set("ci_class", self.ci_class)
        for reason in self.evidence:
            ET.SubElement(host, "evidence").text = reason
        return host

    def table_row(self) -> tuple[str, str, str, str, str, str]:
        """The table's cells: address, host name, open ports, services (one a line), class, evidence."""
        ports = ", ".join(map(str, sorted(self.open_tcp_ports))) or "-"
        verdict = self.ci_class or ("incomplete" if self.incomplete is not None else "unknown")
        if self.ci_class and self.confidence:  # a class read back without its confidence shows none
            verdict += f" ({self.confidence:.2f})"
        why = "; ".join(self.evidence[:2])
        return self.address, self.hostname or "", ports, "\n".join(self.service_lines()), verdict, why

    def service_lines(self) -> tuple[str, ...]:
        """What listens on each open port, one line a port: nmap's identification when it made one
        (``22 ssh OpenSSH 9.2p1``), else the banner's short form (``80 http Apache/2.4.62``)."""
        lines = []
        for port in sorted(set(self.open_tcp_ports) | set(self.services) | set(self.banners)):
            if port in self.services:
                lines.append(f"{port} {self.services[port]}")
            elif port in self.banners and (short := short_banner(self.banners[port])):
                lines.append(f"{port} {service_name(port)} {short}")
        return tuple(lines)


def short_banner(banner: str) -> str:
    """A banner's gist: the software of an SSH identification line (``SSH-2.0-OpenSSH_9.2p1 Debian``
    -> ``OpenSSH_9.2p1``), the ``product/version`` of a Server header (``Apache/2.4.62 (Debian)``
    -> ``Apache/2.4.62``), else its first line with blanks collapsed."""
    first = " ".join(banner.strip().splitlines()[0].split()) if banner.strip() else ""
    if first.startswith("SSH-"):
        first = first.split("-", 2)[-1]
    word = first.split(" ", 1)[0]
    return word if first.startswith(word) and ("/" in word or "_" in word) else first

"""What a Shazzam answer says and which classifiers each host gets: the decisions discovery and
``midprobe scan`` share (pure, light: the scan reads every page of its port scan with it).

``read_shazzam`` lists the hosts that answered with their open (and refused) TCP ports;
``classification_order`` picks, from those ports and the behaviour (the protocols there are
credentials for), the classify probes that apply, in ServiceNow's port priority. Discovery
(``runner/discovery/orchestrator.py``) tries them one after another until one finds a class;
the scan runs those it has credentials for at once and classifies on everything they found.
"""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from midprobe.runner.ecc.payload import ResultsPayload

#: Windows classification ports (noted and skipped: midprobe has no WMI/WinRM probe yet).
WINDOWS_PORTS: Final = frozenset({135, 5985, 5986})
SSH_PORTS: Final = frozenset({22})
HTTP_PORTS: Final = frozenset({80, 443})
#: Classification topics in ServiceNow's port priority, with the behaviour protocol each needs.
CLASSIFIERS: Final = (("ssh", "SSHClassify"), ("snmp", "SNMPClassify"), ("nmap", "NmapHostScan"))


@dataclass(frozen=True)
class ScannedHost:
    """One host of a Shazzam result."""

    ip: str
    alive: bool
    active: bool
    host_name: str
    open_ports: frozenset[int]
    #: Listed only when the request lists refused ports (Shazzam's ``report_refused``).
    refused_ports: frozenset[int] = field(default_factory=frozenset)
    #: Why some ports were never probed (the kernel refused the sends: ENOBUFS); ``None``: all were.
    incomplete: str | None = None


def _ports(host: ET.Element) -> tuple[frozenset[int], frozenset[int]]:
    """The TCP ports GenericTCP (or a reader) found ``open``, and those it found ``refused``, on
    ``host`` (one pass over its scanners)."""
    found: dict[str, set[int]] = {"open": set(), "refused": set()}
    for scanner in host.iter("scanner"):
        ports = found.get(scanner.get("result", ""))
        port = scanner.get("port", "")
        if ports is not None and port.isdecimal() and scanner.get("protocol", "tcp") == "tcp":
            ports.add(int(port))
    return frozenset(found["open"]), frozenset(found["refused"])


def read_shazzam(payload: ResultsPayload) -> list[ScannedHost]:
    """The hosts a Shazzam input reports, in the order given (silent ones are not listed)."""
    hosts = []
    for result in payload.results:
        for host in result.iter("host"):
            ip = host.get("ip", "")
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                continue
            open_ports, refused_ports = _ports(host)
            name = host.get("hostName", "") or ""
            domain = host.get("domainName", "") or ""
            full = f"{name}.{domain}" if name and domain and "." not in name else name
            hosts.append(
                ScannedHost(
                    ip=ip,
                    alive=host.get("alive") == "true",
                    active=host.get("active") == "true",
                    host_name=full,
                    open_ports=open_ports,
                    refused_ports=refused_ports,
                    incomplete=host.get("incomplete"),
                )
            )
    return hosts


def classification_order(
    host: ScannedHost, behaviour: Sequence[str], *, nmap_available: bool
) -> tuple[list[str], list[str]]:
    """The classify topics to try for ``host`` in order, and notes on what was skipped and why."""
    topics: list[str] = []
    notes: list[str] = []
    if host.open_ports & WINDOWS_PORTS:
        notes.append(
            f"Windows ports {sorted(host.open_ports & WINDOWS_PORTS)} open: Windows classification is not implemented, skipped"
        )
    for protocol, topic in CLASSIFIERS:
        if protocol not in behaviour:
            notes.append(f"{topic} skipped: {protocol} is not in the schedule's behaviour")
        elif protocol == "ssh" and not host.open_ports & SSH_PORTS:
            notes.append("SSHClassify skipped: port 22 is not open")
        elif protocol == "nmap" and not nmap_available:
            notes.append("NmapHostScan skipped: no suitable MID has the Nmap capability")
        else:
            topics.append(topic)
    if host.open_ports & HTTP_PORTS and "http" in behaviour:
        notes.append("HTTP answered: HTTP classification adds no class on its own, noted")
    return topics, notes


__all__ = [
    "CLASSIFIERS",
    "HTTP_PORTS",
    "SSH_PORTS",
    "WINDOWS_PORTS",
    "ScannedHost",
    "classification_order",
    "read_shazzam",
]

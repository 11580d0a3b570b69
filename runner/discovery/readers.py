"""What the ECC inputs of the port scan, the host-discovery sweep and the enrichment probes say,
read into typed values (pure): the readers ``midprobe scan``'s reports and discovery's sensors
share.

``midprobe scan`` runs its stages as ECC topics through an embedded agent
(``runner/agent/embedded.py``), so what it reports is read from the same input payloads an
instance reads; discovery's orchestrator reads the host-discovery sweep with :func:`read_sweep`
(``runner/discovery/sensors.py`` has the classification and identification sensors). The
elements are those each probe's encoder writes (docs/ecc-reference.md, docs/banner.md,
docs/nmap.md, docs/sweep.md).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from midprobe.capabilities.errors import PayloadError
from midprobe.probes.classify import NmapOsClass
from midprobe.probes.shazzam import ShazzamScanner
from midprobe.runner.discovery.scanning import ScannedHost, read_shazzam

if TYPE_CHECKING:
    from midprobe.runner.ecc.payload import ResultsPayload

__all__ = [
    "BannerReading",
    "NmapReading",
    "PortScanPage",
    "SnmpReading",
    "SshReading",
    "SweepReading",
    "enrichment_summary",
    "read_banners",
    "read_host_name",
    "read_nmap",
    "read_port_scan",
    "read_snmp",
    "read_ssh",
    "read_sweep",
    "snmp_agent_absent",
]

#: The OS facts an SSHClassify input's ``<os>``/``<kernel>``/``<hostname>`` carry, by report key:
#: (report key, element, attribute; ``None``: the element's text).
OS_FACTS: Final = (
    ("name", "os", "name"),
    ("version", "os", "version"),
    ("id", "os", "id"),
    ("pretty_name", "os", "pretty_name"),
    ("kernel", "kernel", "name"),
    ("kernel_release", "kernel", "release"),
    ("machine", "kernel", "machine"),
    ("hostname", "hostname", None),
)
#: How an SNMPClassify error input begins when no agent answered (``SnmpTimeout``) or the port
#: is closed (``SnmpUnreachable``): nothing to report, not an error of the scan.
SNMP_ABSENT_PREFIXES: Final = ("SNMP request to ", "SNMP agent ")


def _true(element: ET.Element, name: str) -> bool:
    return element.get(name) == "true"


@dataclass(frozen=True)
class PortScanPage:
    """One page of the port scan's Shazzam answer, given as the scan goes (docs/shazzam.md)."""

    engine: str
    #: Addresses in the targets, and those decided up to this page.
    hosts_scanned: int
    hosts_done: int
    #: The hosts of this page that answered, as discovery's Shazzam sensor reads them.
    hosts: tuple[ScannedHost, ...]
    #: Each host name of the request and the address it resolved to (the first page only).
    names: dict[str, str] = field(default_factory=dict)


def _count(element: ET.Element, name: str, default: str | None = None) -> int:
    text = element.get(name, default)
    if text is None or not text.isdigit():
        raise PayloadError(f"Shazzam {name} {text!r} is not a number")
    return int(text)


def read_port_scan(payload: ResultsPayload) -> PortScanPage:
    """A page of a Shazzam answer in pages (raises ``PayloadError``); its hosts read by discovery's
    Shazzam sensor (``runner/discovery/scanning.py``)."""
    if len(payload.results) != 1 or payload.results[0].tag != "result":
        raise PayloadError("a Shazzam payload holds exactly one <result> element")
    element = payload.results[0]
    scanned = _count(element, "hosts_scanned")
    return PortScanPage(
        engine=element.get("engine", ""),
        hosts_scanned=scanned,
        # A whole answer (a Shazzam that cannot stream) has no count so far: every address is decided.
        hosts_done=_count(element, "hosts_done", str(scanned)),
        hosts=tuple(read_shazzam(payload)),
        names={target.get("name", ""): target.get("ip", "") for target in element.iter("target")},
    )


def addresses_decided(payload: ResultsPayload, *, listed: int) -> int:
    """How many addresses the pages of a Shazzam answer in ``payload`` decided in all: the last
    page's ``hosts_done`` (a whole answer: ``hosts_scanned``; neither: ``listed``, the hosts it
    lists, as ``read_shazzam`` read them)."""
    counts = [
        int(text)
        for result in payload.results
        if (text := result.get("hosts_done", result.get("hosts_scanned", ""))).isdigit()
    ]
    return max(counts) if counts else listed


@dataclass(frozen=True)
class BannerReading:
    """What a BannerSniff input says: TCP banners, the reader scanners, the SNMP tap's identity."""

    banners: dict[int, str] = field(default_factory=dict)
    scanners: tuple[ShazzamScanner, ...] = ()
    #: Whether the SNMP tap (community ``public``) answered, and what with.
    snmp_answered: bool = False
    sys_object_id: str | None = None
    sys_descr: str | None = None


def read_banners(payload: ResultsPayload) -> BannerReading:
    """The ``<scanner>`` elements of a BannerSniff input (``probes/banner/probe.py``'s layout)."""
    banners: dict[int, str] = {}
    scanners: list[ShazzamScanner] = []
    snmp_answered = False
    sys_object_id: str | None = None
    sys_descr: str | None = None
    for result in payload.results:
        for element in result.iter("scanner"):
            port_text = element.get("port", "")
            if not port_text.isdecimal():
                continue
            port, protocol = int(port_text), element.get("protocol", "tcp")
            text = element.get("banner_text", "")
            if protocol == "tcp" and text:
                banners[port] = text
            oid, descr = element.find("sysObjectID"), element.find("sysDescr")
            snmp = oid is not None or descr is not None
            if snmp and not snmp_answered:
                snmp_answered = True
                sys_object_id = oid.text if oid is not None else None
                sys_descr = descr.text if descr is not None else None
            reader = _reader_scanner(element, port, protocol, text, snmp, oid)
            if reader is not None:
                scanners.append(reader)
    return BannerReading(banners, tuple(scanners), snmp_answered, sys_object_id, sys_descr)


def _reader_scanner(
    element: ET.Element, port: int, protocol: str, text: str, snmp: bool, oid: ET.Element | None
) -> ShazzamScanner | None:
    """The Shazzam ``<scanner>`` for one reading (``probes/shazzam.py`` ``reading_scanners``' rule):
    SNMP, HTTP(S) or BannerTCP for an open port that said something; nothing otherwise."""
    if element.get("result") != "open":
        return None
    status = element.get("http_status", "")
    if snmp:
        name = "SNMP"
    elif status.isdecimal():
        name = "HTTPS" if element.get("tls_version") is not None else "HTTP"
    elif text:
        name = "BannerTCP"
    else:
        return None
    return ShazzamScanner(
        port=port,
        result="open",
        portprobe=element.get("portprobe", ""),
        service=element.get("service", ""),
        name=name,
        protocol=protocol,
        banner_text=text,
        http_status=int(status) if name in ("HTTP", "HTTPS") else None,
        sys_object_id=oid.text if name == "SNMP" and oid is not None else None,
    )


def read_host_name(payload: ResultsPayload) -> str | None:
    """The name of a DNSNameResolver input's one ``<reverse>`` answer, if it has one."""
    for result in payload.results:
        for reverse in result.iter("reverse"):
            return reverse.get("name") or None
    return None


@dataclass(frozen=True)
class SshReading:
    credential_id: str
    #: ``uname -a``'s output when it ran cleanly.
    uname: str | None
    os: dict[str, str]


def read_ssh(payload: ResultsPayload) -> SshReading:
    """An SSHClassify input: the command results (``uname -a``) and the facts ``<result>``."""
    uname: str | None = None
    os: dict[str, str] = {}
    credential_id = ""
    for result in payload.results:
        command = result.get("command")
        if command is not None:
            stdout = (result.findtext("stdout") or "").strip()
            if command == "uname -a" and result.get("exit_status") == "0" and stdout:
                uname = stdout
            continue
        credential_id = result.get("credential_id", credential_id)
        for key, tag, attribute in OS_FACTS:
            child = result.find(tag)
            if child is None:
                continue
            value = child.text if attribute is None else child.get(attribute)
            if value is not None:
                os[key] = value
    return SshReading(credential_id, uname, os)


@dataclass(frozen=True)
class SnmpReading:
    credential_id: str | None
    sys_descr: str | None
    sys_object_id: str | None
    #: Capability (routing, switching, printing) -> what showed it.
    capabilities: dict[str, str]


def read_snmp(payload: ResultsPayload) -> SnmpReading:
    """An SNMPClassify input: the ``<snmp>`` credential and the ``<classification>`` summary."""
    credential_id = None
    sys_descr = sys_object_id = None
    capabilities: dict[str, str] = {}
    for result in payload.results:
        snmp = result.find("snmp")
        if snmp is not None and snmp.get("credential_id"):
            credential_id = snmp.get("credential_id")
        classification = result.find("classification")
        if classification is None:
            continue
        sys_object_id = classification.get("sys_object_id") or sys_object_id
        sys_descr = classification.findtext("sys_descr") or sys_descr
        for capability in classification.iter("capability"):
            capabilities[capability.get("name", "")] = capability.get("evidence", "")
    return SnmpReading(credential_id, sys_descr, sys_object_id, capabilities)


def snmp_agent_absent(error: str) -> bool:
    """Whether an SNMPClassify error says only that no agent is there (or none takes our credentials)."""
    return error.startswith(SNMP_ABSENT_PREFIXES)


@dataclass
class NmapReading:
    """What nmap's service and OS detection found for one host (each stage fills its part)."""

    #: Port -> nmap's service name, for the classifier (identified services only).
    services: dict[int, str] = field(default_factory=dict)
    #: Port -> ``name product version extrainfo``, for the report.
    descriptions: dict[int, str] = field(default_factory=dict)
    os: str | None = None
    os_classes: list[NmapOsClass] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: Whether any run reported any host.
    reported: bool = False


def read_nmap(payload: ResultsPayload, stage: str, reading: NmapReading) -> None:
    """An NmapServiceScan or NmapOSScan input (``probes/nmap/encode.py``'s layout) into ``reading``."""
    for result in payload.results:
        for host in result.findall("host"):
            reading.reported = True
            read_nmap_host(host, stage, reading)


def read_nmap_host(host: ET.Element, stage: str, reading: NmapReading) -> None:
    """One ``<host>``: a host nmap gave up on (its ``--host-timeout``) is a line in ``errors`` and
    what it found before is still read; one nmap found down has nothing to read."""
    timed_out = _true(host, "timed_out")
    if timed_out:
        reading.errors.append(f"{stage}: nmap gave up on the host at its time-out: results incomplete")
    if host.get("status") != "up" and not timed_out:
        return
    for port in host.findall("port"):
        _read_service(port, reading)
    best: ET.Element | None = None
    for match in host.findall("os"):
        if best is None or _accuracy(match) > _accuracy(best):
            best = match
        for os_class in match.findall("osclass"):
            reading.os_classes.append(
                NmapOsClass(
                    family=os_class.get("family", ""),
                    device_type=os_class.get("type", ""),
                    vendor=os_class.get("vendor", ""),
                    accuracy=_accuracy(os_class),
                )
            )
    if best is not None:
        reading.os = f"{best.get('name', '')} ({_accuracy(best)}%)"


def _accuracy(element: ET.Element) -> int:
    text = element.get("accuracy", "")
    return int(text) if text.isdecimal() else 0


def _read_service(port: ET.Element, reading: NmapReading) -> None:
    """What nmap's version detection identified on an open port (guesses, marked ``?``, are left out)."""
    from midprobe.probes.nmap.parse import GUESS_CONFIDENCE  # nmap's package: only when nmap ran

    shown, portid, conf = port.get("service"), port.get("portid", ""), port.get("conf", "")
    if port.get("state") != "open" or shown is None or not portid.isdecimal():
        return
    if port.get("method") != "probed" or not conf.isdecimal() or int(conf) <= GUESS_CONFIDENCE:
        return
    name = shown.removeprefix("ssl/") if port.get("tunnel") == "ssl" else shown
    name = name.removesuffix("?") if _true(port, "guess") else name
    reading.services[int(portid)] = name
    words = [name, port.get("product"), port.get("version"), port.get("extrainfo")]
    reading.descriptions[int(portid)] = " ".join(word for word in words if word)


@dataclass(frozen=True)
class SweepReading:
    complete: bool
    methods_used: tuple[str, ...]
    alive: frozenset[str]
    #: Addresses the kernel would not send to (ENOBUFS): not known to be down, so port-scanned.
    incomplete: frozenset[str] = frozenset()
    #: The addresses the sweep was given.
    addresses: int = 0


#: The longest a banner or service is quoted in a discovery's device log.
SUMMARY_TEXT = 60


def enrichment_summary(topic: str, payload: ResultsPayload) -> str:
    """One line on what a ``BannerSniff`` or nmap input found (a discovery's device log says it):
    ``22 SSH-2.0-OpenSSH_9.2; 80 nginx/1.22``, ``OS Linux 5.X (95%)``, ``nothing``."""
    if topic == "DNSNameResolver":
        name = read_host_name(payload)
        return f"PTR name {name}" if name else "no PTR name"
    snmp = ""
    if topic == "BannerSniff":
        banners = read_banners(payload)
        texts = banners.banners
        if banners.snmp_answered:
            descr = "".join(c for c in banners.sys_descr or "" if c.isprintable())[:SUMMARY_TEXT]
            snmp = f"SNMP (public) {banners.sys_object_id or '?'} {descr}".rstrip()
    else:
        reading = NmapReading()
        read_nmap(payload, topic, reading)
        texts = dict(reading.descriptions)
        if reading.os:
            return f"OS {reading.os}"
    parts = [
        f"{port} {''.join(c for c in text if c.isprintable())[:SUMMARY_TEXT]}"
        for port, text in sorted(texts.items())
    ]
    return "; ".join([*parts, snmp] if snmp else parts) or "nothing"


def read_sweep(payload: ResultsPayload) -> SweepReading:
    """A HostSweep input's ``<sweep>`` summary, the addresses that answered and those never asked."""
    for result in payload.results:
        sweep = result.find("sweep")
        if sweep is None:
            continue
        methods = tuple(m for m in sweep.get("methods_used", "").split(",") if m)
        alive = frozenset(host.get("ip", "") for host in sweep.iter("host") if _true(host, "alive"))
        incomplete = frozenset(host.get("ip", "") for host in sweep.iter("host") if host.get("incomplete"))
        count = sweep.get("addresses", "")
        addresses = int(count) if count.isdigit() else len(alive | incomplete)
        return SweepReading(_true(sweep, "complete"), methods, alive, incomplete, addresses)
    return SweepReading(False, (), frozenset())

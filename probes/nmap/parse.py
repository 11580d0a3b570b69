"""Our own pure parser of nmap's XML output (``-oX``) into typed, frozen results.

``parse_nmap_xml(bytes) -> NmapScan`` does no I/O and trusts nothing: the XML goes through defusedxml
(no entity expansion, no external resources), a size cap, and strict attribute checks; anything that is not
a well-formed nmap run raises ``ProtocolError`` with one line naming what was wrong.

**Service guesses.** nmap's normal output marks a service name with ``?`` when version detection ran, the
port is open and nmap's confidence in the name is 5 or less (``getNmapServiceName`` in nmap's
``output.cc``); in the XML that is ``conf`` <= 5, which in practice is ``method="table"`` with ``conf="3"``:
the name only comes from the port number (``nmap-services``). :attr:`NmapService.guessed` is exactly
that mark. Without version detection every name is a port-table lookup: not marked, but
:attr:`NmapService.from_port_table` is true. Per docs/ecc-reference.md section 4 a guessed service creates nothing;
:attr:`NmapService.identified` is the opposite test (a probed match nmap is confident of).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Final

import defusedxml.ElementTree as DefusedET
from defusedxml import DefusedXmlException

from midprobe.capabilities.errors import ProtocolError

#: nmap XML larger than this is refused (a /20 with scripts stays far below it).
MAX_XML_BYTES: Final = 64 * 1024 * 1024
#: ``conf`` at or below this is a guess (nmap's own threshold for the ``?`` mark).
GUESS_CONFIDENCE: Final = 5


@dataclass(frozen=True)
class NmapAddress:
    addr: str
    addrtype: str  # "ipv4", "ipv6" or "mac"
    vendor: str | None = None


@dataclass(frozen=True)
class NmapHostname:
    name: str
    type: str | None  # "user" (as given) or "PTR" (reverse DNS)


@dataclass(frozen=True)
class NmapScriptOutput:
    """One NSE script result; ``data`` flattens its structured output to ``(dotted key, text)`` pairs."""

    id: str
    output: str
    data: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class NmapService:
    name: str
    method: str  # "table" (from the port number) or "probed" (matched a probe response)
    confidence: int  # nmap's ``conf``, 0-10
    guessed: bool  # nmap's ``?`` mark; see the module docstring
    product: str | None = None
    version: str | None = None
    extrainfo: str | None = None
    ostype: str | None = None
    devicetype: str | None = None
    hostname: str | None = None
    tunnel: str | None = None  # "ssl" when nmap saw TLS around the service
    fingerprint: str | None = None  # ``servicefp``: the service answered but matched nothing
    cpes: tuple[str, ...] = ()

    @property
    def from_port_table(self) -> bool:
        return self.method == "table"

    @property
    def identified(self) -> bool:
        """A name nmap matched from the service's own answer, with confidence above the guess mark."""
        return self.method == "probed" and self.confidence > GUESS_CONFIDENCE

    @property
    def display_name(self) -> str:
        """The name as nmap's normal output shows it: ``ssl/`` prefix, ``?`` suffix on a guess."""
        return ("ssl/" if self.tunnel == "ssl" else "") + self.name + ("?" if self.guessed else "")


@dataclass(frozen=True)
class NmapPort:
    protocol: str  # "tcp", "udp", "sctp", "ip"
    portid: int
    state: str  # "open", "closed", "filtered", "unfiltered", "open|filtered", "closed|filtered"
    reason: str  # "syn-ack", "reset", "no-response", ...
    reason_ttl: int | None = None
    service: NmapService | None = None
    scripts: tuple[NmapScriptOutput, ...] = ()


@dataclass(frozen=True)
class NmapExtraPorts:
    """Ports nmap summarised instead of listing (``Not shown: 995 closed ports``)."""

    state: str
    count: int
    reasons: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class NmapOSClass:
    type: str | None  # "general purpose", "switch", "printer", ...
    vendor: str | None
    family: str | None  # nmap's ``osfamily``: "Linux", "Windows", "AIX", ...
    generation: str | None  # nmap's ``osgen``: "4.X", "10", ...
    accuracy: int
    cpes: tuple[str, ...] = ()


@dataclass(frozen=True)
class NmapOSMatch:
    name: str
    accuracy: int
    classes: tuple[NmapOSClass, ...] = ()
    line: int | None = None  # the entry in nmap-os-db


@dataclass(frozen=True)
class NmapHost:
    status: str  # "up", "down", "unknown", "skipped"
    reason: str
    addresses: tuple[NmapAddress, ...]
    reason_ttl: int | None = None
    hostnames: tuple[NmapHostname, ...] = ()
    ports: tuple[NmapPort, ...] = ()
    extraports: tuple[NmapExtraPorts, ...] = ()
    os_matches: tuple[NmapOSMatch, ...] = ()  # best first, as nmap lists them
    os_fingerprint: str | None = None
    scripts: tuple[NmapScriptOutput, ...] = ()  # host scripts
    distance: int | None = None
    uptime_seconds: int | None = None
    timed_out: bool = False  # nmap gave up on the host (``--host-timeout``)

    @property
    def address(self) -> str:
        """The IP address (the MAC is in :attr:`mac`)."""
        for address in self.addresses:
            if address.addrtype in ("ipv4", "ipv6"):
                return address.addr
        return self.addresses[0].addr if self.addresses else ""

    @property
    def mac(self) -> str | None:
        return next((a.addr for a in self.addresses if a.addrtype == "mac"), None)

    @property
    def hostname(self) -> str | None:
        """The reverse-DNS name if there is one, else the name the scan was given."""
        for wanted in ("PTR", "user", None):
            for hostname in self.hostnames:
                if wanted is None or hostname.type == wanted:
                    return hostname.name
        return None

    @property
    def is_up(self) -> bool:
        return self.status == "up"

    def ports_in_state(self, state: str) -> tuple[NmapPort, ...]:
        return tuple(port for port in self.ports if port.state == state)

    @property
    def open_ports(self) -> tuple[NmapPort, ...]:
        return self.ports_in_state("open")

    @property
    def best_os_match(self) -> NmapOSMatch | None:
        return max(self.os_matches, key=lambda match: match.accuracy, default=None)


@dataclass(frozen=True)
class NmapScanInfo:
    type: str  # "syn", "connect", "ping", ...
    protocol: str
    numservices: int
    services: str


@dataclass(frozen=True)
class NmapRunStats:
    exit: str  # "success" or "error"
    elapsed: float
    hosts_up: int
    hosts_down: int
    hosts_total: int
    summary: str | None = None
    errormsg: str | None = None
    finished: int | None = None  # unix time


@dataclass(frozen=True)
class NmapScan:
    """One nmap run."""

    args: str
    version: str
    start: int | None
    scaninfo: tuple[NmapScanInfo, ...]
    hosts: tuple[NmapHost, ...]
    runstats: NmapRunStats
    version_detection: bool  # -sV (or -A) ran, so ``?`` marks apply
    prescripts: tuple[NmapScriptOutput, ...] = ()
    postscripts: tuple[NmapScriptOutput, ...] = ()
    xml_output_version: str | None = None

    def host(self, address: str) -> NmapHost:
        for host in self.hosts:
            if any(a.addr == address for a in host.addresses):
                return host
        raise KeyError(address)

    @property
    def hosts_up(self) -> tuple[NmapHost, ...]:
        return tuple(host for host in self.hosts if host.is_up)


# --- parsing -----------------------------------------------------------------------------------------


def _fail(message: str) -> ProtocolError:
    return ProtocolError(f"nmap XML: {message}")


def _required(element: ET.Element, name: str) -> str:
    value = element.get(name)
    if value is None:
        raise _fail(f"<{element.tag}> lacks the attribute {name!r}")
    return value


def _optional(element: ET.Element, name: str) -> str | None:
    value = element.get(name)
    return value if value else None


def _integer(element: ET.Element, name: str, *, required: bool = True) -> int | None:
    value = _required(element, name) if required else element.get(name)
    if value is None or (not required and value == ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise _fail(f"<{element.tag} {name}={value[:30]!r}> is not an integer") from None


def _required_integer(element: ET.Element, name: str) -> int:
    value = _integer(element, name)
    assert value is not None
    return value


def _float(element: ET.Element, name: str) -> float:
    value = element.get(name, "0")
    try:
        return float(value)
    except ValueError:
        raise _fail(f"<{element.tag} {name}={value[:30]!r}> is not a number") from None


def _script_data(element: ET.Element, prefix: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    index = 0
    for child in element:
        if child.tag not in ("elem", "table"):
            continue
        key = child.get("key")
        if key is None:
            index += 1
            key = str(index)
        path = f"{prefix}.{key}" if prefix else key
        if child.tag == "elem":
            pairs.append((path, child.text or ""))
        else:
            pairs.extend(_script_data(child, path))
    return pairs


def _script(element: ET.Element) -> NmapScriptOutput:
    return NmapScriptOutput(
        id=_required(element, "id"),
        output=element.get("output", ""),
        data=tuple(_script_data(element, "")),
    )


def _cpes(element: ET.Element) -> tuple[str, ...]:
    return tuple(cpe.text.strip() for cpe in element.findall("cpe") if cpe.text and cpe.text.strip())


def _service(element: ET.Element, *, port_state: str, version_detection: bool) -> NmapService:
    name = element.get("name") or "unknown"
    confidence = _integer(element, "conf", required=False)
    confidence = 0 if confidence is None else confidence
    tunnel = _optional(element, "tunnel")
    # output.cc: with an SSL tunnel the name is only shown (and marked) when it was probed.
    shown = tunnel != "ssl" or element.get("method") == "probed"
    return NmapService(
        name=name,
        method=element.get("method", "table"),
        confidence=confidence,
        guessed=version_detection and port_state == "open" and shown and confidence <= GUESS_CONFIDENCE,
        product=_optional(element, "product"),
        version=_optional(element, "version"),
        extrainfo=_optional(element, "extrainfo"),
        ostype=_optional(element, "ostype"),
        devicetype=_optional(element, "devicetype"),
        hostname=_optional(element, "hostname"),
        tunnel=tunnel,
        fingerprint=_optional(element, "servicefp"),
        cpes=_cpes(element),
    )


def _port(element: ET.Element, *, version_detection: bool) -> NmapPort:
    state = element.find("state")
    if state is None:
        raise _fail(f"<port portid={element.get('portid')!r}> has no <state>")
    port_state = _required(state, "state")
    service = element.find("service")
    return NmapPort(
        protocol=_required(element, "protocol"),
        portid=_required_integer(element, "portid"),
        state=port_state,
        reason=state.get("reason", ""),
        reason_ttl=_integer(state, "reason_ttl", required=False),
        service=(
            _service(service, port_state=port_state, version_detection=version_detection)
            if service is not None
            else None
        ),
        scripts=tuple(_script(s) for s in element.findall("script")),
    )


def _extraports(element: ET.Element) -> NmapExtraPorts:
    return NmapExtraPorts(
        state=_required(element, "state"),
        count=_required_integer(element, "count"),
        reasons=tuple(
            (_required(reason, "reason"), _required_integer(reason, "count"))
            for reason in element.findall("extrareasons")
        ),
    )


def _osclass(element: ET.Element) -> NmapOSClass:
    return NmapOSClass(
        type=_optional(element, "type"),
        vendor=_optional(element, "vendor"),
        family=_optional(element, "osfamily"),
        generation=_optional(element, "osgen"),
        accuracy=_required_integer(element, "accuracy"),
        cpes=_cpes(element),
    )


def _osmatch(element: ET.Element) -> NmapOSMatch:
    return NmapOSMatch(
        name=_required(element, "name"),
        accuracy=_required_integer(element, "accuracy"),
        classes=tuple(_osclass(c) for c in element.findall("osclass")),
        line=_integer(element, "line", required=False),
    )


def _host(element: ET.Element, *, version_detection: bool) -> NmapHost:
    status = element.find("status")
    if status is None:
        raise _fail("<host> has no <status>")
    addresses = tuple(
        NmapAddress(_required(a, "addr"), a.get("addrtype", "ipv4"), _optional(a, "vendor"))
        for a in element.findall("address")
    )
    if not addresses:
        raise _fail("<host> has no <address>")
    ports_element = element.find("ports")
    os_element = element.find("os")
    fingerprint = os_element.find("osfingerprint") if os_element is not None else None
    distance = element.find("distance")
    uptime = element.find("uptime")
    hostscript = element.find("hostscript")
    return NmapHost(
        status=_required(status, "state"),
        reason=status.get("reason", ""),
        reason_ttl=_integer(status, "reason_ttl", required=False),
        addresses=addresses,
        hostnames=tuple(
            NmapHostname(_required(h, "name"), _optional(h, "type"))
            for h in element.findall("hostnames/hostname")
        ),
        ports=(
            tuple(_port(p, version_detection=version_detection) for p in ports_element.findall("port"))
            if ports_element is not None
            else ()
        ),
        extraports=(
            tuple(_extraports(e) for e in ports_element.findall("extraports"))
            if ports_element is not None
            else ()
        ),
        os_matches=(
            tuple(_osmatch(m) for m in os_element.findall("osmatch")) if os_element is not None else ()
        ),
        os_fingerprint=fingerprint.get("fingerprint") if fingerprint is not None else None,
        scripts=tuple(_script(s) for s in hostscript.findall("script")) if hostscript is not None else (),
        distance=_integer(distance, "value", required=False) if distance is not None else None,
        uptime_seconds=_integer(uptime, "seconds", required=False) if uptime is not None else None,
        timed_out=element.get("timedout") == "true",
    )


def _runstats(root: ET.Element) -> NmapRunStats:
    finished = root.find("runstats/finished")
    hosts = root.find("runstats/hosts")
    if finished is None or hosts is None:
        raise _fail("the run has no <runstats> (nmap stopped before it finished)")
    return NmapRunStats(
        exit=finished.get("exit", "success"),
        elapsed=_float(finished, "elapsed"),
        hosts_up=_required_integer(hosts, "up"),
        hosts_down=_required_integer(hosts, "down"),
        hosts_total=_required_integer(hosts, "total"),
        summary=_optional(finished, "summary"),
        errormsg=_optional(finished, "errormsg"),
        finished=_integer(finished, "time", required=False),
    )


def _version_detection(args: str) -> bool:
    """Did the command line ask for version detection (``-sV``, ``-sSV``, ``-A``)?"""
    return any(option == "-A" or (option.startswith("-s") and "V" in option[2:]) for option in args.split())


def parse_nmap_xml(data: bytes) -> NmapScan:
    """Parse one nmap XML document (``nmap -oX``); raise ``ProtocolError`` if it is not one."""
    if not data.strip():
        raise _fail("empty output")
    if len(data) > MAX_XML_BYTES:
        raise _fail(f"{len(data)} bytes is more than the {MAX_XML_BYTES} accepted")
    try:
        root = DefusedET.fromstring(data)
    except ET.ParseError as error:
        line, column = error.position
        raise _fail(f"not well-formed (line {line}, column {column})") from None
    except DefusedXmlException as error:
        raise _fail(f"refused: {type(error).__name__}") from None
    except (LookupError, ValueError) as error:  # e.g. an unknown encoding in the XML declaration
        raise _fail(f"unreadable: {str(error).splitlines()[0][:80]}") from None
    if root.tag != "nmaprun":
        raise _fail(f"the root element is <{root.tag[:40]}>, not <nmaprun>")
    args = root.get("args", "")
    # A probed service proves version detection ran even when the command line is not shown.
    version_detection = (
        _version_detection(args) or root.find("host/ports/port/service[@method='probed']") is not None
    )
    return NmapScan(
        args=args,
        version=root.get("version", ""),
        start=_integer(root, "start", required=False),
        scaninfo=tuple(
            NmapScanInfo(
                type=_required(info, "type"),
                protocol=_required(info, "protocol"),
                numservices=_integer(info, "numservices", required=False) or 0,
                services=info.get("services", ""),
            )
            for info in root.findall("scaninfo")
        ),
        hosts=tuple(_host(h, version_detection=version_detection) for h in root.findall("host")),
        runstats=_runstats(root),
        version_detection=version_detection,
        prescripts=tuple(_script(s) for s in root.findall("prescript/script")),
        postscripts=tuple(_script(s) for s in root.findall("postscript/script")),
        xml_output_version=_optional(root, "xmloutputversion"),
    )

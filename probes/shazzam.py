"""``Shazzam``: the discovery scanning phase, a TCP port scan of a target spec plus the scanners that
read what the open ports say (``BannerTCP``, ``HTTP``/``HTTPS``) and, only when asked, an SNMP tap.

Per IP it reports ``alive`` (something answered), ``active`` (a TCP port open), ``hostName`` and
``domainName``; per port a ``GenericTCP`` ``<scanner>`` with ``result`` ``open`` or ``refused``, and one
more ``<scanner>`` per reading (a banner, an HTTP ``Server`` header, a sysObjectID). The readings
come from BannerSniff's code (``probes/banner/``). Silent IPs are left out; an IP whose ports
were not all probed because the kernel kept refusing the sends (ENOBUFS: its neighbour table full)
is listed with ``incomplete="why"``, whatever answered. The XML nesting (our choice, see
docs/shazzam.md)::

    <result engine="syn" ports="22,80" hosts_scanned="256" hosts_alive="1">
      <host ip="198.18.0.10" alive="true" active="true" hostName="linux1" domainName="lab.example.test">
        <scanner name="GenericTCP" port="22" portprobe="ssh" protocol="tcp" result="open" service="ssh"/>
        <scanner name="BannerTCP" port="22" portprobe="ssh" protocol="tcp" result="open" service="ssh"
                 banner_text="SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10"/>
      </host>
    </result>
"""

from __future__ import annotations

import asyncio
import functools
import xml.etree.ElementTree as ET
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal, TypeVar

from midprobe.capabilities.errors import (
    PayloadError,
    PortSpecError,
    ProbeParameterError,
    TargetSpecError,
)
from midprobe.probes.banner.defaults import DEFAULT_BANNER_WAIT_MS, DEFAULT_SNMP_TAPS, DEFAULT_SNMP_WAIT_MS
from midprobe.probes.base import ProbeContext
from midprobe.probes.fanout import fan_out
from midprobe.probes.params import parse_bool, parse_choice, parse_int
from midprobe.probes.ports import format_ports, parse_ports, service_name
from midprobe.probes.resolve import (
    AsyncReverseResolver,
    resolve_spec,
    resolver_for,
    reverse_resolver_for,
)
from midprobe.probes.targets import IPAddress, Resolver, TargetSpec, parse_targets
from midprobe.probes.tcpscan.common import HostScan, ScanEngine, ScanOptions
from midprobe.probes.tcpscan.engine import DEFAULT_QUEUE_SIZE, ENGINE_CHOICES, scan_async, select_engine
from midprobe.probes.xml_encode import flag, new_scanner, scanner_element

if TYPE_CHECKING:  # BannerSniff's code loads when a scanner reads what a port says
    from midprobe.probes.banner import BannerParams, PortBanner

__all__ = [
    "DEFAULT_PORTS",
    "DEFAULT_SCANNERS",
    "PROBE",
    "REFUSED_REPORT_LIMIT",
    "SCANNER_NAME",
    "SCANNER_NAMES",
    "TOPIC",
    "EngineFactory",
    "PortScan",
    "ShazzamHost",
    "ShazzamParams",
    "ShazzamProbe",
    "ShazzamResult",
    "ShazzamScanner",
    "ShazzamStream",
    "add_scanners",
    "decode_results",
    "encode_host",
    "encode_shazzam",
    "lists_refused",
    "parse_shazzam_params",
    "reading_scanners",
    "to_shazzam_host",
]

TOPIC = "Shazzam"
SCANNER_NAME = "GenericTCP"
#: Every scanner a request may name, in the order a port's elements are written.
SCANNER_NAMES = ("GenericTCP", "BannerTCP", "HTTP", "HTTPS", "SNMP")
#: Without a ``scanners`` parameter: the port scan, then the readers of the open ports (no SNMP).
DEFAULT_SCANNERS = ("GenericTCP", "BannerTCP", "HTTP", "HTTPS")
#: ServiceNow scanners midprobe does not run.
UNSUPPORTED_SCANNERS = ("NBT", "DNS")
#: Hosts whose BannerTCP/HTTP/HTTPS/SNMP scanners run at once (each with BannerSniff's per-host bound).
DEFAULT_HOST_CONCURRENCY = 32
#: Discovery's usual TCP ports (SNMP 161 is UDP: left to the SNMP tap).
DEFAULT_PORTS = "22,23,25,80,135,139,443,445,515,631,3389,5985,5986,8080,9100"
#: With ``report_refused=auto``, refused ports are listed only for port lists up to this size.
REFUSED_REPORT_LIMIT = 1024

PortResult = Literal["open", "refused"]
#: An address (text) to its DNS name or ``None``; blocking (it runs on a worker thread).
ReverseResolver = Callable[[str], str | None]
#: The scan engine an ``engine`` parameter (``auto``, ``syn``, ``connect``) names.
EngineFactory = Callable[[str], ScanEngine]


def lists_refused(port_count: int, report_refused: bool | None = None) -> bool:
    """Whether refused ports are listed: as asked, or with ``auto`` (``None``) for port lists of at
    most REFUSED_REPORT_LIMIT ports (``midprobe scan`` follows the same rule)."""
    if report_refused is None:
        return port_count <= REFUSED_REPORT_LIMIT
    return report_refused


@dataclass(frozen=True)
class ShazzamParams:
    """A validated Shazzam request."""

    source: str
    targets: TargetSpec
    ports: tuple[int, ...]
    connect_wait_ms: int = 1000
    engine: str = "auto"
    retries: int = 2
    rate: float | None = None
    max_in_flight: int = 4096
    #: ``None`` = auto: refused ports are listed when at most REFUSED_REPORT_LIMIT ports are scanned.
    report_refused: bool | None = None
    #: Fill ``hostName``/``domainName`` of literal addresses by reverse DNS.
    resolve_names: bool = False
    #: The scanners that run (names from SCANNER_NAMES, in that order); ``SNMP`` only with ``snmp_public``.
    scanners: tuple[str, ...] = DEFAULT_SCANNERS
    snmp_version: Literal["1", "2c"] = "2c"
    banner_wait_ms: int = DEFAULT_BANNER_WAIT_MS
    snmp_wait_ms: int = DEFAULT_SNMP_WAIT_MS
    snmp_taps: int = DEFAULT_SNMP_TAPS
    #: BannerTCP sends ``HEAD /`` to a port that stayed silent through ``banner_wait`` (needs ``HTTP`` too).
    probe_silent: bool = False
    host_concurrency: int = DEFAULT_HOST_CONCURRENCY
    #: Hosts the port scan may finish ahead of their consumer before it pauses.
    queue_size: int = DEFAULT_QUEUE_SIZE

    @property
    def snmp_public(self) -> bool:
        """The SNMP tap runs (it asks with the community ``public``, so only when the request said so)."""
        return "SNMP" in self.scanners

    @property
    def lists_refused(self) -> bool:
        return lists_refused(len(self.ports), self.report_refused)

    def scan_options(self, deadline: float | None) -> ScanOptions:
        return ScanOptions(
            connect_wait=self.connect_wait_ms / 1000,
            min_timeout=min(0.1, self.connect_wait_ms / 1000),
            retries=self.retries,
            rate=self.rate,
            max_in_flight=self.max_in_flight,
            deadline=deadline,
        )

    def reader_ports(self, open_ports: Iterable[int]) -> tuple[int, ...]:
        """The open TCP ports a selected reader (BannerTCP, HTTP, HTTPS) connects to again; raw print
        ports (9100-9107) never: a printer prints whatever arrives."""
        from midprobe.probes.banner import PRINT_PORTS, scanner_for

        return tuple(
            port for port in open_ports if port not in PRINT_PORTS and scanner_for(port) in self.scanners
        )

    def banner_params(self, address: str, open_ports: Iterable[int]) -> BannerParams | None:
        """What BannerSniff is asked for one host (pure); ``None`` when no scanner has work there."""
        ports = self.reader_ports(open_ports)
        if not ports and not self.snmp_public:
            return None
        from midprobe.probes.banner import BannerParams

        return BannerParams(
            host=address,
            ports=ports,
            snmp_public=self.snmp_public,
            snmp_version=self.snmp_version,
            connect_wait_ms=self.connect_wait_ms,
            banner_wait_ms=self.banner_wait_ms,
            snmp_wait_ms=self.snmp_wait_ms,
            snmp_taps=self.snmp_taps,
            probe_silent=self.probe_silent and "HTTP" in self.scanners,
            # Shazzam's BannerTCP waits its banner_wait, as ServiceNow's does (BannerSniff adapts).
            null_wait_ms=self.banner_wait_ms,
            probe_wait_ms=self.banner_wait_ms,
        )


@dataclass(frozen=True)
class ShazzamScanner:
    """One scanner's outcome on one port (a ``<scanner>`` element), with what it read, if anything."""

    port: int
    result: PortResult
    portprobe: str
    service: str
    name: str = SCANNER_NAME
    protocol: str = "tcp"
    #: A greeting (BannerTCP), the ``Server`` header (HTTP/HTTPS) or sysDescr (SNMP); empty: none.
    banner_text: str = ""
    http_status: int | None = None
    #: With a leading dot, as ECC writes OIDs (``.1.3.6.1.4.1.8072.3.2.10``).
    sys_object_id: str | None = None


@dataclass(frozen=True)
class ShazzamHost:
    """One IP that answered, or whose scan is incomplete (a ``<host>`` element); empty names mean unknown."""

    ip: str
    alive: bool
    active: bool
    host_name: str
    domain_name: str
    scanners: tuple[ShazzamScanner, ...]
    #: Why some ports were never probed (``HostScan.incomplete``); ``None``: every port was.
    incomplete: str | None = None

    @property
    def open_ports(self) -> tuple[int, ...]:
        """The TCP ports GenericTCP found open."""
        return tuple(s.port for s in self.scanners if s.name == SCANNER_NAME and s.result == "open")


@dataclass(frozen=True)
class ShazzamResult:
    """The whole scan: hosts that answered, in the order they finished."""

    hosts: tuple[ShazzamHost, ...]
    engine: str
    ports: tuple[int, ...]
    hosts_scanned: int


# --- parameters ------------------------------------------------------------------------------------


def _auto_bool_param(parameters: Mapping[str, str], name: str) -> bool | None:
    """``true``/``false`` as usual, or ``None`` for ``auto`` (and when absent)."""
    text = parameters.get(name, "").strip().lower()
    if text in ("", "auto"):
        return None
    if text in ("true", "yes", "1", "on", "false", "no", "0", "off"):
        return parse_bool(parameters, name, False)
    raise ProbeParameterError(f"{text!r} is not true, false or auto", parameter=name)


def _parse_scanners(parameters: Mapping[str, str], snmp_public: bool) -> tuple[str, ...]:
    """The ``scanners`` list (commas or blanks, any case); GenericTCP always runs, SNMP with ``snmp_public``."""
    text = parameters.get("scanners", "").strip()
    known = {name.lower(): name for name in SCANNER_NAMES}
    named: list[str] = []
    for token in text.replace(",", " ").split():
        name = known.get(token.lower())
        if name is None:
            if token.upper() in UNSUPPORTED_SCANNERS:
                raise ProbeParameterError(
                    f"the {token.upper()} scanner is not implemented", parameter="scanners"
                )
            raise ProbeParameterError(
                f"unknown scanner {token!r} (known: {', '.join(SCANNER_NAMES)})", parameter="scanners"
            )
        named.append(name)
    if "SNMP" in named and not snmp_public:
        raise ProbeParameterError(
            "the SNMP tap asks with the community public; it runs only with snmp_public=true",
            parameter="scanners",
        )
    chosen = {SCANNER_NAME, *(named or DEFAULT_SCANNERS), *(["SNMP"] if snmp_public else [])}
    return tuple(name for name in SCANNER_NAMES if name in chosen)


def parse_shazzam_params(source: str, parameters: Mapping[str, str]) -> ShazzamParams:
    """Validate an ECC Shazzam request (pure). Unknown parameters (the echoed ECC fields) are ignored."""
    try:
        targets = parse_targets(source, parameters.get("exclude", ""))
    except TargetSpecError as error:
        raise ProbeParameterError(str(error), parameter="source") from None
    try:
        ports = parse_ports(parameters.get("ports") or DEFAULT_PORTS)
    except PortSpecError as error:
        raise ProbeParameterError(str(error), parameter="ports") from None
    if not ports.tcp:
        raise ProbeParameterError("no TCP ports to scan (UDP ports are not scanned)", parameter="ports")
    engine = parse_choice(parameters, "engine", "auto", ENGINE_CHOICES)
    rate_text = (parameters.get("rate") or "").strip()
    rate: float | None = None
    if rate_text:
        try:
            rate = float(rate_text)
        except ValueError:
            raise ProbeParameterError(f"{rate_text!r} is not a number", parameter="rate") from None
        if not 0 < rate <= 10_000_000:
            raise ProbeParameterError("must be above 0 probes per second", parameter="rate")
    snmp_public = parse_bool(parameters, "snmp_public", False)
    snmp_version = parse_choice(parameters, "snmp_version", "2c", ("1", "2c"))
    return ShazzamParams(
        source=source,
        targets=targets,
        ports=ports.tcp,
        connect_wait_ms=parse_int(parameters, "connect_wait", 1000, 1, 60_000),
        engine=engine,
        retries=parse_int(parameters, "retries", 2, 0, 10),
        rate=rate,
        max_in_flight=parse_int(parameters, "max_in_flight", 4096, 1, 1_000_000),
        report_refused=_auto_bool_param(parameters, "report_refused"),
        resolve_names=parse_bool(parameters, "resolve_names", False),
        scanners=_parse_scanners(parameters, snmp_public),
        snmp_version="1" if snmp_version == "1" else "2c",
        banner_wait_ms=parse_int(parameters, "banner_wait", DEFAULT_BANNER_WAIT_MS, 10, 60_000),
        snmp_wait_ms=parse_int(parameters, "snmp_wait", DEFAULT_SNMP_WAIT_MS, 10, 60_000),
        snmp_taps=parse_int(parameters, "snmp_taps", DEFAULT_SNMP_TAPS, 1, 10),
        probe_silent=parse_bool(parameters, "probe_silent", False),
        host_concurrency=parse_int(parameters, "host_concurrency", DEFAULT_HOST_CONCURRENCY, 1, 1024),
        queue_size=parse_int(parameters, "queue_size", DEFAULT_QUEUE_SIZE, 1, 65_536),
    )


# --- results ---------------------------------------------------------------------------------------


def _split_name(name: str | None) -> tuple[str, str]:
    if not name:
        return "", ""
    host, _, domain = name.rstrip(".").partition(".")
    return host, domain


def to_shazzam_host(scan: HostScan, *, list_refused: bool, name: str | None = None) -> ShazzamHost:
    """The ``<host>`` view of one engine result (pure)."""
    results: list[tuple[int, PortResult]] = [(port, "open") for port in scan.open_ports]
    if list_refused:
        results.extend((port, "refused") for port in scan.refused_ports)
    results.sort()
    scanners = tuple(_port_scanner(port, outcome) for port, outcome in results)
    host_name, domain_name = _split_name(scan.host_name or name)
    return ShazzamHost(
        ip=str(scan.address),
        alive=scan.alive,
        active=scan.active,
        host_name=host_name,
        domain_name=domain_name,
        scanners=scanners,
        incomplete=scan.incomplete,
    )


def reading_scanners(readings: Iterable[PortBanner]) -> tuple[ShazzamScanner, ...]:
    """The ``<scanner>`` elements for what BannerSniff read (pure).

    Only readings from ports that answered something count: an SNMP answer gives ``SNMP`` (with
    ``sysObjectID``), an HTTP response ``HTTP`` or ``HTTPS`` (``Server`` header and status), any
    other text ``BannerTCP``. Silent, refused, filtered and failed readings add nothing (GenericTCP
    already says whether the port is open; UDP silence is not "refused").
    """
    scanners: list[ShazzamScanner] = []
    for reading in readings:
        if reading.state != "open":
            continue
        http_status: int | None = None
        sys_object_id: str | None = None
        if reading.snmp is not None:
            name = "SNMP"
            sys_object_id = reading.snmp.sys_object_id
        elif reading.http is not None:
            name = "HTTPS" if reading.tls is not None else "HTTP"
            http_status = reading.http.status
        elif reading.banner:
            name = "BannerTCP"
        else:
            continue
        scanners.append(
            ShazzamScanner(
                port=reading.port,
                result="open",
                portprobe=service_name(reading.port, reading.protocol),
                service=reading.service,
                name=name,
                protocol=reading.protocol,
                banner_text=reading.banner,
                http_status=http_status,
                sys_object_id=sys_object_id,
            )
        )
    return tuple(scanners)


def _scanner_order(scanner: ShazzamScanner) -> tuple[bool, int, int]:
    rank = SCANNER_NAMES.index(scanner.name) if scanner.name in SCANNER_NAMES else len(SCANNER_NAMES)
    return scanner.protocol != "tcp", scanner.port, rank


def add_scanners(host: ShazzamHost, extra: Sequence[ShazzamScanner]) -> ShazzamHost:
    """``host`` with more scanner elements: TCP ports in order (GenericTCP first on each), then UDP.

    A host that only answered the SNMP tap becomes alive; ``active`` stays "a TCP port is open".
    """
    if not extra:
        return host
    scanners = tuple(sorted((*host.scanners, *extra), key=_scanner_order))
    return replace(host, alive=True, scanners=scanners)


@functools.lru_cache(maxsize=8192)
def _port_scanner(port: int, outcome: PortResult) -> ShazzamScanner:
    """The GenericTCP ``<scanner>`` of one port's outcome (immutable: one per port and outcome)."""
    return ShazzamScanner(port=port, result=outcome, portprobe=service_name(port), service=service_name(port))


@functools.lru_cache(maxsize=8192)
def _plain_scanner(scanner: ShazzamScanner) -> ET.Element:
    """The ``<scanner>`` of a port that read nothing (no banner, status or OID): one element per
    port and outcome, shared by every host that has it (the payload codec writes a shared element
    once per payload); never modified."""
    return new_scanner(
        name=scanner.name,
        port=scanner.port,
        portprobe=scanner.portprobe,
        protocol=scanner.protocol,
        result=scanner.result,
        service=scanner.service,
    )


def encode_host(host: ShazzamHost) -> ET.Element:
    """One ``<host>`` element with its ``<scanner>`` children (pure)."""
    element = ET.Element(
        "host",
        ip=host.ip,
        alive=flag(host.alive),
        active=flag(host.active),
        hostName=host.host_name,
        domainName=host.domain_name,
    )
    if host.incomplete is not None:
        element.set("incomplete", host.incomplete)
    for scanner in host.scanners:
        if not scanner.banner_text and scanner.http_status is None and scanner.sys_object_id is None:
            element.append(_plain_scanner(scanner))
            continue
        scanner_element(
            element,
            name=scanner.name,
            port=scanner.port,
            portprobe=scanner.portprobe,
            protocol=scanner.protocol,
            result=scanner.result,
            service=scanner.service,
            banner_text=scanner.banner_text or None,
            http_status=None if scanner.http_status is None else str(scanner.http_status),
            sysObjectID=scanner.sys_object_id,
        )
    return element


def encode_shazzam(result: ShazzamResult) -> list[ET.Element]:
    """The ``<result>`` element of a Shazzam input payload (pure)."""
    element = ET.Element(
        "result",
        engine=result.engine,
        ports=format_ports(result.ports),
        hosts_scanned=str(result.hosts_scanned),
        hosts_alive=str(sum(host.alive for host in result.hosts)),
    )
    incomplete = sum(host.incomplete is not None for host in result.hosts)
    if incomplete:
        element.set("hosts_incomplete", str(incomplete))
    element.extend(encode_host(host) for host in result.hosts)
    return [element]


def _attribute(element: ET.Element, name: str) -> str:
    value = element.get(name)
    if value is None:
        raise PayloadError(f"Shazzam <{element.tag}> has no {name!r} attribute")
    return value


def _decode_flag(element: ET.Element, name: str) -> bool:
    value = _attribute(element, name)
    if value not in ("true", "false"):
        raise PayloadError(f"Shazzam <{element.tag}> {name}={value!r} is not true or false")
    return value == "true"


def _decode_host(element: ET.Element) -> ShazzamHost:
    scanners = []
    for child in element.iter("scanner"):
        outcome = _attribute(child, "result")
        if outcome not in ("open", "refused"):
            raise PayloadError(f"Shazzam scanner result {outcome!r} is not open or refused")
        port_text = _attribute(child, "port")
        if not port_text.isdigit():
            raise PayloadError(f"Shazzam scanner port {port_text!r} is not a number")
        status_text = child.get("http_status")
        if status_text is not None and not status_text.isdigit():
            raise PayloadError(f"Shazzam scanner http_status {status_text!r} is not a number")
        scanners.append(
            ShazzamScanner(
                port=int(port_text),
                result="open" if outcome == "open" else "refused",
                portprobe=_attribute(child, "portprobe"),
                service=_attribute(child, "service"),
                name=_attribute(child, "name"),
                protocol=_attribute(child, "protocol"),
                banner_text=child.get("banner_text", ""),
                http_status=None if status_text is None else int(status_text),
                sys_object_id=child.get("sysObjectID"),
            )
        )
    return ShazzamHost(
        ip=_attribute(element, "ip"),
        alive=_decode_flag(element, "alive"),
        active=_decode_flag(element, "active"),
        host_name=element.get("hostName", ""),
        domain_name=element.get("domainName", ""),
        scanners=tuple(scanners),
        incomplete=element.get("incomplete"),
    )


def decode_results(elements: Sequence[ET.Element]) -> ShazzamResult:
    """Read back what :func:`encode_shazzam` wrote (pure; raises ``PayloadError``)."""
    if len(elements) != 1 or elements[0].tag != "result":
        raise PayloadError("a Shazzam payload holds exactly one <result> element")
    element = elements[0]
    ports_text = _attribute(element, "ports")
    try:
        ports = parse_ports(ports_text).tcp if ports_text else ()
    except PortSpecError as error:
        raise PayloadError(f"Shazzam result ports: {error}") from None
    scanned = _attribute(element, "hosts_scanned")
    if not scanned.isdigit():
        raise PayloadError(f"Shazzam hosts_scanned {scanned!r} is not a number")
    return ShazzamResult(
        hosts=tuple(_decode_host(child) for child in element.iter("host")),
        engine=_attribute(element, "engine"),
        ports=ports,
        hosts_scanned=int(scanned),
    )


# --- the probe -------------------------------------------------------------------------------------


T = TypeVar("T")


def _off_the_loop(function: Callable[[str], T]) -> Callable[[str], Awaitable[T]]:
    """A blocking lookup, run on a worker thread."""

    async def call(argument: str) -> T:
        return await asyncio.to_thread(function, argument)

    return call


def _worth_reading(scanned: HostScan, params: ShazzamParams) -> bool:
    """A host that answered TCP, or whose scan is incomplete (reported either way), or a silent one
    the SNMP tap may still reach (the network did not already say it is unreachable); the other
    silent addresses are done."""
    if scanned.alive or scanned.incomplete is not None:
        return True
    return params.snmp_public and not scanned.unreachable


@dataclass(frozen=True)
class PortScan:
    """One GenericTCP scan, prepared and not started: names resolved, every address checked against
    the policy, the engine chosen. Iterating it starts the scan (on a worker thread) and yields each
    address as soon as its ports are decided, at the consumer's pace (at most ``params.queue_size``
    finished hosts wait); leaving early or :meth:`aclose` stops it."""

    params: ShazzamParams
    #: The request's targets with their host names resolved, every address inside the policy.
    targets: TargetSpec
    #: The engine that scans (``syn`` or ``connect``, or a test's own).
    engine: str
    hosts: AsyncGenerator[HostScan, None]
    #: The address each host name of the request (targets and exclusions) resolved to.
    names: Mapping[str, IPAddress] = field(default_factory=dict)

    @property
    def hosts_scanned(self) -> int:
        """Addresses in the targets after exclusions (counted, never expanded)."""
        return self.targets.count()

    def __aiter__(self) -> AsyncIterator[HostScan]:
        return self.hosts

    async def aclose(self) -> None:
        """Stop the scan and wait for its thread (harmless when it never started or already ended)."""
        await self.hosts.aclose()


class ShazzamStream:
    """A Shazzam request running as a :class:`~midprobe.probes.base.ResultStream`: each ``<host>`` as
    soon as its ports are decided and its readers are done, ``None`` for an address that stayed silent.

    :meth:`shell` is the ``<result>`` around the hosts so far: ``engine``, ``ports``,
    ``hosts_scanned`` (the addresses of the targets), ``hosts_done`` (those decided so far) and
    ``hosts_alive`` (those reported so far); before the first host it also lists, as
    ``<target name=".." ip=".."/>``, the address each host name of the request resolved to.
    """

    def __init__(
        self,
        probe: ShazzamProbe,
        params: ShazzamParams,
        context: ProbeContext,
        scan: PortScan,
        names: AsyncReverseResolver | None,
    ) -> None:
        self.scan = scan
        #: Addresses decided, hosts found alive so far (an incomplete one is reported, not counted).
        self.done = 0
        self.alive = 0
        self.hosts: AsyncGenerator[ShazzamHost | None, None] = self._hosts(probe, params, context, names)
        self._started = False

    async def _hosts(
        self,
        probe: ShazzamProbe,
        params: ShazzamParams,
        context: ProbeContext,
        names: AsyncReverseResolver | None,
    ) -> AsyncGenerator[ShazzamHost | None, None]:
        self._started = True
        scan = self.scan
        try:
            if params.scanners == (SCANNER_NAME,) and names is None:  # nothing to wait for per host
                async for scanned in scan:
                    self.done += 1
                    host = await probe._host(scanned, params, (), names)
                    self.alive += host is not None and host.alive
                    yield host
                return

            async def worth_reading() -> AsyncIterator[HostScan]:
                async for scanned in scan:
                    self.done += 1
                    if _worth_reading(scanned, params):
                        yield scanned

            async def read(scanned: HostScan) -> ShazzamHost | None:
                return await probe._read(scanned, params, context, names)

            readings = fan_out(worth_reading(), read, params.host_concurrency)
            try:
                async for host in readings:
                    self.alive += host is not None and host.alive
                    yield host
            finally:
                await readings.aclose()
        finally:
            await scan.aclose()  # stops the scan thread, whatever ended the loop

    async def _elements(self) -> AsyncIterator[ET.Element | None]:
        async for host in self.hosts:
            yield None if host is None else encode_host(host)

    def __aiter__(self) -> AsyncIterator[ET.Element | None]:
        return self._elements()

    def shell(self) -> ET.Element:
        scan = self.scan
        element = ET.Element(
            "result",
            engine=scan.engine,
            ports=format_ports(scan.params.ports),
            hosts_scanned=str(scan.hosts_scanned),
            hosts_done=str(self.done),
            hosts_alive=str(self.alive),
        )
        if not self._started:
            for name, address in scan.names.items():
                ET.SubElement(element, "target", name=name, ip=str(address))
        return element

    async def aclose(self) -> None:
        await self.hosts.aclose()
        await self.scan.aclose()  # never started: its engine was never iterated


class ShazzamProbe:
    """The ``Shazzam`` topic. Name resolution and the engines are injected, so tests and the lab use
    their own.

    Without a ``resolver`` (``reverse_resolver``), names (addresses) resolve as the policy allows
    (``probes/resolve.py``); ``engines`` builds the engine a request names (``select_engine``).
    """

    topic = TOPIC
    required_capabilities: tuple[str, ...] = ()

    def __init__(
        self,
        resolver: Resolver | None = None,
        reverse_resolver: ReverseResolver | None = None,
        engines: EngineFactory = select_engine,
    ) -> None:
        self.resolver = resolver
        self.reverse_resolver = reverse_resolver
        self.engines = engines

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> ShazzamParams:
        return parse_shazzam_params(source, parameters)

    async def prepare(
        self, params: ShazzamParams, context: ProbeContext
    ) -> tuple[TargetSpec, dict[str, IPAddress]]:
        """Resolve host names and check every target against the policy, before any probe goes out:
        the resolved targets and the address each name resolved to."""
        lookup = (
            resolver_for(context.policy, deadline=context.deadline)
            if self.resolver is None
            else _off_the_loop(self.resolver)
        )
        found: dict[str, IPAddress] = {}

        async def recorded(name: str) -> IPAddress:
            found[name] = address = await lookup(name)
            return address

        try:
            targets = await resolve_spec(params.targets, context.policy, resolver=recorded)
        except TargetSpecError as error:
            raise ProbeParameterError(str(error), parameter="source") from None
        return targets, found

    async def scan(self, params: ShazzamParams, context: ProbeContext) -> PortScan:
        """GenericTCP over the whole spec, streamed: :meth:`prepare`, the engine ``params`` names, the
        scan options (within the context's deadline) and the one bounded bridge (``scan_async``).

        Every error of the request (a target outside the policy, a name that does not resolve, a bad
        option, ``syn`` without raw sockets) is raised here, before anything is sent. :meth:`stream`
        (and so :meth:`run`) scans through this.
        """
        targets, names = await self.prepare(params, context)
        engine = self.engines(params.engine)
        options = params.scan_options(context.deadline)
        hosts = scan_async(targets, params.ports, options, engine=engine, queue_size=params.queue_size)
        return PortScan(params=params, targets=targets, engine=engine.name, hosts=hosts, names=names)

    async def stream(self, params: ShazzamParams, context: ProbeContext) -> ShazzamStream:
        """The request checked and its scan prepared (:meth:`scan`; nothing sent yet): iterating the
        stream scans, each host given as soon as it is decided and read. The agent pages a
        request's answer this way when it asks (``midprobe scan`` does)."""
        names = self._reverse_lookup(params, context)
        return ShazzamStream(self, params, context, await self.scan(params, context), names)

    def _reverse_lookup(self, params: ShazzamParams, context: ProbeContext) -> AsyncReverseResolver | None:
        """How ``resolve_names`` finds names; refused in lab mode without the lab's DNS server."""
        if not params.resolve_names:
            return None
        if self.reverse_resolver is not None:
            return _off_the_loop(self.reverse_resolver)
        lookup = reverse_resolver_for(context.policy, deadline=context.deadline)
        if lookup is None:
            raise ProbeParameterError(
                "lab mode looks names up only through the lab's DNS server, and none is known",
                parameter="resolve_names",
            )
        return lookup

    async def _host(
        self,
        scanned: HostScan,
        params: ShazzamParams,
        extra: Sequence[ShazzamScanner],
        names: AsyncReverseResolver | None,
    ) -> ShazzamHost | None:
        """The ``<host>`` of one scanned address with the other scanners' readings; ``None`` if silent
        (an incomplete one is never silent: nothing is known of the ports not probed)."""
        if not scanned.alive and not extra and scanned.incomplete is None:
            return None
        name = None
        if names is not None and scanned.host_name is None:
            name = await names(str(scanned.address))
        host = to_shazzam_host(scanned, list_refused=params.lists_refused, name=name)
        return add_scanners(host, extra)

    async def _read(
        self,
        scanned: HostScan,
        params: ShazzamParams,
        context: ProbeContext,
        names: AsyncReverseResolver | None,
    ) -> ShazzamHost | None:
        """Run BannerTCP/HTTP/HTTPS on the host's open ports and the SNMP tap (when asked), then build it.

        A host the GenericTCP scan found silent only gets the SNMP tap (see ``_worth_reading``).
        """
        request = params.banner_params(str(scanned.address), scanned.open_ports)
        if request is None:
            return await self._host(scanned, params, (), names)
        from midprobe.probes.banner import sniff

        readings = await sniff(request, context)  # checks the address against context.policy again
        return await self._host(scanned, params, reading_scanners(readings.ports), names)

    async def run(self, params: ShazzamParams, context: ProbeContext) -> ShazzamResult:
        """GenericTCP over the whole spec (:meth:`stream`); each host, as soon as its ports are decided,
        goes on to the other scanners, at most ``host_concurrency`` hosts at once, all within the
        context's deadline (BannerSniff's readers stop short of it and report what they have)."""
        stream = await self.stream(params, context)
        hosts: list[ShazzamHost] = []
        try:
            async for host in stream.hosts:
                if host is not None:
                    hosts.append(host)
        finally:
            await stream.aclose()
        return ShazzamResult(
            hosts=tuple(hosts),
            engine=stream.scan.engine,
            ports=params.ports,
            hosts_scanned=stream.scan.hosts_scanned,
        )

    def encode_results(self, result: ShazzamResult) -> Sequence[ET.Element]:
        return encode_shazzam(result)


PROBE = ShazzamProbe()

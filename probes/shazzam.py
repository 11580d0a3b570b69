"""``Shazzam``: the discovery scanning phase, a TCP port scan of a target spec (GenericTCP scanners).

Per IP it reports ``alive`` (something answered), ``active`` (a port open), ``hostName`` and
``domainName``; per port a ``<scanner>`` with ``result`` ``open`` or ``refused``. Silent IPs are left out.
The XML nesting (our choice, see docs/shazzam.md)::

    <result engine="syn" ports="22,80" hosts_scanned="256" hosts_alive="1">
      <host ip="198.18.0.10" alive="true" active="true" hostName="linux1" domainName="lab.example.test">
        <scanner name="GenericTCP" port="22" portprobe="ssh" protocol="tcp" result="open" service="ssh"/>
      </host>
    </result>
"""

from __future__ import annotations

import asyncio
import socket
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from midprobe.capabilities.errors import (
    PayloadError,
    PortSpecError,
    ProbeParameterError,
    TargetSpecError,
)
from midprobe.probes.base import ProbeContext
from midprobe.probes.params import parse_bool, parse_choice, parse_int
from midprobe.probes.ports import format_ports, parse_ports, service_name
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.targets import Resolver, TargetSpec, parse_targets, system_resolver
from midprobe.probes.tcpscan.common import HostScan, ScanEngine, ScanOptions
from midprobe.probes.tcpscan.engine import ENGINE_CHOICES, scan_async, select_engine

__all__ = [
    "DEFAULT_PORTS",
    "PROBE",
    "REFUSED_REPORT_LIMIT",
    "ShazzamHost",
    "ShazzamParams",
    "ShazzamProbe",
    "ShazzamResult",
    "ShazzamScanner",
    "check_policy",
    "decode_results",
    "encode_host",
    "encode_shazzam",
    "parse_shazzam_params",
    "to_shazzam_host",
]

TOPIC = "Shazzam"
SCANNER_NAME = "GenericTCP"
#: Discovery's usual TCP ports (SNMP 161 is UDP: left to the SNMP tap).
DEFAULT_PORTS = "22,23,25,80,135,139,443,445,515,631,3389,5985,5986,8080,9100"
#: With ``report_refused=auto``, refused ports are listed only for port lists up to this size.
REFUSED_REPORT_LIMIT = 1024

PortResult = Literal["open", "refused"]
ReverseResolver = Callable[[str], str | None]


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

    @property
    def lists_refused(self) -> bool:
        if self.report_refused is None:
            return len(self.ports) <= REFUSED_REPORT_LIMIT
        return self.report_refused

    def scan_options(self, deadline: float | None) -> ScanOptions:
        return ScanOptions(
            connect_wait=self.connect_wait_ms / 1000,
            min_timeout=min(0.1, self.connect_wait_ms / 1000),
            retries=self.retries,
            rate=self.rate,
            max_in_flight=self.max_in_flight,
            deadline=deadline,
        )


@dataclass(frozen=True)
class ShazzamScanner:
    """One port probe's outcome (a ``<scanner>`` element)."""

    port: int
    result: PortResult
    portprobe: str
    service: str
    name: str = SCANNER_NAME
    protocol: str = "tcp"


@dataclass(frozen=True)
class ShazzamHost:
    """One IP that answered (a ``<host>`` element); empty names mean unknown."""

    ip: str
    alive: bool
    active: bool
    host_name: str
    domain_name: str
    scanners: tuple[ShazzamScanner, ...]

    @property
    def open_ports(self) -> tuple[int, ...]:
        return tuple(s.port for s in self.scanners if s.result == "open")


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
    scanners = tuple(
        ShazzamScanner(
            port=port,
            result=outcome,
            portprobe=service_name(port),
            service=service_name(port),
        )
        for port, outcome in results
    )
    host_name, domain_name = _split_name(scan.host_name or name)
    return ShazzamHost(
        ip=str(scan.address),
        alive=scan.alive,
        active=scan.active,
        host_name=host_name,
        domain_name=domain_name,
        scanners=scanners,
    )


def _flag(value: bool) -> str:
    return "true" if value else "false"


def encode_host(host: ShazzamHost) -> ET.Element:
    """One ``<host>`` element with its ``<scanner>`` children (pure)."""
    element = ET.Element(
        "host",
        ip=host.ip,
        alive=_flag(host.alive),
        active=_flag(host.active),
        hostName=host.host_name,
        domainName=host.domain_name,
    )
    for scanner in host.scanners:
        ET.SubElement(
            element,
            "scanner",
            name=scanner.name,
            port=str(scanner.port),
            portprobe=scanner.portprobe,
            protocol=scanner.protocol,
            result=scanner.result,
            service=scanner.service,
        )
    return element


def encode_shazzam(result: ShazzamResult) -> list[ET.Element]:
    """The ``<result>`` element of a Shazzam input payload (pure)."""
    element = ET.Element(
        "result",
        engine=result.engine,
        ports=format_ports(result.ports),
        hosts_scanned=str(result.hosts_scanned),
        hosts_alive=str(len(result.hosts)),
    )
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
        scanners.append(
            ShazzamScanner(
                port=int(port_text),
                result="open" if outcome == "open" else "refused",
                portprobe=_attribute(child, "portprobe"),
                service=_attribute(child, "service"),
                name=_attribute(child, "name"),
                protocol=_attribute(child, "protocol"),
            )
        )
    return ShazzamHost(
        ip=_attribute(element, "ip"),
        alive=_decode_flag(element, "alive"),
        active=_decode_flag(element, "active"),
        host_name=element.get("hostName", ""),
        domain_name=element.get("domainName", ""),
        scanners=tuple(scanners),
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


def system_reverse_resolver(ip: str) -> str | None:
    """The PTR name of ``ip`` from the system resolver, or ``None``."""
    try:
        return socket.gethostbyaddr(ip)[0]
    except OSError:
        return None


def check_policy(spec: TargetSpec, policy: TargetPolicy) -> None:
    """Refuse the whole spec if any address it yields is outside the policy (nothing sent yet)."""
    if policy.allowed is None:
        return
    outside = spec.first_outside(policy.allowed)
    if outside is not None:
        policy.check(outside)


class ShazzamProbe:
    """The ``Shazzam`` topic. Name resolution is injected, so tests and the lab use their own."""

    topic = TOPIC
    required_capabilities: tuple[str, ...] = ()

    def __init__(
        self,
        resolver: Resolver = system_resolver,
        reverse_resolver: ReverseResolver = system_reverse_resolver,
    ) -> None:
        self.resolver = resolver
        self.reverse_resolver = reverse_resolver

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> ShazzamParams:
        return parse_shazzam_params(source, parameters)

    async def prepare(self, params: ShazzamParams, context: ProbeContext) -> TargetSpec:
        """Resolve host names and check every target against the policy, before any probe goes out."""
        spec = params.targets
        if spec.host_names:
            try:
                spec = await asyncio.to_thread(spec.resolved, self.resolver)
            except TargetSpecError as error:
                raise ProbeParameterError(str(error), parameter="source") from None
        check_policy(spec, context.policy)
        return spec

    async def _scan(
        self, spec: TargetSpec, params: ShazzamParams, context: ProbeContext, engine: ScanEngine
    ) -> AsyncIterator[tuple[str, ShazzamHost]]:
        options = params.scan_options(context.deadline)
        async for scanned in scan_async(spec, params.ports, options, engine=engine):
            if not scanned.alive:
                continue
            name = None
            if params.resolve_names and scanned.host_name is None:
                name = await asyncio.to_thread(self.reverse_resolver, str(scanned.address))
            yield engine.name, to_shazzam_host(scanned, list_refused=params.lists_refused, name=name)

    async def run(self, params: ShazzamParams, context: ProbeContext) -> ShazzamResult:
        spec = await self.prepare(params, context)
        engine = select_engine(params.engine)
        hosts = [host async for _, host in self._scan(spec, params, context, engine)]
        return ShazzamResult(
            hosts=tuple(hosts),
            engine=engine.name,
            ports=params.ports,
            hosts_scanned=spec.count(),
        )

    def encode_results(self, result: ShazzamResult) -> Sequence[ET.Element]:
        return encode_shazzam(result)


PROBE = ShazzamProbe()

"""``HostSweep`` (our topic): which addresses of a target spec are alive, and how we know.

Request: targets in nmap syntax (``targets``, else the record's ``source``), ``exclude``,
``method`` (``auto``/``arp``/``icmp``/``tcp``), ``tcp_ports``, ``wait`` (ms per attempt),
``retries``, ``rate`` (probes per second), ``sweep_timeout`` (ms overall), ``max_addresses``.
Result: ``<result><sweep ...><host ip=".." method="arp" rtt_ms=".." mac=".."/>...</sweep></result>``;
silent addresses are omitted, as Shazzam omits them; an address the kernel would not send to (ENOBUFS)
is listed as ``<host ip=".." alive="false" incomplete="why"/>``. See docs/sweep.md.
"""

from __future__ import annotations

import ipaddress
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from midprobe.capabilities.errors import MidprobeError, ProbeError, ProbeParameterError, TargetSpecError
from midprobe.probes.base import ProbeContext
from midprobe.probes.params import parse_choice, parse_int
from midprobe.probes.ports import parse_ports
from midprobe.probes.resolve import resolve_spec
from midprobe.probes.sweep.common import Answer, EngineOptions, Method, Tally
from midprobe.probes.sweep.raw import RawSweeper, raw_sockets_allowed
from midprobe.probes.sweep.routes import read_routing
from midprobe.probes.sweep.tcp_ping import DEFAULT_PING_PORTS, TcpPinger
from midprobe.probes.targets import TargetSpec, parse_targets
from midprobe.probes.xml_encode import flag

__all__ = [
    "PROBE",
    "AliveHost",
    "HostSweepProbe",
    "IncompleteHost",
    "SweepParams",
    "SweepResult",
    "encode_sweep",
    "parse_sweep_params",
    "sweep",
]

TOPIC = "HostSweep"
METHODS = ("auto", "arp", "icmp", "tcp")
DEFAULT_WAIT_MS = 1000
DEFAULT_RAW_RETRIES = 2
DEFAULT_TCP_RETRIES = 1
#: 0: no fixed rate: every engine is paced by its congestion window (probes/congestion.py).
DEFAULT_RATE = 0
DEFAULT_SWEEP_TIMEOUT_MS = 60_000
DEFAULT_MAX_ADDRESSES = 65_536  # a /16
MAX_ADDRESSES = 1 << 24  # a /8
_IPV4_EVERYTHING = (ipaddress.ip_network("0.0.0.0/0"),)
_IPV6_EVERYTHING = (ipaddress.ip_network("::/0"),)
_RAW_METHODS: tuple[Method, ...] = ("arp", "icmp")


@dataclass(frozen=True)
class SweepParams:
    """A validated sweep request. Times are milliseconds."""

    targets: TargetSpec
    method: str = "auto"
    tcp_ports: tuple[int, ...] = DEFAULT_PING_PORTS
    wait_ms: int = DEFAULT_WAIT_MS
    #: ``None``: 2 for ARP/ICMP, 1 for TCP connect.
    retries: int | None = None
    rate: int = DEFAULT_RATE
    sweep_timeout_ms: int = DEFAULT_SWEEP_TIMEOUT_MS
    max_addresses: int = DEFAULT_MAX_ADDRESSES


@dataclass(frozen=True)
class AliveHost:
    """An address that answered."""

    address: str
    method: Method
    rtt_ms: float
    mac: str | None = None
    host_name: str | None = None
    #: For ``tcp-connect``: the port that answered and how (``open``, ``refused``).
    port: int | None = None
    port_state: str | None = None


@dataclass(frozen=True)
class IncompleteHost:
    """An address given up because the kernel kept refusing its requests: not known to be down."""

    address: str
    reason: str


@dataclass(frozen=True)
class SweepResult:
    """What a sweep found; ``alive`` is sorted by address."""

    targets: str
    method: str
    methods_used: tuple[Method, ...]
    raw_sockets: bool
    #: Why the sweep fell back to TCP connect (``None`` when it did not).
    fallback_reason: str | None
    addresses: int
    alive: tuple[AliveHost, ...]
    unreachable: int
    silent: int
    #: Addresses not decided when the deadline came.
    unchecked: int
    probes_sent: int
    elapsed_ms: int
    complete: bool
    #: Addresses never asked (the kernel refused the requests), sorted by address.
    incomplete: tuple[IncompleteHost, ...] = ()


# --- parameters (pure) ----------------------------------------------------------------------------


def parse_sweep_params(source: str, parameters: Mapping[str, str]) -> SweepParams:
    """Validate a ``HostSweep`` request; raises ``ProbeParameterError`` naming the parameter."""
    name = "targets" if parameters.get("targets", "").strip() else "source"
    text = parameters.get("targets", "").strip() or source.strip()
    if not text:
        raise ProbeParameterError("nothing to sweep (neither targets nor source is set)", parameter="targets")
    try:
        spec = parse_targets(text, parameters.get("exclude", ""))
    except TargetSpecError as error:
        raise ProbeParameterError(str(error), parameter=name) from None
    method = parse_choice(parameters, "method", "auto", METHODS)
    ports = DEFAULT_PING_PORTS
    if parameters.get("tcp_ports", "").strip():
        try:
            parsed = parse_ports(parameters["tcp_ports"])
        except MidprobeError as error:
            raise ProbeParameterError(str(error), parameter="tcp_ports") from None
        if parsed.udp or not parsed.tcp:
            raise ProbeParameterError("TCP ports only", parameter="tcp_ports")
        if len(parsed.tcp) > 64:
            raise ProbeParameterError(f"{len(parsed.tcp)} ports, at most 64", parameter="tcp_ports")
        ports = parsed.tcp
    max_addresses = parse_int(parameters, "max_addresses", DEFAULT_MAX_ADDRESSES, 1, MAX_ADDRESSES)
    count = spec.count()
    if count > max_addresses:
        raise ProbeParameterError(
            f"{count} addresses, more than max_addresses={max_addresses}", parameter=name
        )
    retries_text = parameters.get("retries", "").strip()
    if not spec.host_names and (why := _family_refusal(spec, method)) is not None:
        raise ProbeParameterError(why, parameter=name)
    return SweepParams(
        targets=spec,
        method=method,
        tcp_ports=ports,
        wait_ms=parse_int(parameters, "wait", DEFAULT_WAIT_MS, 10, 60_000),
        retries=parse_int(parameters, "retries", 0, 0, 10) if retries_text else None,
        rate=parse_int(parameters, "rate", DEFAULT_RATE, 0, 1_000_000),
        sweep_timeout_ms=parse_int(parameters, "sweep_timeout", DEFAULT_SWEEP_TIMEOUT_MS, 100, 3_600_000),
        max_addresses=max_addresses,
    )


# --- the run ---------------------------------------------------------------------------------------


async def sweep(params: SweepParams, context: ProbeContext) -> SweepResult:
    """Sweep ``params.targets``; sockets are made on the calling thread (its network namespace)."""
    started = time.monotonic()
    spec = params.targets
    named = bool(spec.host_names)
    spec = await resolve_spec(spec, context.policy, deadline=context.deadline)  # the policy checked too
    if named and (why := _family_refusal(spec, params.method)) is not None:
        raise ProbeParameterError(why, parameter="targets")
    ipv6 = params.method != "tcp" and spec.first_outside(_IPV6_EVERYTHING) is None
    total = spec.count()
    margin = min(1.0, context.remaining() * 0.05)
    deadline = min(started + params.sweep_timeout_ms / 1000, context.deadline - margin)

    method = params.method
    fallback: str | None = None
    raw_allowed, why_not = (False, None) if method == "tcp" else raw_sockets_allowed()
    if method in ("arp", "icmp") and not raw_allowed:
        raise ProbeError(f"method={method} needs raw sockets: {why_not}")
    if method == "auto" and not raw_allowed:
        fallback = f"{why_not}; swept with TCP connect to ports {','.join(map(str, params.tcp_ports))}"

    wait = params.wait_ms / 1000
    tally: Tally
    methods_used: tuple[Method, ...]
    if raw_allowed and ipv6:
        options = EngineOptions(
            wait=wait,
            retries=DEFAULT_RAW_RETRIES if params.retries is None else params.retries,
            rate=float(params.rate) if params.rate else None,
            deadline=deadline,
        )
        from midprobe.probes.sweep.icmp6 import Icmp6Pinger  # IPv6 sweeps only

        tally = await Icmp6Pinger(options).run(spec)
        methods_used = ("icmp",)
    elif raw_allowed:
        routing = read_routing()
        if method == "arp":
            on_link = [route.network for route in routing.routes if route.on_link]
            outside = spec.first_outside(on_link)
            if outside is not None:
                raise ProbeParameterError(
                    f"{outside} is not on a directly attached subnet, so ARP cannot reach it",
                    parameter="method",
                )
        options = EngineOptions(
            wait=wait,
            retries=DEFAULT_RAW_RETRIES if params.retries is None else params.retries,
            rate=float(params.rate) if params.rate else None,
            deadline=deadline,
        )
        sweeper = RawSweeper(routing, options, use_arp=method != "icmp", arp_only=method == "arp")
        tally = await sweeper.run(spec)
        methods_used = tuple(m for m in _RAW_METHODS if m in sweeper.methods_used)
    else:
        options = EngineOptions(
            wait=wait,
            retries=DEFAULT_TCP_RETRIES if params.retries is None else params.retries,
            rate=float(params.rate) if params.rate else None,
            deadline=deadline,
        )
        tally = await TcpPinger(params.tcp_ports, options).run(spec)
        methods_used = ("tcp-connect",)

    alive = tuple(_alive_host(answer) for answer in sorted(tally.alive, key=lambda a: int(a.target.address)))
    return SweepResult(
        targets=str(params.targets),
        method=method,
        methods_used=methods_used,
        raw_sockets=raw_allowed,
        fallback_reason=fallback,
        addresses=total,
        alive=alive,
        unreachable=tally.unreachable,
        silent=tally.silent,
        unchecked=max(0, total - tally.decided),
        probes_sent=tally.sent,
        elapsed_ms=round((time.monotonic() - started) * 1000),
        complete=tally.complete and tally.decided >= total,
        incomplete=tuple(
            IncompleteHost(str(target.address), reason)
            for target, reason in sorted(tally.incomplete, key=lambda item: int(item[0].address))
        ),
    )


def _family_refusal(spec: TargetSpec, method: str) -> str | None:
    """Why ``method`` cannot sweep ``spec``'s address families, or ``None``.

    ARP is IPv4 only; ``auto``/``icmp`` sweep IPv6 with ICMPv6 echo (after the kernel's neighbour
    discovery), one family per sweep; TCP connect takes both.
    """
    if method == "tcp" or spec.first_outside(_IPV4_EVERYTHING) is None:
        return None
    if method == "arp":
        return "ARP is IPv4 only; IPv6 targets need method=auto, icmp (ICMPv6 echo) or tcp"
    if spec.first_outside(_IPV6_EVERYTHING) is not None:
        return "IPv4 and IPv6 targets in one ARP/ICMP sweep: sweep each family on its own, or use method=tcp"
    return None


def _alive_host(answer: Answer) -> AliveHost:
    return AliveHost(
        address=str(answer.target.address),
        method=answer.method,
        rtt_ms=answer.rtt_ms,
        mac=answer.mac,
        host_name=answer.target.host_name,
        port=answer.port,
        port_state=answer.port_state,
    )


# --- the ECC payload (pure) --------------------------------------------------------------------------


def encode_sweep(result: SweepResult) -> ET.Element:
    """``<result><sweep ...><host .../>...</sweep></result>`` (documented in docs/sweep.md)."""
    element = ET.Element("result")
    attributes = {
        "targets": result.targets,
        "method": result.method,
        "methods_used": ",".join(result.methods_used),
        "raw_sockets": flag(result.raw_sockets),
        "addresses": str(result.addresses),
        "alive": str(len(result.alive)),
        "unreachable": str(result.unreachable),
        "silent": str(result.silent),
        "unchecked": str(result.unchecked),
        "probes_sent": str(result.probes_sent),
        "elapsed_ms": str(result.elapsed_ms),
        "complete": flag(result.complete),
    }
    if result.incomplete:
        attributes["incomplete"] = str(len(result.incomplete))
    if result.fallback_reason:
        attributes["fallback"] = result.fallback_reason
    summary = ET.SubElement(element, "sweep", attributes)
    for host in result.alive:
        entry = ET.SubElement(summary, "host", ip=host.address, alive="true", method=host.method)
        entry.set("rtt_ms", f"{host.rtt_ms:g}")
        if host.host_name:
            entry.set("hostName", host.host_name)
        if host.mac:
            entry.set("mac", host.mac)
        if host.port is not None:
            entry.set("port", str(host.port))
        if host.port_state:
            entry.set("port_result", host.port_state)
    for undecided in result.incomplete:
        ET.SubElement(summary, "host", ip=undecided.address, alive="false", incomplete=undecided.reason)
    return element


class HostSweepProbe:
    topic = TOPIC
    required_capabilities: tuple[str, ...] = ()

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> SweepParams:
        return parse_sweep_params(source, parameters)

    async def run(self, params: SweepParams, context: ProbeContext) -> SweepResult:
        return await sweep(params, context)

    def encode_results(self, result: SweepResult) -> Sequence[ET.Element]:
        return [encode_sweep(result)]


PROBE = HostSweepProbe()

"""``midprobe sweep``: which addresses answer (ARP, ICMP, or TCP connect), without scanning ports.

The HostSweep probe, run as the agent runs it (``runner/scan/stages.py`` ``run_probe``): its
typed parameters, the target policy (``--lab``) and, in lab mode, the check that this network
namespace has no route out of the lab. nmap's ``-sn`` in midprobe's words.
"""

from __future__ import annotations

import json
import socket
import time

import click

from midprobe.probes.base import ProbeContext
from midprobe.probes.registry import default_registry
from midprobe.probes.safety import TargetPolicy, require_lab_namespace, stays_on_loopback
from midprobe.probes.sweep.host_sweep import (
    DEFAULT_MAX_ADDRESSES,
    DEFAULT_RATE,
    DEFAULT_WAIT_MS,
    METHODS,
    AliveHost,
    SweepParams,
    SweepResult,
)
from midprobe.runner.cli import aio
from midprobe.runner.cli.options import integer
from midprobe.runner.cli.text import printable
from midprobe.runner.scan.plan import target_spec
from midprobe.runner.scan.stages import run_probe

#: The longest the sweep may take (ms); its waits, retries and rate bound it well before.
SWEEP_TIMEOUT_MS = 600_000


@click.command("sweep")
@click.argument("targets", nargs=-1)
@click.option(
    "--exclude", "excludes", multiple=True, metavar="TARGETS", help="Targets to leave out (repeatable)."
)
@click.option(
    "-iL", "input_lists", multiple=True, metavar="FILE", help="Read targets from FILE ('-' = stdin)."
)
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default="auto",
    show_default=True,
    help="auto: ARP on the scanner's own subnets, ICMP echo elsewhere; IPv6: ICMPv6 echo after neighbour discovery (TCP connect without raw sockets).",
)
@click.option(
    "--wait",
    "wait_ms",
    type=integer(1, 60_000),
    default=DEFAULT_WAIT_MS,
    show_default=True,
    help="ms per try.",
)
@click.option(
    "--retries", type=integer(0, 10), default=None, help="Tries after the first [the method's own]."
)
@click.option(
    "--rate",
    type=integer(0, 1_000_000),
    default=DEFAULT_RATE,
    show_default=True,
    help="Probes per second; 0: no fixed rate (a congestion window paces every method).",
)
@click.option(
    "--lab",
    "lab_mode",
    is_flag=True,
    envvar="MIDPROBE_LAB_MODE",
    help="Refuse every target outside the lab networks (env MIDPROBE_LAB_MODE; set inside `midprobe lab exec`).",
)
@click.option(
    "--format", "output_format", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def sweep(
    targets: tuple[str, ...],
    excludes: tuple[str, ...],
    input_lists: tuple[str, ...],
    method: str,
    wait_ms: float,
    retries: float | None,
    rate: float,
    lab_mode: bool,
    output_format: str,
) -> None:
    """List the addresses of TARGETS (nmap syntax) that answer, with how and how fast.

    Silent and unreachable addresses are counted in the summary on stderr, and so are addresses
    the sweep could not decide (the summary says so: nothing is left out silently). An address
    the kernel would not send to (ENOBUFS: its neighbour table full) is listed as incomplete.
    """
    policy = TargetPolicy.lab() if lab_mode else TargetPolicy.unrestricted()
    spec = target_spec(targets, excludes, input_lists)
    params = SweepParams(
        targets=spec,
        method=method,
        wait_ms=int(wait_ms),
        retries=None if retries is None else int(retries),
        rate=int(rate),
        sweep_timeout_ms=SWEEP_TIMEOUT_MS,
        max_addresses=DEFAULT_MAX_ADDRESSES,
    )
    if lab_mode:
        outside = spec.first_outside(policy.allowed or ())
        if outside is not None:
            policy.check(outside)  # a target outside the lab is refused first, by name
        if not stays_on_loopback(spec):
            require_lab_namespace()
    context = ProbeContext(
        agent_name="midprobe sweep", deadline=time.monotonic() + SWEEP_TIMEOUT_MS / 1000 + 5, policy=policy
    )
    result = aio.run(
        run_probe(default_registry(), "HostSweep", params, context, SweepResult), stop_on_sigterm=True
    )
    _print(result, output_format)


def _print(result: SweepResult, output_format: str) -> None:
    alive = sorted(result.alive, key=lambda host: _address_key(host.address))
    lines: list[str] = []  # written at once: a /16's lines, not 65,536 writes
    if output_format == "json":
        lines.extend(map(_json_line, alive))
        lines.extend(  # never asked: not known to be down
            json.dumps({"address": undecided.address, "incomplete": undecided.reason})
            for undecided in result.incomplete
        )
    else:
        if alive or result.incomplete:
            lines.append(f"{'ADDRESS':<40} {'METHOD':<6} {'RTT MS':>8}  MAC")
        lines.extend(
            f"{host.address:<40} {host.method:<6} {host.rtt_ms:>8.2f}  {printable(host.mac) or '-'}"
            for host in alive
        )
        lines.extend(
            f"{undecided.address:<40} incomplete: {undecided.reason}" for undecided in result.incomplete
        )
    if lines:
        click.echo("\n".join(lines))
    methods = ", ".join(result.methods_used) or result.method
    summary = (
        f"{len(alive)} of {result.addresses:,} addresses answered ({methods}); "
        f"{result.silent:,} silent, {result.unreachable:,} unreachable, {result.elapsed_ms / 1000:.2f} s"
    )
    if result.fallback_reason:
        summary += f"; {result.fallback_reason}"
    if not result.complete:
        summary += f"; INCOMPLETE: {result.unchecked:,} addresses not checked"
    if result.incomplete:  # never asked, so not known to be down
        summary += f"; {len(result.incomplete):,} incomplete (the kernel refused the requests: ENOBUFS)"
    click.echo(summary, err=True)


def _json_line(host: AliveHost) -> str:
    """``json.dumps`` of the host's object, written out: an address and a method need no escaping
    (an IP literal, one of :data:`METHODS`' words), so only the MAC and the name go through ``json``
    (a /16's lines in a third of the time)."""
    mac = "null" if host.mac is None else json.dumps(host.mac)
    name = "null" if host.host_name is None else json.dumps(host.host_name)
    return (
        f'{{"address": "{host.address}", "method": "{host.method}", '
        f'"rtt_ms": {round(host.rtt_ms, 3)!r}, "mac": {mac}, "host_name": {name}}}'
    )


def _address_key(address: str) -> bytes:
    """Numeric address order, IPv4 first (4 bytes sort before 16 with the length in front)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    packed = socket.inet_pton(family, address.partition("%")[0])
    return bytes([len(packed)]) + packed


__all__ = ["sweep"]

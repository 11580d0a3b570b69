"""Shazzam, all 65,535 TCP ports of one lab host: midprobe against ``nmap -sT -T5 -n -Pn -p-``.

Brings up the default lab, then in the scanner namespace scans one host (linux1 unless --host)
in alternating rounds with nmap -sT, midprobe's Shazzam probe with its automatic engine (SYN when
run as root), midprobe's connect engine, and nmap -sS (the like-for-like reference for SYN).
Prints the best and median wall time of each, the ratios to nmap -sT, and whether every run found
the same open ports as the lab says are open. Exit status 1 when the open-port sets differ.
midprobe runs in-process (``Shazzam`` probe: parameters, policy check, scan, result); nmap is timed
from its ``ip netns exec`` start to its exit, and nmap's own reported elapsed time is shown too.
Usage: .venv/bin/python bench/bench_shazzam.py [--rounds N] [--host NAME] [--profile]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from defusedxml import ElementTree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from headline import headline  # noqa: E402

from midprobe.probes.base import ProbeContext  # noqa: E402
from midprobe.probes.safety import TargetPolicy  # noqa: E402
from midprobe.probes.shazzam import PROBE, ShazzamResult  # noqa: E402
from midprobe.runner.lab import Lab, NamespaceThread  # noqa: E402

TARGET_RATIO = 1.5


@dataclass
class Tool:
    """One contender: its runs' wall times and the open-port sets it found."""

    label: str
    seconds: list[float] = field(default_factory=list)
    reported: list[float] = field(default_factory=list)  # nmap's own elapsed time
    found: list[frozenset[int]] = field(default_factory=list)
    engine: str = ""

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def run_midprobe(thread: NamespaceThread, address: str, engine: str, tool: Tool) -> None:
    # The port scan alone, as nmap -sT does it: no banner readers on the open ports.
    params = PROBE.parse_params(address, {"ports": "-", "engine": engine, "scanners": "GenericTCP"})
    context = ProbeContext(policy=TargetPolicy.lab())
    started = time.perf_counter()
    result: ShazzamResult = thread.run_async(lambda: PROBE.run(params, context))
    tool.seconds.append(time.perf_counter() - started)
    tool.engine = result.engine
    tool.found.append(frozenset(port for host in result.hosts for port in host.open_ports))


def run_nmap(lab: Lab, address: str, scan_type: str, tool: Tool) -> None:
    argv = ["nmap", scan_type, "-T5", "-n", "-Pn", "-p-", "-oX", "-", address]
    started = time.perf_counter()
    done = lab.run(argv, timeout=600)
    tool.seconds.append(time.perf_counter() - started)
    root = ElementTree.fromstring(done.stdout)
    finished = root.find("runstats/finished")
    if finished is not None and finished.get("elapsed"):
        tool.reported.append(float(finished.get("elapsed", "0")))
    tool.found.append(
        frozenset(
            int(port.get("portid", "0"))
            for port in root.iter("port")
            if (state := port.find("state")) is not None and state.get("state") == "open"
        )
    )


def profile_midprobe(thread: NamespaceThread, address: str, engine: str) -> None:
    """One scan under pyinstrument, run by the engine in the namespace thread itself, printed as text.

    (The Shazzam probe drives the engine from a worker thread, which a sampling profiler of the
    calling thread would not see.)
    """
    from pyinstrument import Profiler  # a dev dependency: only needed here

    from midprobe.probes.targets import parse_targets
    from midprobe.probes.tcpscan.engine import scan

    def profiled() -> str:
        profiler = Profiler(interval=0.0005)
        profiler.start()
        try:
            for _ in scan(parse_targets(address), range(1, 65536), engine=engine):
                pass
        finally:
            profiler.stop()
        return str(profiler.output_text(unicode=False, color=False))

    print(f"\n--- pyinstrument, midprobe engine {engine} ---")
    print(thread.call(profiled))


def report(tools: list[Tool], expected: frozenset[int]) -> bool:
    reference = tools[0]
    print(f"\n{'tool':<34} {'best s':>8} {'median s':>9} {'nmap says':>10} {'vs nmap -sT':>12}  open ports")
    for tool in tools:
        says = f"{min(tool.reported):.2f}" if tool.reported else "-"
        ratio = reference.best / tool.best
        ports = ",".join(map(str, sorted(tool.found[0]))) if tool.found else ""
        print(f"{tool.label:<34} {tool.best:8.3f} {tool.median:9.3f} {says:>10} {ratio:11.2f}x  {ports}")
    identical = all(found == expected for tool in tools for found in tool.found)
    print(
        f"\nopen-port sets identical across every run and equal to the lab's {sorted(expected)}: {identical}"
    )
    for tool in tools[1:3]:
        ratio = reference.best / tool.best
        verdict = "meets" if ratio >= TARGET_RATIO else "BELOW"
        print(
            f"{tool.label}: {ratio:.2f}x nmap -sT on best times ({reference.median / tool.median:.2f}x on "
            f"medians); {verdict} the {TARGET_RATIO}x target"
        )
    fastest = tools[1] if tools[1].best <= tools[2].best else tools[2]
    headline(
        "TCP scan, 65,535 ports of one host (Shazzam in process)",
        f"{fastest.best:.2f} s ({fastest.label.removeprefix('midprobe Shazzam (').rstrip(')')})",
        f"`nmap -sT -T5`: {reference.best:.2f} s",
        reference.best / fastest.best,
        target=TARGET_RATIO,
        same_results=identical,
    )
    return identical


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per tool (default 5)")
    parser.add_argument("--host", default="linux1", help="lab host to scan (default linux1)")
    parser.add_argument("--profile", action="store_true", help="also profile one midprobe run per engine")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_shazzam: the lab needs root")
    if shutil.which("nmap") is None:
        sys.exit("bench_shazzam: nmap is not installed")
    if args.rounds < 1:
        sys.exit("bench_shazzam: --rounds must be at least 1")

    with Lab.up() as lab:
        host = lab.host(args.host)
        expected = frozenset(host.open_tcp_ports)
        print(f"lab {lab.prefix}: scanning {host.name} ({host.address}), ports 1-65535, {args.rounds} rounds")
        nmap_connect = Tool("nmap -sT -T5 -n -Pn -p-")
        auto = Tool("midprobe Shazzam (engine auto)")
        connect = Tool("midprobe Shazzam (engine connect)")
        nmap_syn = Tool("nmap -sS -T5 -n -Pn -p-")
        with lab.namespace_thread() as thread:
            steps: list[Callable[[], None]] = [
                lambda: run_nmap(lab, host.address, "-sT", nmap_connect),
                lambda: run_midprobe(thread, host.address, "auto", auto),
                lambda: run_midprobe(thread, host.address, "connect", connect),
                lambda: run_nmap(lab, host.address, "-sS", nmap_syn),
            ]
            run_midprobe(thread, host.address, "auto", Tool("warm-up"))  # imports, first sockets
            for _ in range(args.rounds):
                for step in steps:
                    step()
            auto.label = f"midprobe Shazzam (engine {auto.engine})"
            identical = report([nmap_connect, auto, connect, nmap_syn], expected)
            if args.profile:
                for engine in ("syn", "connect"):
                    profile_midprobe(thread, host.address, engine)
    sys.exit(0 if identical else 1)


if __name__ == "__main__":
    main()

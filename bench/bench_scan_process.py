"""``midprobe scan`` as whole processes against ``nmap -sT -T5 -n -Pn -p-``, all 65,535 ports of one lab host.

Brings up the default lab and, in its scanner namespace (``ip netns exec``, as a user would run
them), times in alternating rounds: ``nmap -sT -T5 -n -Pn -p- HOST``, ``nmap -sS`` likewise,
``midprobe scan HOST -p- -n --no-banners`` and ``midprobe scan HOST -p-`` (banners on; ``-n`` too, as
the lab resolves names only through its own DNS server), each from its start to its exit (start-up,
imports and output included). Prints the median and best of each, the ratios to nmap -sT with the
goals (1.5x without banners, 1.0x with them) and whether every run of every tool found the open ports
the lab says are open (exit status 1 if not). midprobe runs with ``PYTHONDONTWRITEBYTECODE`` unset, so
its modules are byte-compiled once (in the warm-up run) as in an installed copy, not compiled anew in
every timed run.
Prints each one's CPU time (user + system) beside its wall time.
Usage: .venv/bin/python bench/bench_scan_process.py [--rounds N] [--host NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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

from midprobe.runner.lab import Lab  # noqa: E402

#: The goals, as ratios of nmap -sT's median wall time to midprobe's.
PORT_SCAN_TARGET = 1.5
BANNERS_TARGET = 1.0


@dataclass
class Tool:
    """One command line: its runs' wall times and the open-port sets it reported."""

    label: str
    argv: list[str]
    read: Callable[[str], frozenset[int]]
    seconds: list[float] = field(default_factory=list)
    #: CPU seconds (user + system, every thread) of each run: the work, whatever the machine's load.
    cpu: list[float] = field(default_factory=list)
    found: list[frozenset[int]] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu)

    def run(self, lab: Lab) -> None:
        before = _children_cpu()
        started = time.perf_counter()
        done = lab.run(self.argv, timeout=600)
        self.seconds.append(time.perf_counter() - started)
        self.cpu.append(_children_cpu() - before)
        self.found.append(self.read(done.stdout))


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes so far (``ip netns exec`` execs the
    command, so a run's children are that one process)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def nmap_open(stdout: str) -> frozenset[int]:
    root = ElementTree.fromstring(stdout)
    return frozenset(
        int(port.get("portid", "0"))
        for port in root.iter("port")
        if (state := port.find("state")) is not None and state.get("state") == "open"
    )


def midprobe_open(stdout: str) -> frozenset[int]:
    return frozenset(port for line in stdout.splitlines() for port in json.loads(line)["open_tcp_ports"])


def midprobe_command() -> list[str]:
    """The ``midprobe`` console script of this interpreter's environment (as a user types it)."""
    script = Path(sys.executable).parent / "midprobe"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "midprobe.runner"]
    return ["env", "-u", "PYTHONDONTWRITEBYTECODE", *command]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per tool (default 5)")
    parser.add_argument("--host", default="linux1", help="lab host to scan (default linux1: SSH and HTTP)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_scan_process: the lab needs root")
    if shutil.which("nmap") is None:
        sys.exit("bench_scan_process: nmap is not installed")
    if args.rounds < 1:
        sys.exit("bench_scan_process: --rounds must be at least 1")

    with Lab.up() as lab:
        host = lab.host(args.host)
        expected = frozenset(host.open_tcp_ports)
        address = host.address
        midprobe = [*midprobe_command(), "scan", address, "-p-", "-n", "--lab", "--format", "json", "-q"]
        tools = [
            Tool(
                "nmap -sT -T5 -n -Pn -p-",
                ["nmap", "-sT", "-T5", "-n", "-Pn", "-p-", "-oX", "-", address],
                nmap_open,
            ),
            Tool(
                "nmap -sS -T5 -n -Pn -p-",
                ["nmap", "-sS", "-T5", "-n", "-Pn", "-p-", "-oX", "-", address],
                nmap_open,
            ),
            Tool("midprobe scan -p- -n --no-banners", [*midprobe, "--no-banners"], midprobe_open),
            Tool("midprobe scan -p- -n (banners)", midprobe, midprobe_open),
        ]
        print(
            f"lab {lab.prefix}: {host.name} ({address}), open TCP ports {sorted(expected)}, ports 1-65535, "
            f"{args.rounds} rounds, whole processes in the scanner namespace"
        )
        tools[2].run(lab)  # warm-up: the page cache, the first sockets
        tools[2].seconds.clear()
        tools[2].cpu.clear()
        tools[2].found.clear()
        for _ in range(args.rounds):
            for tool in tools:
                tool.run(lab)

    reference = tools[0]
    print(
        f"\n{'command':<36} {'median s':>9} {'best s':>8} {'vs nmap -sT':>12} {'CPU s':>7} "
        f"{'CPU vs -sT':>11}  open ports"
    )
    for tool in tools:
        ports = ",".join(map(str, sorted(tool.found[0])))
        ratio = reference.median / tool.median
        cpu_ratio = reference.median_cpu / tool.median_cpu
        print(
            f"{tool.label:<36} {tool.median:9.3f} {min(tool.seconds):8.3f} {ratio:11.2f}x "
            f"{tool.median_cpu:7.2f} {cpu_ratio:10.2f}x  {ports}"
        )
    print(
        "(wall: medians and bests of the runs; CPU s: the median of user + system seconds per run, "
        f"the load on the machine being {os.getloadavg()[0]:.1f} at the end; the goals are on wall medians)"
    )
    identical = all(found == expected for tool in tools for found in tool.found)
    print(
        f"\nopen-port sets identical across every run and equal to the lab's {sorted(expected)}: {identical}"
    )
    print(f"nmap -sS: {reference.median / tools[1].median:.2f}x nmap -sT (for comparison)")
    for tool, target, row in (
        (tools[2], PORT_SCAN_TARGET, "port scan as a process, 65,535 ports of one host"),
        (tools[3], BANNERS_TARGET, "default scan with banners as a process, 65,535 ports of one host"),
    ):
        ratio = reference.median / tool.median
        verdict = "meets" if ratio >= target else "BELOW"
        print(f"{tool.label}: {ratio:.2f}x nmap -sT on medians; {verdict} the {target}x target")
        print(
            f"  and {tools[1].median / tool.median:.2f}x nmap -sS; CPU: {reference.median_cpu / tool.median_cpu:.2f}x "
            f"nmap -sT, {tools[1].median_cpu / tool.median_cpu:.2f}x nmap -sS"
        )
        headline(
            row,
            f"{tool.median:.2f} s (`{tool.label}`)",
            f"`nmap -sT -T5`: {reference.median:.2f} s",
            ratio,
            target=target,
            same_results=identical,
        )
    # The second reference: the same half-open scan midprobe's syn engine does (no target).
    headline(
        "port scan as a process vs nmap -sS, 65,535 ports of one host",
        f"{tools[2].median:.2f} s (`{tools[2].label}`)",
        f"`nmap -sS -T5`: {tools[1].median:.2f} s",
        tools[1].median / tools[2].median,
        same_results=identical,
    )
    sys.exit(0 if identical else 1)


if __name__ == "__main__":
    main()

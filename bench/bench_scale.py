"""Many hosts, as whole processes: ``midprobe scan`` and ``midprobe sweep`` of a routed /18 and /16
against ``nmap -sT -T5`` and ``nmap -sn``, with midprobe's peak RSS.

Brings up a one-host lab in scale mode (``Lab.up(scale=16)``: one namespace answers for every
address of the routed 198.19.0.0/16, TCP 22, 80 and 443 open, the other ports closed) and runs, in
its scanner namespace, as a user would (``ip netns exec``, start-up and output included), in
alternating rounds:

* 198.19.0.0/18 (16,384 addresses) x 10 ports: ``midprobe scan -Pn -n --no-banners --format json``
  vs ``nmap -sT -T5 -n -Pn``, then both with host discovery (``midprobe scan -n ...`` vs ``nmap -sT
  -T5 -n``; goal 1.5x each), and ``midprobe sweep`` vs ``nmap -sn -n`` (goal 1.5x);
* 198.19.0.0/16 (65,536 addresses) x 10 ports: the same scan, midprobe's peak RSS (goal < 200 MB),
  and the sweep of the /16 vs ``nmap -sn``.

Each run's wall time, its CPU time (user + system, from ``/usr/bin/time``: the machine is shared, so
wall time alone says little under load) and peak RSS are printed; the ratios quoted are of medians
of wall time. Open-port sets (every address, each tool) and alive sets are checked: equal to each
other and to what the lab serves (exit status 1 if not).

Opt-in (``run_all.py`` runs it only when named: ``make bench`` must stay under 15 minutes, and the
/16 scans alone take minutes on the loaded 2-core machine).
Usage: .venv/bin/python bench/bench_scale.py [--rounds N] [--skip-16]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_scan_process import midprobe_command  # noqa: E402
from headline import headline  # noqa: E402

from midprobe.runner.lab import Lab  # noqa: E402

TINY_PROFILE = ROOT / "fixtures" / "lab" / "tiny.toml"
PORTS = "21,22,23,25,80,110,139,443,3389,8080"
SCAN_TARGET = 1.5
SWEEP_TARGET = 1.5
RSS_LIMIT_MB = 200.0
TIMEOUT = 900.0

#: What a tool found: address -> open ports (a sweep: address -> nothing).
Found = dict[str, frozenset[int]]


@dataclass
class Tool:
    label: str
    argv: list[str]
    read: Callable[[str], Found]
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    found: list[Found] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def run(self, lab: Lab) -> None:
        with tempfile.NamedTemporaryFile("r", prefix="midprobe-bench-time-", suffix=".txt") as usage:
            timed = ["/usr/bin/time", "-f", "%e %U %S %M", "-o", usage.name, *self.argv]
            started = time.perf_counter()
            done = lab.run(timed, timeout=TIMEOUT, check=False)
            self.seconds.append(time.perf_counter() - started)
            if done.returncode != 0:
                print(
                    f"warning: {self.label} exited with status {done.returncode}: {done.stderr.strip()[-300:]}"
                )
            fields = usage.read().split()[-4:]
        _, user, system, rss_kb = (float(value) for value in fields)
        self.cpu.append(user + system)
        self.rss_mb.append(rss_kb / 1024)
        self.found.append(self.read(done.stdout))


def nmap_ports(stdout: str) -> Found:
    """Open ports per address from ``-oG -`` (grepable: one ``Ports:`` line per host)."""
    found: Found = {}
    for line in stdout.splitlines():
        if not line.startswith("Host: ") or "Ports: " not in line:
            continue
        address = line.split()[1]
        ports = line.split("Ports: ", 1)[1].split("\t", 1)[0]
        found[address] = frozenset(
            int(item.strip().split("/")[0])
            for item in ports.split(",")
            if item.strip().split("/")[1] == "open"
        )
    return found


def nmap_up(stdout: str) -> Found:
    return {
        line.split()[1]: frozenset()
        for line in stdout.splitlines()
        if line.startswith("Host: ") and "Status: Up" in line
    }


def midprobe_ports(stdout: str) -> Found:
    rows = (json.loads(line) for line in stdout.splitlines() if line.strip())
    return {row["address"]: frozenset(row["open_tcp_ports"]) for row in rows}


def midprobe_up(stdout: str) -> Found:
    rows = (json.loads(line) for line in stdout.splitlines() if line.strip())
    return {row["address"]: frozenset() for row in rows}


def _show(tools: list[Tool], reference: Tool) -> None:
    print(f"\n{'command':<52} {'median s':>9} {'CPU s':>7} {'peak RSS':>9} {'vs ref':>7}  found")
    for tool in tools:
        print(
            f"{tool.label:<52} {tool.median:9.2f} {statistics.median(tool.cpu):7.2f} "
            f"{max(tool.rss_mb):7.0f}MB {reference.median / tool.median:6.2f}x  {len(tool.found[-1]):,} hosts"
        )


def _same(tools: list[Tool], expected: Found) -> bool:
    for tool in tools:
        for found in tool.found:
            if found != expected:
                missing = len(set(expected) - set(found))
                wrong = sum(1 for a, ports in found.items() if expected.get(a) != ports)
                print(f"{tool.label}: {missing} address(es) missing, {wrong} with other ports than the lab's")
                return False
    return True


def _bench(lab: Lab, network: str, rounds: int, *, scan: bool) -> tuple[list[Tool], bool]:
    midprobe = midprobe_command()
    addresses = [str(a) for a in ipaddress.IPv4Network(network)]
    if scan:
        assert lab.scale is not None
        expected = dict.fromkeys(addresses, frozenset(lab.scale.open_tcp_ports))
        # Like with like: both without host discovery (-Pn), then both with it (nmap pings each
        # address first; midprobe sweeps each chunk, then port-scans the live addresses).
        scan_argv = [*midprobe, "scan", "--lab", "-n", "--no-banners", "--format", "json", "-q", "-p", PORTS]
        tools = [
            Tool(
                "nmap -sT -T5 -n -Pn",
                ["nmap", "-sT", "-T5", "-n", "-Pn", "-p", PORTS, "-oG", "-", network],
                nmap_ports,
            ),
            Tool(
                "midprobe scan -Pn -n --no-banners --format json",
                [*scan_argv, "-Pn", network],
                midprobe_ports,
            ),
            Tool(
                "nmap -sT -T5 -n", ["nmap", "-sT", "-T5", "-n", "-p", PORTS, "-oG", "-", network], nmap_ports
            ),
            Tool("midprobe scan -n --no-banners --format json", [*scan_argv, network], midprobe_ports),
        ]
    else:
        expected = dict.fromkeys(addresses, frozenset())
        tools = [
            Tool("nmap -sn -n", ["nmap", "-sn", "-n", "-oG", "-", network], nmap_up),
            Tool(
                "midprobe sweep --format json",
                [*midprobe, "sweep", "--lab", "--format", "json", network],
                midprobe_up,
            ),
        ]
    for _ in range(rounds):
        for tool in tools:
            tool.run(lab)
    for pair in range(0, len(tools), 2):
        _show(tools[pair : pair + 2], tools[pair])
    return tools, _same(tools, expected)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds per tool (default 1)")
    parser.add_argument("--skip-16", action="store_true", help="only the /18")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_scale: the lab needs root")
    if shutil.which("nmap") is None or not Path("/usr/bin/time").exists():
        sys.exit("bench_scale: needs nmap and /usr/bin/time")
    if args.rounds < 1:
        sys.exit("bench_scale: --rounds must be at least 1")
    identical = True
    with Lab.up(TINY_PROFILE, scale=16) as lab:
        assert lab.scale is not None
        print(
            f"lab {lab.prefix}: {lab.scale.network} via {lab.scale.gateway}, every address with TCP "
            f"{','.join(map(str, lab.scale.open_tcp_ports))} open; ports {PORTS}; {args.rounds} round(s); "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        print("\n--- 198.19.0.0/18 x 10 ports")
        scan18, same = _bench(lab, "198.19.0.0/18", args.rounds, scan=True)
        identical &= same
        for (reference, ours), how in zip((scan18[:2], scan18[2:]), ("-Pn", "host discovery"), strict=True):
            headline(
                f"routed /18 x 10 ports as a process (16,384 hosts), {how}",
                f"{ours.median:.2f} s, CPU {statistics.median(ours.cpu):.2f} s",
                f"`{reference.label}`: {reference.median:.2f} s, CPU {statistics.median(reference.cpu):.2f} s",
                reference.median / ours.median,
                target=SCAN_TARGET,
                same_results=same,
            )
        print("\n--- 198.19.0.0/18 sweep")
        sweep18, same = _bench(lab, "198.19.0.0/18", args.rounds, scan=False)
        identical &= same
        reference, ours = sweep18
        headline(
            "routed /18 ICMP sweep as a process (16,384 hosts)",
            f"{ours.median:.2f} s",
            f"`nmap -sn`: {reference.median:.2f} s",
            reference.median / ours.median,
            target=SWEEP_TARGET,
            same_results=same,
        )
        if not args.skip_16:
            print("\n--- 198.19.0.0/16 x 10 ports")
            scan16, same = _bench(lab, "198.19.0.0/16", args.rounds, scan=True)
            identical &= same
            for (reference, ours), how in zip(
                (scan16[:2], scan16[2:]), ("-Pn", "host discovery"), strict=True
            ):
                headline(
                    f"routed /16 x 10 ports as a process (65,536 hosts), {how}",
                    f"{ours.median:.2f} s",
                    f"`{reference.label}`: {reference.median:.2f} s",
                    reference.median / ours.median,
                    same_results=same,
                )
            rss = max(max(tool.rss_mb) for tool in scan16[1::2])  # midprobe's, both ways
            headline(
                "peak RSS of the /16 x 10 ports scan (limit / RSS)",
                f"{rss:.0f} MB",
                f"limit {RSS_LIMIT_MB:.0f} MB (nmap: {max(scan16[0].rss_mb):.0f} MB)",
                RSS_LIMIT_MB / rss,
                target=1.0,
                same_results=same,
            )
            print("\n--- 198.19.0.0/16 sweep")
            sweep16, same = _bench(lab, "198.19.0.0/16", args.rounds, scan=False)
            identical &= same
            reference, ours = sweep16
            headline(
                "routed /16 ICMP sweep as a process (65,536 hosts)",
                f"{ours.median:.2f} s",
                f"`nmap -sn`: {reference.median:.2f} s",
                reference.median / ours.median,
                same_results=same,
            )
    print(f"\nresult sets identical to each other and to the lab's: {identical}")
    sys.exit(0 if identical else 1)


if __name__ == "__main__":
    main()

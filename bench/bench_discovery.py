"""Shazzam + banner sniff + classification of the lab hosts: ``midprobe scan``'s pipeline against ``nmap -sV``.

Brings up the default lab and, from its scanner namespace, scans the lab hosts (198.18.0.10-15) on
Shazzam's default TCP ports three ways: midprobe's scan pipeline in-process (port scan, banners,
classification), the ``midprobe scan`` CLI as a user runs it (process start included), and
``nmap -sV -n`` on the same ports. Prints the times, the ratio, whether the open ports agree, and
the class midprobe chose per host next to nmap's service names.
Usage: .venv/bin/python bench/bench_discovery.py
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from headline import headline  # noqa: E402

from midprobe.probes.nmap.parse import parse_nmap_xml  # noqa: E402
from midprobe.probes.ports import format_ports, parse_ports  # noqa: E402
from midprobe.probes.safety import TargetPolicy  # noqa: E402
from midprobe.probes.shazzam import DEFAULT_PORTS  # noqa: E402
from midprobe.probes.targets import parse_targets  # noqa: E402
from midprobe.runner.lab import Lab, NamespaceThread  # noqa: E402
from midprobe.runner.scan.pipeline import ScanPipeline, ScanSettings  # noqa: E402
from midprobe.runner.scan.report import HostReport  # noqa: E402

NMAP_TIMEOUT_S = 900


@dataclass(frozen=True)
class Run:
    tool: str
    seconds: float
    #: Open TCP ports by address, for hosts that have any.
    open_ports: dict[str, tuple[int, ...]]
    #: What the tool says each host is (midprobe: CMDB class; nmap: its service names).
    verdicts: dict[str, str]


def _open(ports: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    return {address: found for address, found in ports.items() if found}


def midprobe_pipeline(thread: NamespaceThread, targets: str, ports: tuple[int, ...]) -> Run:
    settings = ScanSettings(ports=ports, policy=TargetPolicy.lab())

    async def scan() -> list[HostReport]:
        return [report async for report in ScanPipeline(settings).run(parse_targets(targets))]

    started = time.perf_counter()
    reports = thread.run_async(scan)
    seconds = time.perf_counter() - started
    return Run(
        "midprobe pipeline (in-process)",
        seconds,
        _open({report.address: report.open_tcp_ports for report in reports}),
        {report.address: report.ci_class or "unknown" for report in reports},
    )


def midprobe_cli(lab: Lab, targets: str, ports: tuple[int, ...]) -> Run:
    argv = [sys.executable, "-m", "midprobe.runner", "scan", "--lab", "-n", "--format", "json"]
    started = time.perf_counter()
    done = lab.run([*argv, "-p", format_ports(ports), targets], timeout=300)
    seconds = time.perf_counter() - started
    reports = [json.loads(line) for line in done.stdout.splitlines()]
    return Run(
        "midprobe scan (CLI)",
        seconds,
        _open({r["address"]: tuple(r["open_tcp_ports"]) for r in reports}),
        {r["address"]: r["ci_class"] or "unknown" for r in reports},
    )


def nmap_sv(lab: Lab, addresses: list[str], ports: tuple[int, ...]) -> Run:
    argv = ["nmap", "-sV", "-n", "-p", format_ports(ports), "-oX", "-", *addresses]
    started = time.perf_counter()
    done = lab.run(argv, timeout=NMAP_TIMEOUT_S)
    seconds = time.perf_counter() - started
    scan = parse_nmap_xml(done.stdout.encode())
    open_ports = {}
    verdicts = {}
    for host in scan.hosts_up:
        open_ports[host.address] = tuple(sorted(port.portid for port in host.open_ports))
        names = [port.service.display_name for port in host.open_ports if port.service is not None]
        verdicts[host.address] = ",".join(names) or "-"
    return Run("nmap -sV -n", seconds, _open(open_ports), verdicts)


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("bench_discovery: the lab needs root")
    if shutil.which("nmap") is None:
        sys.exit("bench_discovery: nmap is not installed")
    ports = parse_ports(DEFAULT_PORTS).tcp
    with Lab.up() as lab:
        addresses = [host.address for host in lab.hosts]
        targets = ",".join(addresses)
        expected = _open(
            {host.address: tuple(sorted(set(host.open_tcp_ports) & set(ports))) for host in lab.hosts}
        )
        with lab.namespace_thread() as thread:
            midprobe_pipeline(thread, targets, ports)  # warm-up: imports, first sockets
            ours = midprobe_pipeline(thread, targets, ports)
        cli = midprobe_cli(lab, targets, ports)
        nmap = nmap_sv(lab, addresses, ports)

    print(
        f"{len(addresses)} lab hosts x {len(ports)} TCP ports ({format_ports(ports)}), lab scanner namespace"
    )
    print(f"{'tool':<32} {'seconds':>8} {'hosts':>6} {'vs pipeline':>12}")
    for run in (ours, cli, nmap):
        print(
            f"{run.tool:<32} {run.seconds:8.2f} {len(run.open_ports):6d} {run.seconds / ours.seconds:12.2f}"
        )
    print(f"ratio nmap -sV / midprobe pipeline: {nmap.seconds / ours.seconds:.1f}x")
    print(f"ratio nmap -sV / midprobe scan CLI: {nmap.seconds / cli.seconds:.1f}x")
    print(f"{'address':<14} {'open ports':<14} {'midprobe class':<26} nmap services")
    for address in addresses:
        found = ",".join(map(str, ours.open_ports.get(address, ()))) or "-"
        print(
            f"{address:<14} {found:<14} {ours.verdicts.get(address, '-'):<26} {nmap.verdicts.get(address, '-')}"
        )
    agree = ours.open_ports == nmap.open_ports == expected == cli.open_ports
    print(f"open ports agree (pipeline, CLI, nmap, lab): {'yes' if agree else 'NO'}")
    headline(
        "ports + banners + classification of the lab",
        f"{cli.seconds:.2f} s (`midprobe scan`)",
        f"`nmap -sV`: {nmap.seconds:.1f} s",
        nmap.seconds / cli.seconds,
        same_results=agree,
    )
    print(f"load average while running: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if not agree:
        for run in (ours, cli, nmap):
            print(f"  {run.tool}: {run.open_ports}")
        print(f"  lab: {expected}")
        sys.exit(1)


if __name__ == "__main__":
    main()

"""Host sweep of the lab's sparse /22 (large mode, about 10 % alive): midprobe against ``nmap -sn -n``.

Brings up a small lab in large mode, sweeps 198.18.4.0/22 from the scanner namespace with midprobe's
HostSweep (ICMP behind the lab router; also the TCP-connect fallback, for reference) and with
``nmap -sn -n`` in the same namespace, then prints the times, the ratio and whether the alive sets
are identical (and the lab's own list of alive addresses agrees).
Usage: .venv/bin/python bench/bench_sweep.py [--skip-tcp]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from defusedxml import ElementTree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from headline import headline  # noqa: E402

from midprobe.probes.base import ProbeContext  # noqa: E402
from midprobe.probes.safety import TargetPolicy  # noqa: E402
from midprobe.probes.sweep.host_sweep import PROBE, SweepResult  # noqa: E402
from midprobe.runner.lab import Lab, NamespaceThread  # noqa: E402

TINY_PROFILE = ROOT / "fixtures" / "lab" / "tiny.toml"


@dataclass(frozen=True)
class Run:
    tool: str
    seconds: float
    alive: frozenset[str]


def _midprobe(thread: NamespaceThread, network: str, label: str, **parameters: str) -> Run:
    params = PROBE.parse_params(network, parameters)
    context = ProbeContext(policy=TargetPolicy.lab())
    started = time.perf_counter()
    result: SweepResult = thread.run_async(lambda: PROBE.run(params, context))
    seconds = time.perf_counter() - started
    if not result.complete:
        print(f"warning: {label} stopped at its deadline with {result.unchecked} addresses unchecked")
    return Run(label, seconds, frozenset(host.address for host in result.alive))


def _nmap(lab: Lab, network: str) -> Run:
    started = time.perf_counter()
    done = lab.run(["nmap", "-sn", "-n", "-oX", "-", network], timeout=600)
    seconds = time.perf_counter() - started
    root = ElementTree.fromstring(done.stdout)
    alive = {
        address.get("addr", "")
        for host in root.iter("host")
        if (status := host.find("status")) is not None and status.get("state") == "up"
        for address in host.iter("address")
        if address.get("addrtype") == "ipv4"
    }
    return Run("nmap -sn -n", seconds, frozenset(alive))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-tcp", action="store_true", help="leave out the TCP-connect fallback run")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_sweep: the lab needs root")
    if shutil.which("nmap") is None:
        sys.exit("bench_sweep: nmap is not installed")

    with Lab.up(TINY_PROFILE, large=True) as lab:
        assert lab.large is not None
        network = lab.large.network
        expected = frozenset(lab.large.alive)
        with lab.namespace_thread() as thread:
            ours = _midprobe(thread, network, "midprobe HostSweep (ICMP)")
            tcp = (
                None
                if args.skip_tcp
                else _midprobe(thread, network, "midprobe HostSweep (tcp)", method="tcp")
            )
        nmap = _nmap(lab, network)

    print(f"sweep of {network} (1024 addresses, {len(expected)} alive), lab scanner namespace")
    print(f"{'tool':<30} {'seconds':>8} {'alive':>6} {'vs midprobe':>12}")
    for run in (ours, nmap, *([tcp] if tcp else [])):
        print(f"{run.tool:<30} {run.seconds:8.2f} {len(run.alive):6d} {run.seconds / ours.seconds:12.2f}")
    print(f"ratio nmap / midprobe: {nmap.seconds / ours.seconds:.1f}x")
    identical = ours.alive == nmap.alive
    print(f"alive sets identical (midprobe vs nmap): {'yes' if identical else 'NO'}")
    if not identical:
        print(f"  only midprobe: {sorted(ours.alive - nmap.alive)[:10]}")
        print(f"  only nmap:     {sorted(nmap.alive - ours.alive)[:10]}")
    print(f"midprobe matches the lab's alive list: {'yes' if ours.alive == expected else 'NO'}")
    if tcp is not None:
        print(f"TCP-connect fallback matches too: {'yes' if tcp.alive == expected else 'NO'}")
    headline(
        f"host sweep of a /22, {len(expected)} alive",
        f"{ours.seconds:.2f} s",
        f"`nmap -sn`: {nmap.seconds:.2f} s",
        nmap.seconds / ours.seconds,
        target=1.5,
        same_results=identical,
    )
    print(f"load average while running: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if not identical or ours.alive != expected:
        sys.exit(1)


if __name__ == "__main__":
    main()

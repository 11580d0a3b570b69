"""10,000 DNS lookups against dnsmasq: midprobe against a plain dnspython loop and adnshost.

Runs in a private network namespace (dnsmasq on 127.0.0.53 with 10,000 host records, see
tests/lab/dns_support.py); prints times, rates, ratios and the datagrams the kernel dropped.
Usage: .venv/bin/python bench/bench_dns.py [--count N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.asyncresolver
import dns.exception
import dns.resolver

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from headline import headline  # noqa: E402

from midprobe.probes.base import ProbeContext  # noqa: E402
from midprobe.probes.dns.lookup import DNSLookupProbe, LookupResult  # noqa: E402
from midprobe.probes.safety import TargetPolicy  # noqa: E402
from tests.lab.dns_support import PrivateDns, host_records, private_dns  # noqa: E402

ADNS_CHUNK = 250


@dataclass(frozen=True)
class Run:
    tool: str
    seconds: float
    cpu_seconds: float  # this process and its finished children (adnshost), user + system
    answered: int
    dropped: int  # UDP datagrams the namespace dropped for a full receive buffer


def measure(server: PrivateDns, tool: str, work: Callable[[], int]) -> Run:
    before = server.udp_receive_errors()
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    answered = work()
    seconds = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu_before
    return Run(tool, seconds, cpu, answered, server.udp_receive_errors() - before)


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def midprobe_probe(server: PrivateDns, names: Sequence[str]) -> int:
    probe = DNSLookupProbe()
    params = probe.parse_params(
        "", {"names": " ".join(names), "record_types": "A", "dns_servers": server.server}
    )
    context = ProbeContext(policy=TargetPolicy.lab())
    result: LookupResult = server.thread.run_async(lambda: probe.run(params, context))
    probe.encode_results(result)  # the ECC payload is part of the job
    return sum(1 for lookup in result.lookups if lookup.status == "ok")


def dnspython_sequential(server: PrivateDns, names: Sequence[str]) -> int:
    def loop() -> int:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [server.server]
        resolver.lifetime = 5.0
        answered = 0
        for name in names:
            try:
                resolver.resolve(name, "A")
            except dns.exception.DNSException:
                continue
            answered += 1
        return answered

    return server.thread.call(loop)


def dnspython_async_semaphore(server: PrivateDns, names: Sequence[str], concurrency: int = 256) -> int:
    """What a straightforward async version does: asyncresolver calls under a semaphore."""

    async def gather() -> int:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [server.server]
        resolver.lifetime = 5.0
        limit = asyncio.Semaphore(concurrency)

        async def one(name: str) -> bool:
            async with limit:
                try:
                    await resolver.resolve(name, "A")
                except dns.exception.DNSException:
                    return False
                return True

        return sum(await asyncio.gather(*(one(name) for name in names)))

    return server.thread.run_async(gather)


def adnshost(server: PrivateDns, names: Sequence[str], chunk: int | None) -> int:
    """adnshost reading names on stdin (-f), answers in any order (-a); ``chunk`` names per process."""
    argv = ["ip", "netns", "exec", server.namespace, "adnshost", "-a", "-f", "-t", "a"]
    argv += ["--config", f"nameserver {server.server}"]
    answered = 0
    size = chunk or len(names)
    for start in range(0, len(names), size):
        text = "".join(f"{name}\n" for name in names[start : start + size])
        done = subprocess.run(argv, input=text, capture_output=True, text=True, timeout=300, check=False)
        answered += sum(1 for line in done.stdout.splitlines() if line.split()[2:3] == ["ok"])
    return answered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="names to look up (default 10000)")
    count = parser.parse_args().count
    records = host_records(count)
    names = [name for name, _ in records]
    runs: list[Run] = []
    with private_dns(records) as server:
        midprobe_probe(server, names[:10])  # warm-up: imports, first socket
        runs.append(measure(server, "midprobe DNSLookupProbe", lambda: midprobe_probe(server, names)))
        runs.append(
            measure(server, "dnspython, sequential loop", lambda: dnspython_sequential(server, names))
        )
        runs.append(
            measure(
                server,
                "dnspython asyncresolver + semaphore",
                lambda: dnspython_async_semaphore(server, names),
            )
        )
        if shutil.which("adnshost"):
            runs.append(measure(server, "adnshost -a -f, all names", lambda: adnshost(server, names, None)))
            runs.append(
                measure(
                    server,
                    f"adnshost -a -f, {ADNS_CHUNK} per process",
                    lambda: adnshost(server, names, ADNS_CHUNK),
                )
            )
        else:
            print("adnshost not found (Debian package adns-tools): skipped")
    print(f"{count} A lookups against dnsmasq (127.0.0.53, private namespace, loopback)")
    reference = runs[0].seconds
    header = f"{'tool':<40} {'seconds':>8} {'cpu s':>6} {'lookups/s':>10} {'answered':>9} {'dropped':>8}"
    print(f"{header} {'vs midprobe':>12}")
    for run in runs:
        ratio = run.seconds / reference
        print(
            f"{run.tool:<40} {run.seconds:>8.2f} {run.cpu_seconds:>6.2f} {count / run.seconds:>10.0f} "
            f"{run.answered:>9} {run.dropped:>8} {ratio:>11.2f}x"
        )
    print("vs midprobe: that tool's time divided by midprobe's (above 1: midprobe is faster)")
    complete = all(run.answered == count for run in runs)
    sequential = runs[1]
    headline(
        f"{count:,} DNS lookups",
        f"{reference:.2f} s",
        f"sequential dnspython: {sequential.seconds:.2f} s",
        sequential.seconds / reference,
        target=8.0,
        same_results=complete,
    )
    adns = [run for run in runs if run.tool.startswith("adnshost")]
    if adns:
        fastest = min(adns, key=lambda run: run.seconds)
        headline(
            f"{count:,} DNS lookups vs adns",
            f"{reference:.2f} s",
            f"`adnshost` ({fastest.tool.removeprefix('adnshost -a -f, ')}): {fastest.seconds:.2f} s",
            fastest.seconds / reference,
            target=1.5,
            same_results=complete,
        )
    print(f"load average while running: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()

"""SNMP walks on the lab: midprobe's client against net-snmp's snmpbulkwalk.

1. A full walk (from .1) of one lab snmpd (switch1): midprobe v2c vs ``snmpbulkwalk -v2c -Cr50``
   (target: midprobe at least 0.5x net-snmp's speed).
2. A full walk of 16 lab agents: midprobe, all at once in one event loop, vs net-snmp run
   2-wide (two snmpbulkwalk processes at a time) (target: at least 1.0x).
3. The same single walk over SNMPv3 authPriv (SHA/AES, the native USM session) vs
   ``snmpbulkwalk -v3`` (target: at least 0.8x).
4. Then the 16 agents over SNMPv3 authPriv, all at once, vs net-snmp 2-wide (target: at least 1.0x).
   Then, for information, the single SNMPv3 walk through pysnmp (the cross-check backend).

The varbind counts of the two sides must agree, outside the tables that follow the machine's
processes and connections (``VOLATILE``: they change between two walks seconds apart).
Both sides run inside the lab's scanner namespace; net-snmp runs with ``MIBS=`` (no MIB
loading, its fastest setting) and is started from a thread inside the namespace, so no
``ip netns exec`` is counted against it. Each measurement is the median of ``--rounds``
after one warm-up round. Ratios are net-snmp time / midprobe time (above 1: midprobe faster).
Usage: .venv/bin/python bench/bench_snmp.py [--rounds 3] [--agents 16] [--skip-v3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from headline import headline  # noqa: E402

from midprobe.probes.credentials import Secret  # noqa: E402
from midprobe.probes.safety import TargetPolicy  # noqa: E402
from midprobe.probes.snmp.auth import CommunityAuth, SnmpAuth, UsmAuth  # noqa: E402
from midprobe.probes.snmp.client import BulkSizeMemory, ClientOptions, SnmpClient  # noqa: E402
from midprobe.runner.lab import Lab, LabHost, NamespaceThread  # noqa: E402

#: Everything an agent serves, as net-snmp's walk of ``.1`` reads it: iso.org (1.3) and iso.std
#: (1.0: IEEE 802.1AB's LLDP-MIB, which the lab's switch1 serves). A walk needs a two-arc root.
EVERYTHING = ((1, 0), (1, 3))
END_OF_MIB = "No more variables left in this MIB View"
#: Tables that follow the machine's processes, connections and neighbours (hrSWRun, hrSWRunPerf, TCP
#: and UDP connection and listener tables, the ARP tables, LLDP's remote systems and the remote data
#: of its 802.3, 802.1 and LLDP-MED extensions: lldpd learns the lab's neighbours in the first minutes,
#: so a walk right after the lab came up reads fewer rows than one a few seconds later;
#: hrProcessorLoad and UCD's systemStats, which snmpd serves only once a minute of CPU samples is
#: in): they change between two walks taken seconds apart, so the varbind counts compared exclude
#: them (the walk's time still includes them).
VOLATILE = (
    (1, 3, 6, 1, 2, 1, 25, 4), (1, 3, 6, 1, 2, 1, 25, 5), (1, 3, 6, 1, 2, 1, 6, 13), (1, 3, 6, 1, 2, 1, 6, 19),
    (1, 3, 6, 1, 2, 1, 6, 20), (1, 3, 6, 1, 2, 1, 7, 5), (1, 3, 6, 1, 2, 1, 7, 7), (1, 3, 6, 1, 2, 1, 4, 22),
    (1, 3, 6, 1, 2, 1, 4, 35), (1, 0, 8802, 1, 1, 2, 1, 4),
    (1, 0, 8802, 1, 1, 2, 1, 5, 4623, 1, 3), (1, 0, 8802, 1, 1, 2, 1, 5, 32962, 1, 3),
    (1, 0, 8802, 1, 1, 2, 1, 5, 4795, 1, 3),
    (1, 3, 6, 1, 2, 1, 25, 3, 3), (1, 3, 6, 1, 4, 1, 2021, 11),
)  # fmt: skip
OPTIONS = ClientOptions(timeout=2.0, retries=1, max_varbinds=2_000_000)
TARGETS = {"single": 0.5, "agents": 1.0, "v3 single": 0.8, "v3 agents": 1.0}
PYSNMP = ClientOptions(timeout=2.0, retries=1, max_varbinds=2_000_000, backend="pysnmp")


@dataclass(frozen=True)
class Measure:
    seconds: float
    cpu_seconds: float
    varbinds: int


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(work: Callable[[], int]) -> Measure:
    cpu = _cpu()
    started = time.perf_counter()
    varbinds = work()
    return Measure(time.perf_counter() - started, _cpu() - cpu, varbinds)


def median(work: Callable[[], int], rounds: int) -> Measure:
    work()  # warm-up: the agent's caches, our learnt bulk size, net-snmp's page cache
    runs = [timed(work) for _ in range(rounds)]
    return Measure(
        statistics.median(run.seconds for run in runs),
        statistics.median(run.cpu_seconds for run in runs),
        runs[-1].varbinds,
    )


# --- midprobe -----------------------------------------------------------------------------------


async def _walk_one(address: str, auth: SnmpAuth, memory: BulkSizeMemory, options: ClientOptions) -> int:
    async with SnmpClient(address, auth, options=options, policy=TargetPolicy.lab(), memory=memory) as client:
        count = 0
        for root in EVERYTHING:
            (found,) = await client.walk_many([root])  # walk() would GET a root without a subtree
            if not found.complete:
                raise RuntimeError(f"walk of {address} stopped: {found.stopped}")
            count += sum(not _volatile(oid) for oid, _ in found.varbinds)
        return count


def _volatile(oid: tuple[int, ...]) -> bool:
    return any(oid[: len(prefix)] == prefix for prefix in VOLATILE)


def midprobe_walks(
    thread: NamespaceThread,
    hosts: Sequence[LabHost],
    auth: SnmpAuth,
    memory: BulkSizeMemory,
    options: ClientOptions = OPTIONS,
) -> int:
    async def all_at_once() -> int:
        counts = await asyncio.gather(*(_walk_one(host.address, auth, memory, options) for host in hosts))
        return sum(counts)

    return thread.run_async(all_at_once)


# --- net-snmp -----------------------------------------------------------------------------------


def net_snmp_walk(thread: NamespaceThread, argv: Sequence[str], env: dict[str, str]) -> int:
    # Started from the namespace thread: the child inherits its network namespace.
    done = thread.call(
        lambda: subprocess.run(list(argv), capture_output=True, text=True, timeout=300, env=env, check=True)
    )
    # The walk's last line is the end-of-MIB-view marker, printed with an OID but no value.
    return sum(
        1
        for line in done.stdout.splitlines()
        if line.startswith(".") and END_OF_MIB not in line and not _volatile(_line_oid(line))
    )


def _line_oid(line: str) -> tuple[int, ...]:
    """The OID a ``-On`` output line starts with (``()`` for a value's continuation line)."""
    arcs = line[1:].split(" ", 1)[0].split(".")
    return tuple(int(arc) for arc in arcs) if all(arc.isdigit() for arc in arcs) else ()


def net_snmp_walks(
    thread: NamespaceThread, argvs: Sequence[Sequence[str]], env: dict[str, str], width: int
) -> int:
    with ThreadPoolExecutor(max_workers=width) as pool:
        return sum(pool.map(lambda argv: net_snmp_walk(thread, argv, env), argvs))


# --- the benchmark ------------------------------------------------------------------------------


#: Rows whose two walks disagreed on the number of varbinds (the run then exits 1).
DISAGREEMENTS: list[str] = []


def _row(label: str, ours: Measure, theirs: Measure, target: float | None) -> str:
    if ours.varbinds != theirs.varbinds:
        DISAGREEMENTS.append(label)
    ratio = theirs.seconds / ours.seconds
    if target is not None:  # the rows with a goal are the README's
        wide = "" if "one agent" in label else ", 2-wide"
        headline(
            f"SNMP {label}",
            f"{ours.seconds:.3f} s",
            f"`snmpbulkwalk -Cr50`{wide}: {theirs.seconds:.3f} s",
            ratio,
            target=target,
            same_results=ours.varbinds == theirs.varbinds,
        )
    verdict = (
        ""
        if target is None
        else ("  (target >= {:.1f}x: {})".format(target, "met" if ratio >= target else "MISSED"))
    )
    return (
        f"{label:<34} midprobe {ours.seconds:7.3f} s ({ours.varbinds:>7} varbinds, cpu {ours.cpu_seconds:6.2f} s)"
        f" | net-snmp {theirs.seconds:7.3f} s ({theirs.varbinds:>7} varbinds, cpu {theirs.cpu_seconds:6.2f} s)"
        f" | ratio {ratio:5.2f}x{verdict}"
        + ("" if ours.varbinds == theirs.varbinds else "  VARBIND COUNTS DIFFER")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--agents", type=int, default=16)
    parser.add_argument("--skip-v3", action="store_true", help="leave out the SNMPv3 comparisons")
    args = parser.parse_args()
    tools = Path(tempfile.mkdtemp(prefix="mpbench-snmp-"))
    env = {**os.environ, "MIBS": "", "MIBDIRS": "/nonexistent", "SNMP_PERSISTENT_DIR": str(tools)}
    try:
        status = _bench(args, env)
        if DISAGREEMENTS:
            print(f"walks disagreed on the varbinds they returned: {', '.join(DISAGREEMENTS)}")
            return 1
        return status
    finally:
        shutil.rmtree(tools, ignore_errors=True)


def _bench(args: argparse.Namespace, env: dict[str, str]) -> int:
    with Lab.up(hosts=max(0, args.agents - 3)) as lab, lab.namespace_thread() as thread:
        agents = lab.hosts_with("snmp")[: args.agents]
        if len(agents) < args.agents:
            raise SystemExit(f"the lab has {len(agents)} SNMP agents, {args.agents} wanted")
        c = lab.credentials
        community = CommunityAuth(Secret(c.snmp_community))
        switch = lab.host("switch1")
        memory = BulkSizeMemory()

        def net_snmp_argv(host: LabHost) -> list[str]:
            return ["snmpbulkwalk", "-v2c", "-Cr50", "-c", c.snmp_community, "-On", "-t", "2", "-r", "1",
                    host.address, ".1"]  # fmt: skip

        print(
            f"SNMP walks, {args.rounds} rounds (median) after a warm-up; lab {lab.prefix}, {len(agents)} agents"
        )
        ours = median(lambda: midprobe_walks(thread, [switch], community, memory), args.rounds)
        theirs = median(lambda: net_snmp_walk(thread, net_snmp_argv(switch), env), args.rounds)
        print(_row("full walk, one agent (v2c)", ours, theirs, TARGETS["single"]))
        print(f"{'':<34} learnt bulk size for {switch.address}: {memory.get(switch.address)} varbinds")

        ours = median(lambda: midprobe_walks(thread, agents, community, memory), args.rounds)
        theirs = median(
            lambda: net_snmp_walks(thread, [net_snmp_argv(h) for h in agents], env, 2), args.rounds
        )
        print(_row(f"full walk, {len(agents)} agents (v2c)", ours, theirs, TARGETS["agents"]))

        if not args.skip_v3:
            v3 = UsmAuth(
                c.snmpv3_user,
                c.snmpv3_auth_protocol,
                Secret(c.snmpv3_auth_key),
                c.snmpv3_priv_protocol,
                Secret(c.snmpv3_priv_key),
            )

            def net_snmp_v3_argv(host: LabHost) -> list[str]:
                return ["snmpbulkwalk", "-v3", "-l", "authPriv", "-u", c.snmpv3_user, "-a", c.snmpv3_auth_protocol,
                        "-A", c.snmpv3_auth_key, "-x", c.snmpv3_priv_protocol, "-X", c.snmpv3_priv_key,
                        "-Cr50", "-On", "-t", "2", "-r", "1", host.address, ".1"]  # fmt: skip

            v3_memory = BulkSizeMemory()
            label = f"full walk, one agent (v3 {c.snmpv3_auth_protocol}/{c.snmpv3_priv_protocol})"
            ours = median(lambda: midprobe_walks(thread, [switch], v3, v3_memory), args.rounds)
            single = median(lambda: net_snmp_walk(thread, net_snmp_v3_argv(switch), env), args.rounds)
            print(_row(label, ours, single, TARGETS["v3 single"]))
            # Right after net-snmp's walk of the same agent: its tables change while the lab runs.
            reference = median(
                lambda: midprobe_walks(thread, [switch], v3, BulkSizeMemory(), PYSNMP), args.rounds
            )
            print(_row("full walk, one agent (v3, pysnmp)", reference, single, None))

            ours = median(lambda: midprobe_walks(thread, agents, v3, v3_memory), args.rounds)
            theirs = median(
                lambda: net_snmp_walks(thread, [net_snmp_v3_argv(h) for h in agents], env, 2), args.rounds
            )
            print(_row(f"full walk, {len(agents)} agents (v3 authPriv)", ours, theirs, TARGETS["v3 agents"]))

    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""ECC queue throughput: records per second through ``midprobe agent --once`` with a no-op topic.

HeartbeatProbe outputs (no network) are enqueued, then 1 agent drains them from a SQLite
file, and 1, 2 and 4 agents (separate processes, as in production) from a private
PostgreSQL (tests/support/postgres.py). The time runs from starting the agents until the
last one exits, so it includes claiming, running, writing results and start-up. Every
output must be answered exactly once, or the benchmark fails (exit 1).
Each run also prints the CPU time per record of the agents and of PostgreSQL (its backends):
records/s can be at most cores / (CPU seconds per record), so four agents scale by 3.5x on a
machine with enough cores only; on fewer the line says the 4-agent run is CPU-bound.
Each run's line also gives the 1-minute load average (the machine is shared; wall time suffers
from other work, CPU per record much less). Targets: SQLite >= 3,000 rec/s; PostgreSQL >= 1,500 rec/s with one agent, four agents
>= 3.5x one. Usage: .venv/bin/python bench/bench_queue.py [--count N] [--no-postgres]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from headline import headline  # noqa: E402
from queue_agents import (  # noqa: E402
    agent_argv,
    check_answered,
    children_cpu_seconds,
    compile_modules,
    enqueue,
    run_agents,
    tree_cpu_seconds,
)

from midprobe.runner.queue.url import sqlite_url  # noqa: E402
from tests.support.postgres import PostgresUnavailable, PrivatePostgres  # noqa: E402

SQLITE_TARGET = 3000.0
POSTGRES_TARGET = 1500.0
SCALING_TARGET = 3.5
#: The cores this process may run on (the agents and PostgreSQL share them).
CORES = len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class Run:
    backend: str
    agents: int
    records: int
    seconds: float
    #: CPU seconds (user + system) of the agents, and of the database server (None: SQLite, in the agents).
    agent_cpu: float
    server_cpu: float | None = None
    #: The 1-minute load average as the run ended (the machine is shared: a high one slows wall time).
    load: float = 0.0

    @property
    def rate(self) -> float:
        return self.records / self.seconds

    @property
    def cpu_per_record(self) -> float:
        """CPU seconds per record, agents and server together."""
        return (self.agent_cpu + (self.server_cpu or 0.0)) / self.records

    @property
    def busy_cores(self) -> float:
        """Cores kept busy on average during the run."""
        return (self.agent_cpu + (self.server_cpu or 0.0)) / self.seconds

    def cpu_line(self) -> str:
        server = "" if self.server_cpu is None else f" + {self.server_cpu / self.records * 1e6:,.0f} server"
        return (
            f"  CPU per record: {self.agent_cpu / self.records * 1e6:,.0f} us agents{server}"
            f" = {self.cpu_per_record * 1e6:,.0f} us; {self.busy_cores:.2f} of {CORES} cores busy;"
            f" CPU-bound ceiling {CORES / self.cpu_per_record:,.0f} rec/s; load average {self.load:.2f}"
        )


def drain(url: str, backend: str, agents: int, count: int, server_pid: int | None = None) -> Run:
    """Enqueue ``count`` no-op outputs, run ``agents`` agents with --once, check every one answered once.

    ``server_pid``: the database server's, whose CPU time (its backends') the run counts too.
    """
    outputs = enqueue(url, agents, count)
    what = f"bench_queue: {backend} x{agents}"
    agent_cpu = children_cpu_seconds()
    server_cpu = tree_cpu_seconds(server_pid) if server_pid is not None else 0.0
    seconds = run_agents([agent_argv(index, url) for index in range(agents)], what)
    agent_cpu = children_cpu_seconds() - agent_cpu
    server = tree_cpu_seconds(server_pid) - server_cpu if server_pid is not None else None
    check_answered(url, outputs, what)
    return Run(backend, agents, count, seconds, agent_cpu, server, os.getloadavg()[0])


def startup_cpu(url: str) -> float:
    """CPU seconds of one agent's start-up and stop: ``--once`` on an empty queue."""
    before = children_cpu_seconds()
    run_agents([agent_argv(0, url)], "bench_queue: start-up")
    return children_cpu_seconds() - before


def report(run: Run, target: float | None) -> bool:
    verdict = ""
    if target is not None:
        verdict = f"  target >= {target:,.0f}: {'met' if run.rate >= target else 'NOT met'}"
    print(
        f"{run.backend:<10} {run.agents} agent(s): {run.records} records in {run.seconds:6.2f} s "
        f"= {run.rate:7,.0f} rec/s{verdict}",
        flush=True,
    )
    print(run.cpu_line(), flush=True)
    if target is not None:  # every output was answered exactly once, or drain() has exited
        headline(
            f"ECC queue, {run.backend}, {run.agents} agent",
            f"{run.rate:,.0f} records/s",
            f"goal: {target:,.0f} records/s",
            run.rate / target,
            target=1.0,
            same_results=True,
        )
    return target is None or run.rate >= target


def scaling_bound(one: Run, four: Run) -> str:
    """Whether the machine's cores allow the scaling target: 3.5x one agent's rate at four's CPU per record."""
    needed = SCALING_TARGET * one.rate * four.cpu_per_record
    # The CPU per record (agents and server) at which this machine's cores carry 3.5x one agent's rate.
    affordable = CORES / (SCALING_TARGET * one.rate) * 1e6
    if needed <= CORES:
        return (
            f"  {SCALING_TARGET}x one agent needs {needed:.2f} of {CORES} cores at 4 agents' CPU per record"
            f" (affordable: {affordable:,.0f} us a record)"
        )
    return (
        f"  CPU-bound: {SCALING_TARGET}x one agent ({SCALING_TARGET * one.rate:,.0f} rec/s) needs"
        f" {needed:.2f} cores at 4 agents' {four.cpu_per_record * 1e6:,.0f} us CPU per record;"
        f" this machine has {CORES} (at most {CORES / four.cpu_per_record:,.0f} rec/s"
        f" = {CORES / four.cpu_per_record / one.rate:.2f}x one agent); the goal needs at most"
        f" {affordable:,.0f} us CPU a record (agents + server) on {CORES} cores"
    )


def scaling_limit(one: Run, four: Run) -> str:
    """The same bound without wall time (so without the machine's load): one agent, one process, runs at
    most 1 / (its own CPU per record); 3.5x that on ``CORES`` cores needs four agents' CPU per
    record (agents and server) at most ``CORES`` / 3.5 of one agent's own."""
    own = one.agent_cpu / one.records
    allowed = CORES / SCALING_TARGET * own
    possible = "possible" if four.cpu_per_record <= allowed else "impossible"
    return (
        f"  load-free bound: one agent's own {own * 1e6:,.0f} us a record caps it at {1 / own:,.0f} rec/s;"
        f" {SCALING_TARGET}x that needs <= {allowed * 1e6:,.0f} us a record at 4 agents on {CORES} cores,"
        f" measured {four.cpu_per_record * 1e6:,.0f} us: {possible} here"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=4000, help="outputs per run [4000]")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    compile_modules()
    met: list[bool] = []
    with tempfile.TemporaryDirectory(prefix="bench-queue-") as workdir:
        startup = min(startup_cpu(sqlite_url(Path(workdir) / "empty.db")) for _ in range(3))
        print(
            f"agent start-up and stop (--once, empty queue): {startup * 1e3:,.0f} ms CPU"
            f" = {startup / args.count * 1e6:,.0f} us a record per agent at {args.count} records",
            flush=True,
        )
        sqlite_run = drain(sqlite_url(Path(workdir) / "ecc.db"), "sqlite", 1, args.count)
        met.append(report(sqlite_run, SQLITE_TARGET))
    if args.no_postgres:
        return
    server = PrivatePostgres()
    try:
        server.start()
    except PostgresUnavailable as error:
        print(f"postgresql: skipped ({error})")
        return
    try:
        runs = {}
        for agents in (1, 2, 4):
            url = server.create_database()
            runs[agents] = drain(url, "postgresql", agents, args.count, server.pid)
            target = POSTGRES_TARGET if agents == 1 else None
            if not report(runs[agents], target) or target is not None:
                met.append(runs[agents].rate >= (target or 0.0))
        scaling = runs[4].rate / runs[1].rate
        print(
            f"postgresql 4 agents / 1 agent: {scaling:.2f}x  target >= {SCALING_TARGET}x: "
            f"{'met' if scaling >= SCALING_TARGET else 'NOT met'}"
        )
        print(scaling_bound(runs[1], runs[4]))
        print(scaling_limit(runs[1], runs[4]))
        headline(
            "ECC queue, postgresql, 4 agents",
            f"{runs[4].rate:,.0f} records/s",
            f"1 agent: {runs[1].rate:,.0f} records/s",
            scaling,
            target=SCALING_TARGET,
            same_results=True,
        )
        met.append(scaling >= SCALING_TARGET)
    finally:
        server.stop()
    print(f"{sum(met)} of {len(met)} targets met")


if __name__ == "__main__":
    main()

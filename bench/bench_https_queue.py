"""ECC queue over HTTPS: 8 agents through ``midprobe instance serve`` on PostgreSQL vs the same 8 straight on it.

HeartbeatProbe outputs (a no-op topic, no network) are enqueued (16,000 unless --count), COUNT / 8 for each agent
``bench0`` .. ``bench7``; then 8 ``midprobe agent --once`` processes drain them, once straight
from a private PostgreSQL (tests/support/postgres.py) and once through one instance on another
database of the same server (the first one dropped before), each agent an ``https://`` client with its own user bound to its MID
(basic auth, the instance's CA pinned, a result spool). The time runs from starting the agents
until the last one exits (claiming, running, writing results, start-up). Every output must be
answered exactly once, or the benchmark fails (exit 1).
Goals: HTTPS within 2x of direct (ratio >= 0.5) and at least 1,000 records/s over HTTPS.
Usage: .venv/bin/python bench/bench_https_queue.py [--count N] [--agents N]   (it prints the load average too: compare ratios measured under the same load)
It prints CPU time per record too (agents, instance, PostgreSQL: user + system), the figure a
shared, loaded machine leaves comparable when wall time is not.
(MIDPROBE_BENCH_PROFILE=FILE: the instance runs under pyinstrument, its profile written to FILE;
MIDPROBE_BENCH_AGENT_PROFILE=FILE: so does the first agent over HTTPS)
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from headline import headline  # noqa: E402
from queue_agents import (  # noqa: E402
    RUNNER,
    agent_argv,
    check_answered,
    children_cpu_seconds,
    compile_modules,
    enqueue,
    run_agents,
    tree_cpu_seconds,
)

from midprobe.runner.instance.auth import open_users  # noqa: E402
from tests.support.postgres import PostgresUnavailable, PrivatePostgres  # noqa: E402

RATIO_TARGET = 0.5
RATE_TARGET = 1000.0
PASSWORD = "bench-https-password"  # noqa: S105  (a throwaway user of a throwaway database)
#: Set to a file name: the instance runs under pyinstrument, which writes its profile there.
PROFILE_ENV = "MIDPROBE_BENCH_PROFILE"
#: Set to a file name: the first agent over HTTPS runs under pyinstrument, which writes its profile there.
AGENT_PROFILE_ENV = "MIDPROBE_BENCH_AGENT_PROFILE"


@dataclass(frozen=True)
class Run:
    """One drain: its wall time and the CPU seconds (user + system) each side spent on it."""

    seconds: float
    agent_cpu: float
    database_cpu: float
    instance_cpu: float = 0.0

    def cpu_line(self, records: int) -> str:
        def us(cpu: float) -> str:
            return f"{cpu / records * 1e6:,.0f}"

        total = self.agent_cpu + self.database_cpu + self.instance_cpu
        instance = f" + {us(self.instance_cpu)} instance" if self.instance_cpu else ""
        return (
            f"  CPU per record: {us(self.agent_cpu)} us agents{instance} + {us(self.database_cpu)} PostgreSQL"
            f" = {us(total)} us; CPU-bound ceiling on {os.cpu_count()} cores:"
            f" {(os.cpu_count() or 1) * records / total:,.0f} records/s"
        )


def timed(argvs: list[list[str]], what: str, database_pid: int, env: dict[str, str] | None = None) -> Run:
    """``run_agents``, with the CPU the agents and the database server spent meanwhile."""
    agents, database = children_cpu_seconds(), tree_cpu_seconds(database_pid)
    seconds = run_agents(argvs, what, env)
    return Run(seconds, children_cpu_seconds() - agents, tree_cpu_seconds(database_pid) - database)


def direct(url: str, agents: int, count: int, database_pid: int) -> Run:
    outputs = enqueue(url, agents, count)
    run = timed([agent_argv(n, url) for n in range(agents)], "bench_https_queue: direct", database_pid)
    check_answered(url, outputs, "bench_https_queue: direct")
    return run


def over_https(url: str, agents: int, count: int, workdir: Path, database_pid: int) -> Run:
    with open_users(url) as users:
        for n in range(agents):
            users.add(f"bench{n}", PASSWORD, ("mid_server",), mids=(f"bench{n}",))
    outputs = enqueue(url, agents, count)
    profile = os.environ.get(PROFILE_ENV)
    runner = [sys.executable, "-m", "pyinstrument", "-r", "text", "-o", profile, "-m", "midprobe.runner"]
    argv = [*(runner if profile else RUNNER), "instance", "serve", "--queue", url, "--listen", "127.0.0.1:0"]
    argv += ["--tls-dir", str(workdir / "tls")]
    instance = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert instance.stdout is not None
        base, ca_line = instance.stdout.readline().strip(), instance.stdout.readline().strip()
        if not base.startswith("https://127.0.0.1:") or not ca_line.startswith("CA: "):
            instance.kill()
            sys.exit(f"bench_https_queue: the instance did not start: {instance.communicate()[1][-1000:]}")
        env = {**os.environ, "MIDPROBE_INSTANCE_PASSWORD": PASSWORD}
        ca = ca_line.removeprefix("CA: ")
        argvs = [
            agent_argv(n, base, "--user", f"bench{n}", "--ca", ca, "--spool", str(workdir / f"spool{n}"))
            for n in range(agents)
        ]
        agent_profile = os.environ.get(AGENT_PROFILE_ENV)
        if agent_profile:
            pyinstrument = [sys.executable, "-m", "pyinstrument", "-r", "text", "-o", agent_profile, "-m"]
            argvs[0] = [*pyinstrument, *argvs[0][len(RUNNER) - 1 :]]
        instance_cpu = tree_cpu_seconds(instance.pid)
        run = timed(argvs, "bench_https_queue: https", database_pid, env)
        instance_cpu = tree_cpu_seconds(instance.pid) - instance_cpu
    finally:
        instance.send_signal(signal.SIGTERM)
        instance.communicate(timeout=60)
    check_answered(url, outputs, "bench_https_queue: https")
    return Run(run.seconds, run.agent_cpu, run.database_cpu, instance_cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=16000, help="outputs per run [16000]")
    parser.add_argument("--agents", type=int, default=8, help="agent processes [8]")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    compile_modules()
    server = PrivatePostgres()
    try:
        server.start()
    except PostgresUnavailable as error:
        print(f"postgresql: skipped ({error})")
        return
    try:
        pid = server.pid
        assert pid is not None
        with tempfile.TemporaryDirectory(prefix="bench-https-") as workdir:
            plain = direct(server.create_database("direct"), args.agents, args.count, pid)
            # Gone before the HTTPS run, so the server does not vacuum its rows on that run's CPU.
            server.drop_database("direct")
            tls = over_https(server.create_database(), args.agents, args.count, Path(workdir), pid)
    finally:
        server.stop()
    straight, https = args.count / plain.seconds, args.count / tls.seconds
    ratio = https / straight
    print(f"direct on PostgreSQL, {args.agents} agents: {straight:8,.0f} records/s (wall)")
    print(plain.cpu_line(args.count))
    print(f"over HTTPS,           {args.agents} agents: {https:8,.0f} records/s (wall)")
    print(tls.cpu_line(args.count))
    print(
        f"HTTPS / direct: {ratio:.2f}  goal >= {RATIO_TARGET} (within 2x): {'met' if ratio >= RATIO_TARGET else 'NOT met'}"
    )
    print(f"HTTPS goal >= {RATE_TARGET:,.0f} records/s: {'met' if https >= RATE_TARGET else 'NOT met'}")
    # Both runs share the machine with whatever else runs: compare the ratio, measured under the same load.
    print(
        f"load average before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)"
    )
    headline(
        f"ECC queue over HTTPS, {args.agents} agents",
        f"{https:,.0f} records/s",
        f"direct on postgresql: {straight:,.0f} records/s",
        ratio,
        target=RATIO_TARGET,
        same_results=True,
    )
    headline(
        f"ECC queue over HTTPS, {args.agents} agents, absolute",
        f"{https:,.0f} records/s",
        f"goal: {RATE_TARGET:,.0f} records/s",
        https / RATE_TARGET,
        target=1.0,
        same_results=True,
    )


if __name__ == "__main__":
    main()

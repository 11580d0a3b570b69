"""A whole discovery of the large lab (/22, about 100 live hosts) with one agent and with two.

Brings up the lab in large mode, then runs ``midprobe discover run`` over the default lab's /24
and the large /22 twice: once with one agent, once with two (each its own process, both with
every range), each into a fresh SQLite queue. Prints wall time, devices per minute (devices that
answered Shazzam, each taken through classification), and checks that both runs built the same
CMDB (the same addresses with the same classes). The large network's hosts answer on TCP only
(no sshd or snmpd behind their ports), so most of the time is the classifiers' time-outs.
Then, where the time goes: a third run with one agent, the agent and ``discover run`` (the
orchestrator) each under pyinstrument (not timed: the profiler slows them); the top of both
profiles is printed (``--no-profile`` skips it).
Usage: .venv/bin/python bench/bench_discover.py [--no-profile]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from headline import headline  # noqa: E402

from midprobe.runner.cmdb import open_cmdb  # noqa: E402
from midprobe.runner.lab import Lab  # noqa: E402
from midprobe.runner.lab.credentials_file import lab_credentials_toml  # noqa: E402
from midprobe.runner.queue.url import open_queue, sqlite_url  # noqa: E402

MIDPROBE = [sys.executable, "-m", "midprobe.runner"]
#: Lines of each profile printed (pyinstrument's text report, slowest call paths first).
PROFILE_LINES = 45


def _midprobe(profile: Path | None) -> list[str]:
    """How to run midprobe: plainly, or under pyinstrument writing its text report to ``profile``."""
    if profile is None:
        return MIDPROBE
    return [sys.executable, "-m", "pyinstrument", "-r", "text", "-o", str(profile), "-m", "midprobe.runner"]


def _agent(
    lab: Lab, name: str, url: str, workdir: Path, profile: Path | None = None
) -> subprocess.Popen[str]:
    argv = ["ip", "netns", "exec", lab.scanner_namespace, *_midprobe(profile), "agent", "--name", name]
    argv += ["--queue", url]
    argv += ["--state", str(workdir / f"state-{name}")]
    argv += [
        "--lab",
        "--credentials",
        str(workdir / "creds.toml"),
        "--poll-idle",
        "0.5",
        "--poll-busy",
        "0.5",
    ]
    argv += ["--log-level", "error"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)


def _run(
    lab: Lab, agents: int, workdir: Path, large_network: str, *, profile: bool = False
) -> tuple[float, int, dict[str, str]]:
    """One discovery with ``agents`` agents into a fresh queue; with ``profile``, one agent and the
    orchestrator run under pyinstrument (``workdir/profile-agent.txt``, ``profile-discover.txt``)."""
    url = sqlite_url(workdir / f"ecc-{agents}{'-profiled' if profile else ''}.db")
    agent_profile = workdir / "profile-agent.txt" if profile else None
    with open_queue(url) as queue:
        processes = [_agent(lab, f"bench{index}", url, workdir, agent_profile) for index in range(agents)]
        try:
            deadline = time.monotonic() + 60
            while len(queue.list_agents()) < agents:
                if time.monotonic() > deadline:
                    sys.exit("bench_discover: the agents did not register")
                queue.wait_for_work("mid.server.nobody", 0.1)
            for index in range(agents):  # what `midprobe mid validate NAME` does
                queue.update_agent(f"bench{index}", validated=True)
            schedule = workdir / "schedule.toml"
            schedule.write_text(
                f'name = "bench"\nranges = ["{lab.network}", "{large_network}"]\ncredentials = "creds.toml"\n'
                'ports = "22,80,161,9100"\nbehaviour = ["ssh", "snmp"]\nbatch_size = 256\n',
                encoding="utf-8",
            )
            started = time.perf_counter()
            orchestrator = _midprobe(workdir / "profile-discover.txt" if profile else None)
            done = lab.run([*orchestrator, "discover", "run", str(schedule), "--queue", url], timeout=1200)
            seconds = time.perf_counter() - started
            status = json.loads(
                lab.run(
                    [*MIDPROBE, "discover", "status", done.stdout.split()[0], "--queue", url, "--json"]
                ).stdout
            )
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                process.wait(timeout=60)
    with open_cmdb(url) as cmdb:
        found = {ci.ip_address or "": ci.sys_class_name for ci in cmdb.list_cis()}
    answered = len({entry["device"] for entry in status["log"] if entry["message"].startswith("alive")})
    return seconds, answered, found


def _print_profiles(workdir: Path) -> None:
    for name, what in (("agent", "the agent"), ("discover", "`discover run` (the orchestrator)")):
        report = workdir / f"profile-{name}.txt"
        if not report.exists():
            print(f"profile of {what}: not written")
            continue
        lines = [line for line in report.read_text(encoding="utf-8").splitlines() if line.strip()]
        print(f"\nwhere the time goes, {what}, one agent (pyinstrument, top {PROFILE_LINES} lines):")
        print("\n".join(lines[:PROFILE_LINES]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-profile", action="store_true", help="skip the profiled third run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="midprobe-bench-") as tmp, Lab.up(large=True) as lab:
        workdir = Path(tmp)
        (workdir / "creds.toml").write_text(lab_credentials_toml(lab), encoding="utf-8")
        assert lab.large is not None
        print(f"lab: {lab.network} and {lab.large.network} ({len(lab.large.alive)} alive there)")
        one_seconds, one_hosts, one = _run(lab, 1, workdir, lab.large.network)
        two_seconds, two_hosts, two = _run(lab, 2, workdir, lab.large.network)
        if not args.no_profile:
            _run(lab, 1, workdir, lab.large.network, profile=True)
            _print_profiles(workdir)
        _report(one_seconds, one_hosts, one, two_seconds, two_hosts, two)


def _report(
    one_seconds: float,
    one_hosts: int,
    one: dict[str, str],
    two_seconds: float,
    two_hosts: int,
    two: dict[str, str],
) -> None:
    for agents, seconds, hosts, found in ((1, one_seconds, one_hosts, one), (2, two_seconds, two_hosts, two)):
        per_minute = hosts / seconds * 60 if seconds else 0.0
        print(
            f"discovery with {agents} agent{'s' if agents > 1 else ''}: {seconds:.2f} s, {hosts} devices answered, "
            f"{len(found)} classified into CIs, {per_minute:.0f} devices/min"
        )
    print(f"ratio (2 agents vs 1): {one_seconds / two_seconds:.2f}x")
    headline(
        f"discovery of the large lab ({two_hosts} devices), 2 agents",
        f"{two_seconds:.1f} s, {two_hosts / two_seconds * 60 if two_seconds else 0:.0f} devices/min",
        f"1 agent: {one_seconds:.1f} s",
        one_seconds / two_seconds,
        same_results=one == two,
    )
    if one != two:
        print(
            f"the CMDBs differ: only with one agent {sorted(set(one.items()) - set(two.items()))[:5]}, "
            f"only with two {sorted(set(two.items()) - set(one.items()))[:5]}"
        )
        sys.exit(1)
    print("same CMDB either way: yes")


if __name__ == "__main__":
    main()

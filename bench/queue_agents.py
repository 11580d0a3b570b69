"""What the ECC queue benchmarks share: no-op outputs enqueued, ``midprobe agent --once`` processes
started at once and timed until the last one exits, and every output checked answered exactly once.

Not a benchmark itself (``run_all.py`` runs ``bench_*.py`` only): ``bench_queue.py`` and
``bench_https_queue.py`` drain their queues through it.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from midprobe.runner.ecc.builders import new_output_record
from midprobe.runner.queue import open_queue

AGENT_TIMEOUT_SECONDS = 600
#: With ``PYTHONDONTWRITEBYTECODE`` unset: the modules are byte-compiled once (``compile_modules``),
#: as in an installed copy, not compiled anew by every agent as it starts.
RUNNER = ("env", "-u", "PYTHONDONTWRITEBYTECODE", sys.executable, "-m", "midprobe.runner")
ROOT = Path(__file__).resolve().parents[1]
#: The bench agents' key pairs (outside the working folder).
STATE_ROOT = Path(tempfile.gettempdir()) / "midprobe-bench-state"


def compile_modules() -> None:
    """Byte-compile midprobe's modules (``__pycache__``, as pip does when it installs), before the timed runs."""
    folders = [str(ROOT / name) for name in ("capabilities", "probes", "runner")]
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", *folders], check=True, stdout=subprocess.DEVNULL
    )


def enqueue(url: str, agents: int, count: int) -> list[str]:
    """``count`` HeartbeatProbe outputs (no network), addressed round-robin to ``bench0`` .. ``bench{agents-1}``.

    Addressed, not to ``mid.server.*``: work for every MID would be copied to each agent, not shared.
    """
    records = [new_output_record(agent=f"bench{n % agents}", topic="HeartbeatProbe") for n in range(count)]
    with open_queue(url) as queue:
        queue.set_setting("auto_validate", "true")  # the bench's agents are new MIDs run with --once
        queue.enqueue_many(records)
    return [record.sys_id for record in records]


def agent_argv(index: int, queue: str, *extra: str) -> list[str]:
    """``midprobe agent --once`` as agent ``bench{index}`` on ``queue``, its key pair under ``STATE_ROOT``."""
    return [
        *RUNNER,
        "agent",
        "--name",
        f"bench{index}",
        "--queue",
        queue,
        "--once",
        "--poll-busy",
        "0.05",
        "--log-level",
        "warning",
        "--state",
        str(STATE_ROOT / f"bench{index}"),
        *extra,
    ]


def children_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process's children that have exited and been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of process ``pid``, its live children and the children it has reaped (a
    PostgreSQL postmaster and its backends, the exited ones included), from ``/proc``."""
    ticks = os.sysconf("SC_CLK_TCK")

    def stat(of: int) -> list[str]:
        text = Path(f"/proc/{of}/stat").read_text()
        return text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": field 3 onwards

    fields = stat(pid)
    total = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(pid):
            try:
                child = stat(int(entry.name))
            except (OSError, ValueError):
                continue  # gone meanwhile
            if child[1] == str(pid):  # ppid
                total += int(child[11]) + int(child[12])
    return total / ticks


def run_agents(argvs: Sequence[Sequence[str]], what: str, env: Mapping[str, str] | None = None) -> float:
    """Start every agent at once; the seconds until the last one exited (exit 1 naming ``what`` if one failed)."""
    started = time.perf_counter()
    processes = [
        subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env) for argv in argvs
    ]
    failures = []
    for process in processes:
        _out, err = process.communicate(timeout=AGENT_TIMEOUT_SECONDS)
        if process.returncode != 0:
            failures.append(err.decode(errors="replace").strip().splitlines()[-1:])
    seconds = time.perf_counter() - started
    if failures:
        sys.exit(f"{what}: an agent failed: {failures}")
    return seconds


def check_answered(url: str, outputs: Sequence[str], what: str) -> None:
    """Exit 1 naming ``what`` unless each of ``outputs`` has exactly one HeartbeatProbe answer."""
    with open_queue(url) as queue:
        answers = queue.list(queue_side="input", topic="HeartbeatProbe", limit=len(outputs) * 2)
    if len(answers) != len(outputs) or {answer.response_to for answer in answers} != set(outputs):
        sys.exit(f"{what}: {len(answers)} answers for {len(outputs)} outputs")

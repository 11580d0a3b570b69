"""Agents on an ``https://`` queue: ``midprobe instance serve`` on a lab address, ``midprobe agent`` processes
talking to it from the lab, and the result spool carrying results across an instance killed mid-run.

Everything runs inside the lab's scanner namespace (the instance on 198.18.0.1, the agents beside it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from midprobe.runner.ecc.builders import new_output_record
from midprobe.runner.ecc.record import EccRecord
from midprobe.runner.instance.auth import open_users
from midprobe.runner.lab import Lab
from midprobe.runner.queue.url import open_queue, sqlite_url
from tests.lab.instance_support import serve_instance

pytestmark = pytest.mark.lab

PASSWORD = "lab-agent-password-5c1e"
RUNNER = [sys.executable, "-m", "midprobe.runner"]


def _in_lab(lab: Lab, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", lab.scanner_namespace, *argv]


def _agent(lab: Lab, name: str, base: str, ca: Path | None, spool: Path) -> subprocess.Popen[str]:
    argv = [*RUNNER, "agent", "--name", name, "--queue", base, "--user", "mid", "--once", "--lab"]
    argv += ["--poll-busy", "0.2", "--spool", str(spool)]
    argv += ["--ca", str(ca)] if ca is not None else []
    env = {**os.environ, "MIDPROBE_INSTANCE_PASSWORD": PASSWORD}
    return subprocess.Popen(
        _in_lab(lab, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    return process.communicate(timeout=60)[1]


def _results(url: str, outputs: list[EccRecord]) -> dict[str, list[EccRecord]]:
    with open_queue(url) as queue:
        return {o.sys_id: queue.list(queue_side="input", response_to=o.sys_id) for o in outputs}


@pytest.fixture
def instance_queue(tmp_path: Path) -> str:
    url = sqlite_url(tmp_path / "ecc.db")
    with open_users(url) as users:
        users.add("mid", PASSWORD, ("mid_server",))
    return url


def test_two_agents_run_heartbeats_and_shazzam_through_the_instance(
    lab: Lab, instance_queue: str, tmp_path: Path
) -> None:
    target = lab.host("linux1")
    outputs = [new_output_record(agent=f"mid{n}", topic="HeartbeatProbe") for n in (1, 2, 1, 2)]
    outputs += [
        new_output_record(
            agent=f"mid{n}", topic="Shazzam", source=target.address, parameters=[("ports", "22")]
        )
        for n in (1, 2)
    ]
    with open_queue(instance_queue) as queue:
        queue.enqueue_many(outputs)

    instance, base, ca = serve_instance(lab, instance_queue, "198.18.0.1:0")
    try:
        agents = [_agent(lab, f"mid{n}", base, ca, tmp_path / f"spool{n}") for n in (1, 2)]
        finished = [agent.communicate(timeout=100) for agent in agents]
        # Without the instance's CA the agent does not trust it, and says so in one line.
        untrusting = _agent(lab, "mid3", base, None, tmp_path / "spool3")
        _, untrusted = untrusting.communicate(timeout=100)
    finally:
        instance_errors = _stop(instance)

    for agent, (stdout, stderr) in zip(agents, finished, strict=True):
        assert agent.returncode == 0, stderr
        assert json.loads(stdout)["answered"] == 3
        assert PASSWORD not in stderr
    assert untrusting.returncode == 2
    assert untrusted.strip().endswith(
        "the instance's certificate is not trusted (give --ca with the instance's CA file)"
    )
    assert untrusted.count("\n") == 1
    assert PASSWORD not in instance_errors
    results = _results(instance_queue, outputs)
    assert all(len(found) == 1 for found in results.values()), results
    shazzam = [results[o.sys_id][0] for o in outputs if o.topic == "Shazzam"]
    assert all(not result.error_string and target.address in result.payload for result in shazzam)


@pytest.mark.timeout(300)
def test_the_spool_delivers_each_result_once_across_an_instance_killed_mid_run(
    lab: Lab, instance_queue: str, tmp_path: Path
) -> None:
    silent = lab.host("silent1")
    # A scan of a host that drops every packet runs for its whole connect wait: long enough to
    # kill the instance after the claim and before these results are sent.
    outputs = [
        new_output_record(
            agent="mid1",
            topic="Shazzam",
            source=silent.address,
            parameters=[("ports", "22,80"), ("connect_wait", "5000"), ("retries", "0")],
        )
        for _ in range(2)
    ]
    with open_queue(instance_queue) as queue:
        queue.enqueue_many(outputs)
    spool = tmp_path / "spool"

    instance, base, ca = serve_instance(lab, instance_queue, "198.18.0.1:0")
    agent = _agent(lab, "mid1", base, ca, spool)
    restarted: subprocess.Popen[str] | None = None
    try:
        assert agent.stderr is not None
        gave_up = 0
        lines: list[str] = []
        deadline = time.monotonic() + 200
        for line in agent.stderr:
            lines.append(line)
            event = json.loads(line).get("event", "") if line.startswith("{") else ""
            if event == "claimed" and instance.poll() is None:
                instance.send_signal(signal.SIGKILL)
                instance.communicate(timeout=30)
            if event == "could not write result":
                gave_up += 1
                if gave_up == 2:  # both scans ended with the instance gone: their results are spooled
                    break
            assert time.monotonic() < deadline, "".join(lines[-20:])
        assert sorted(path.suffix for path in spool.iterdir()) == [".json", ".json"]
        restarted, _, _ = serve_instance(lab, instance_queue, base.removeprefix("https://"))
        _stdout, stderr = agent.communicate(timeout=150)
    finally:
        if agent.poll() is None:
            agent.kill()
        if instance.poll() is None:
            instance.kill()
            instance.communicate(timeout=30)
        if restarted is not None:
            _stop(restarted)

    assert agent.returncode == 0, "".join(lines) + stderr
    assert PASSWORD not in "".join(lines) + stderr
    assert list(spool.iterdir()) == []
    results = _results(instance_queue, outputs)
    assert all(len(found) == 1 for found in results.values()), results
    with open_queue(instance_queue) as queue:
        states = [queue.get(o.sys_id) for o in outputs]
    assert all(record is not None and record.state in ("processed", "error") for record in states)

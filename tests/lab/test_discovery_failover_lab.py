"""A Failover cluster: the first member is stopped mid-discovery; the second finishes it, nothing lost or twice."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from midprobe.runner.cmdb import open_cmdb
from midprobe.runner.lab import Lab
from midprobe.runner.queue.url import open_queue, sqlite_url
from tests.lab.test_discovery_agents_lab import _start_agent
from tests.lab.test_discovery_lab import _credentials

pytestmark = pytest.mark.lab

CAPABILITIES = """
[[capability]]
name = "SSH"

[[mid_server]]
name = "first"
status = "Up"
validated = true
applications = ["Discovery"]
ip_ranges = ["198.18.0.0/24"]
capabilities = [{ name = "SSH" }]

[[mid_server]]
name = "second"
status = "Up"
validated = true
applications = ["Discovery"]
ip_ranges = ["198.18.0.0/24"]
capabilities = [{ name = "SSH" }]

[[cluster]]
name = "lab"
type = "Failover"
members = [{ name = "first", order = 1 }, { name = "second", order = 2 }]
"""


def _wait(condition: object, what: str, queue: object, rounds: int = 600) -> None:
    for _ in range(rounds):
        if condition():  # type: ignore[operator]
            return
        queue.wait_for_work("mid.server.nobody", 0.1)  # type: ignore[attr-defined]
    pytest.fail(f"timed out waiting for {what}")


def test_failover_moves_waiting_work_to_the_next_member(lab: Lab, tmp_path: Path) -> None:
    (tmp_path / "caps.toml").write_text(CAPABILITIES, encoding="utf-8")
    _credentials(lab, tmp_path / "creds.toml")
    url = sqlite_url(tmp_path / "ecc.db")
    schedule = tmp_path / "lab.toml"
    schedule.write_text(
        f'name = "failover"\nranges = ["{lab.network}"]\nports = "22,80,161,9100"\nmid = "cluster:lab"\n'
        'behaviour = ["ssh", "snmp"]\n',
        encoding="utf-8",
    )
    with open_queue(url) as queue:
        # No drain time: stopped, the first member releases what it holds at once.
        first = _start_agent(lab, "first", url, tmp_path, nmap=False, extra=("--drain", "0"))
        second = _start_agent(lab, "second", url, tmp_path, nmap=False)
        discovery: subprocess.Popen[str] | None = None
        try:
            _wait(lambda: queue.get_agent("first") and queue.get_agent("second"), "both agents", queue)
            for name in ("first", "second"):  # what `midprobe mid validate NAME` does
                queue.update_agent(name, validated=True)
            argv = ["ip", "netns", "exec", lab.scanner_namespace, sys.executable, "-m", "midprobe.runner"]
            argv += [
                "discover",
                "run",
                str(schedule),
                "--queue",
                url,
                "--capabilities",
                str(tmp_path / "caps.toml"),
            ]
            discovery = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

            def first_has_work() -> bool:
                return any(r.agent == "mid.server.first" for r in queue.list(queue_side="output", limit=100))

            _wait(first_has_work, "work for the first member", queue)
            first.send_signal(
                signal.SIGTERM
            )  # stopped mid-discovery: it releases what it holds and goes Down
            first.communicate(timeout=60)
            out, err = discovery.communicate(timeout=240)
            assert discovery.returncode == 0, err
            assert "Completed" in err
        finally:
            for process in (first, second, discovery):
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    process.communicate(timeout=60)
        status_id = out.split()[0]
        outputs = [
            r for r in queue.list(queue_side="output", limit=10_000) if r.agent_correlator == status_id
        ]
        inputs = [r for r in queue.list(queue_side="input", limit=10_000) if r.agent_correlator == status_id]
    assert {r.state for r in outputs} <= {"processed", "error"}  # nothing lost
    answers = Counter(r.response_to for r in inputs if r.topic != "queue.processing")
    assert set(answers) == {r.sys_id for r in outputs}
    assert set(answers.values()) == {1}  # nothing answered twice
    assert any(r.agent == "mid.server.second" for r in outputs)  # the second member finished it
    log = subprocess.run(
        [sys.executable, "-m", "midprobe.runner", "discover", "status", status_id, "--queue", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "moved from first (Down) to second (cluster lab)" in log
    with open_cmdb(url) as cmdb:
        classes = {ci.ip_address: ci.sys_class_name for ci in cmdb.list_cis()}
    assert classes[lab.host("linux1").address] == "cmdb_ci_linux_server"
    assert classes[lab.host("switch1").address] == "cmdb_ci_ip_switch"
    assert classes[lab.host("printer1").address] == "cmdb_ci_printer"

"""A discovery the instance runs: ``midprobe discover run --queue https://...`` against an instance on a lab
address, with two agents on other lab hosts that reach it only over HTTPS.

The instance is SIGKILLed while the scan is under way and started again: the agent's spool
delivers the result it could not send, the restarted instance resumes the discovery from its
status store, the ``discover run`` that follows it rides out the outage, and in the end every
output has exactly one result and the CMDB (read through the instance) holds each host once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from midprobe.runner.instance.auth import open_users
from midprobe.runner.lab import Lab
from midprobe.runner.queue.base import EccQueue
from midprobe.runner.queue.url import open_queue, sqlite_url
from tests.lab.instance_support import serve_instance
from tests.lab.test_discovery_lab import _credentials

pytestmark = pytest.mark.lab

RUNNER = [sys.executable, "-m", "midprobe.runner"]
PASSWORDS = {"east": "east-agent-pw-81c2", "west": "west-agent-pw-4d07", "operator": "operator-pw-e5a9"}
#: The hosts whose work only west may take (the rest of the lab, and the scan, are east's).
WEST_HOSTS = ("linux1", "switch1")


def _capabilities(lab: Lab) -> str:
    west = [lab.host(name).address for name in WEST_HOSTS]
    return f"""
[[capability]]
name = "SSH"
[[capability]]
name = "SNMP"

[[mid_server]]
name = "east"
status = "Up"
validated = true
applications = ["Discovery"]
ip_ranges = ["{lab.network}"]
excluded_ip_ranges = {json.dumps(west)}
capabilities = [{{ name = "SSH" }}, {{ name = "SNMP" }}]

[[mid_server]]
name = "west"
status = "Up"
validated = true
applications = ["Discovery"]
ip_ranges = {json.dumps(west)}
capabilities = [{{ name = "SSH" }}, {{ name = "SNMP" }}]
"""


def _wait(queue: EccQueue, what: str, done: object, deadline: float) -> None:
    """Until ``done()`` is true, waiting a tenth of a second on the queue between looks; fail at the deadline."""
    assert callable(done)
    while not done():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        queue.wait_for_work("mid.server.nobody", 0.1)


class Agents:
    """``east`` and ``west``, each in the namespace of a lab host of its own, on the instance's URL."""

    def __init__(self, lab: Lab, workdir: Path) -> None:
        self._lab = lab
        self._workdir = workdir
        self.processes: dict[str, subprocess.Popen[str]] = {}
        self.said: dict[str, str] = {}
        #: What each wrote on stdout (read by ``stop``).
        self.printed: dict[str, str] = {}

    def spool(self, name: str) -> Path:
        return self._workdir / f"spool-{name}"

    def start(self, base: str, ca: Path, *, own_credentials: bool = True, log_level: str = "warning") -> None:
        """Start both; ``own_credentials``: each is given the lab's credentials file of its own."""
        for name, host in (("east", "dns1"), ("west", "web1")):
            argv = ["ip", "netns", "exec", self._lab.host(host).namespace, *RUNNER, "agent", "--name", name]
            argv += [
                "--queue",
                base,
                "--user",
                name,
                "--ca",
                str(ca),
                "--lab",
                "--spool",
                str(self.spool(name)),
                "--state",
                str(self._workdir / "state" / name),
            ]
            argv += ["--capabilities", str(self._workdir / "caps.toml")]
            if own_credentials:
                argv += ["--credentials", str(self._workdir / "creds.toml")]
            argv += ["--poll-idle", "0.5", "--poll-busy", "0.5", "--log-level", log_level]
            env = {
                **os.environ,
                "MIDPROBE_INSTANCE_PASSWORD": PASSWORDS[name],
                "MIDPROBE_NMAP": str(self._workdir / "no-nmap-here"),
            }
            self.processes[name] = subprocess.Popen(
                argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )

    def stop(self) -> dict[str, str]:
        """Stop both (SIGTERM) and return what each wrote on stderr; again, the same answer."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in self.processes.items():
            if name not in self.said:
                out, err = process.communicate(timeout=60)
                self.printed[name] = out
                self.said[name] = err
        return self.said


def prepare_discovery(lab: Lab, tmp_path: Path, schedule_keys: str) -> tuple[Path, str]:
    """The capabilities, the lab's credentials file, a schedule of the lab (``schedule_keys`` added)
    and the users, in ``tmp_path``; returns the schedule's path and the queue's URL."""
    (tmp_path / "caps.toml").write_text(_capabilities(lab), encoding="utf-8")
    _credentials(lab, tmp_path / "creds.toml")
    schedule = tmp_path / "lab.toml"
    schedule.write_text(
        f'ranges = ["{lab.network}"]\ncredentials = "creds.toml"\n{schedule_keys}', encoding="utf-8"
    )
    url = sqlite_url(tmp_path / "ecc.db")
    with open_users(url) as users:
        for name in ("east", "west"):
            users.add(name, PASSWORDS[name], ("mid_server",))
        users.add("operator", PASSWORDS["operator"], ("discovery_admin",))
    return schedule, url


@pytest.fixture
def agents(lab: Lab, tmp_path: Path) -> Iterator[Agents]:
    running = Agents(lab, tmp_path)
    try:
        yield running
    finally:
        running.stop()


def _kill(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)  # closes its pipes too


@pytest.mark.timeout(420)
def test_a_discovery_the_instance_runs_survives_the_instance_killed_mid_scan(
    lab: Lab, tmp_path: Path, agents: Agents
) -> None:
    schedule, url = prepare_discovery(
        lab,
        tmp_path,
        'name = "through the instance"\nports = "22,80,161,443,9100"\nbehaviour = ["ssh", "snmp", "http"]\n'
        "rate = 400\n",  # the scan's 1,280 probes take a few seconds: the instance dies meanwhile
    )

    instance, base, ca = serve_instance(lab, url, "198.18.0.1:0")
    restarted: subprocess.Popen[str] | None = None
    operator_env = {**os.environ, "MIDPROBE_INSTANCE_PASSWORD": PASSWORDS["operator"]}
    as_operator = ["--queue", base, "--user", "operator", "--ca", str(ca)]
    discover: subprocess.Popen[str] | None = None
    logged = ""  # what the instance wrote on stderr, both runs
    try:
        agents.start(base, ca)
        deadline = time.monotonic() + 300
        with open_queue(url) as queue:
            _wait(queue, "both agents", lambda: all(queue.get_agent(n) for n in ("east", "west")), deadline)
            for name in ("east", "west"):  # as `midprobe mid validate` does: a new MID waits for it
                queue.update_agent(name, validated=True)
            argv = ["ip", "netns", "exec", lab.scanner_namespace, *RUNNER, "discover", "run", str(schedule)]
            discover = subprocess.Popen(
                [*argv, *as_operator, "--lab"],
                env=operator_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert discover.stdout is not None
            status_id = discover.stdout.readline().strip()
            assert len(status_id) == 32, discover.communicate(timeout=60)

            def scanning() -> bool:
                return any(
                    r.agent_correlator == status_id
                    for r in queue.list(queue_side="output", state="processing", topic="Shazzam", limit=10)
                )

            _wait(queue, "the scan to be claimed", scanning, deadline)
            instance.send_signal(signal.SIGKILL)  # mid-scan: its result has nowhere to go
            logged = instance.communicate(timeout=30)[1]
            spool = agents.spool("east")
            _wait(queue, "the scan's result in the spool", lambda: any(spool.glob("*.json")), deadline)
            restarted, _, _ = serve_instance(lab, url, base.removeprefix("https://"))

            _, followed = discover.communicate(timeout=300)
            assert discover.returncode == 0, followed
            assert "Completed" in followed
            outputs = [
                r for r in queue.list(queue_side="output", limit=10_000) if r.agent_correlator == status_id
            ]
            answers = {o.sys_id: queue.list(queue_side="input", response_to=o.sys_id) for o in outputs}
        assert {o.agent.removeprefix("mid.server.") for o in outputs} == {"east", "west"}
        assert all(len(found) == 1 for found in answers.values()), answers  # none lost, none twice
        assert [o.topic for o in outputs].count("Shazzam") == 1
        assert list(spool.iterdir()) == []

        listed = lab.run([*RUNNER, "cmdb", "list", *as_operator, "--json"], env=operator_env)
        shown = lab.run([*RUNNER, "cmdb", "show", "switch1", *as_operator, "--json"], env=operator_env)
        drawn = lab.run([*RUNNER, "cmdb", "map", *as_operator], env=operator_env)
        status = lab.run([*RUNNER, "discover", "status", status_id, *as_operator, "--json"], env=operator_env)
    finally:
        if discover is not None and discover.poll() is None:
            _kill(discover)
        if instance.poll() is None:
            _kill(instance)
        if restarted is not None:
            restarted.send_signal(signal.SIGTERM)
            logged += restarted.communicate(timeout=60)[1]

    cis = json.loads(listed.stdout)
    addresses = [ci["ip_address"] for ci in cis]
    # Every host discovery can classify, once each (web1 and dns1 answer no classifier; silent1 nothing).
    assert sorted(addresses) == sorted(lab.host(host).address for host in ("linux1", "switch1", "printer1"))
    assert {ci["sys_class_name"] for ci in cis} == {
        "cmdb_ci_linux_server",
        "cmdb_ci_ip_switch",
        "cmdb_ci_printer",
    }
    assert {ci["last_discovery"] for ci in cis} == {status_id}
    assert json.loads(status.stdout)["state"] == "Completed"
    switch = json.loads(shown.stdout)
    assert lab.host("switch1").address in switch["ip_addresses"]
    assert len(switch["interfaces"]) > 1  # its adapters came through the adapter and address tables
    assert "switch1" in drawn.stdout
    said = followed + listed.stdout + status.stdout + logged + "".join(agents.stop().values())
    for secret in [*PASSWORDS.values(), *lab.credentials.secrets()]:
        assert secret not in said

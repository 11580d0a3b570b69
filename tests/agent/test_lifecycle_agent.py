"""A real ``midprobe agent`` through its lifecycle, on SQLite and PostgreSQL.

A new MID does nothing until validated and says so in its log; credentials reach it only sealed to
its own key (neither the queue, nor its disk, nor its log holds a secret); a rekey makes a new key
pair that the old sealed text does not open; an agent of another major version is refused work.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from midprobe.capabilities.errors import CredentialError
from midprobe.probes.credentials.sealing import MidKeyPair, open_credentials
from midprobe.probes.registry import default_registry
from midprobe.runner.agent.lifecycle import PROBE_FAILURES_IN_A_ROW, MidLifecycle
from midprobe.runner.agent.probe_runner import AgentIdentity, ProbeRunner
from midprobe.runner.ecc.builders import new_output_record
from midprobe.runner.queue import EccQueue, open_queue
from midprobe.runner.queue.base import AgentRegistration
from midprobe.runner.queue.lifecycle import ISSUE_VERSION, SETTING_ACCEPTED_MAJOR
from midprobe.runner.queue.url import sqlite_url
from tests.support.leaks import queue_contents, tree_contents

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "sealed-Pa55-7f3a9c"
COMMUNITY = "sealed-community-41be"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def strict_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        (tmp_path / "instance").mkdir()
        return sqlite_url(tmp_path / "instance" / "ecc.db")
    return str(request.getfixturevalue("postgres_database_url"))


@pytest.fixture
def queue(strict_url: str) -> Iterator[EccQueue]:
    with open_queue(strict_url) as opened:
        yield opened


def _wait_for(condition: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _mid(*argv: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "midprobe.runner", "mid", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


class RunningAgent:
    def __init__(self, name: str, url: str, home: Path, **env: str) -> None:
        self.home = home
        self.log = home / "agent.log"
        home.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "midprobe.runner", "agent", "--name", name, "--queue", url]
        argv += ["--state", str(home / "state"), "--poll-idle", "0.2", "--poll-busy", "0.2"]
        environment = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "MIDPROBE_REGISTRY_HEARTBEAT_SECONDS": "1",
            **env,
        }
        with self.log.open("wb") as stderr:
            self.process = subprocess.Popen(
                argv, cwd=home, env=environment, stdout=subprocess.DEVNULL, stderr=stderr
            )

    def events(self) -> list[str]:
        return [
            json.loads(line)["event"] for line in self.log.read_text().splitlines() if line.startswith("{")
        ]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _beats(queue: EccQueue, name: str, count: int) -> None:
    """Until ``name`` heartbeated ``count`` more times (each beat is followed by a lifecycle check)."""
    seen = []

    def more() -> bool:
        found = queue.get_agent(name)
        if found is not None and found.last_heartbeat not in seen:
            seen.append(found.last_heartbeat)
        return len(seen) > count

    _wait_for(more, f"{count} heartbeats of {name}")


@pytest.mark.timeout(150)
def test_a_new_mid_waits_for_validation_then_gets_credentials_only_sealed_to_its_key(
    strict_url: str, queue: EccQueue, tmp_path: Path
) -> None:
    credentials = tmp_path / "instance" / "credentials.toml"
    credentials.parent.mkdir(exist_ok=True)
    credentials.write_text(
        '[[credential]]\nid = "ops"\ntype = "ssh_password"\nuser = "ops"\npassword_env = "LIFECYCLE_SSH"\n\n'
        f'[[credential]]\nid = "snmp-ro"\ntype = "snmp"\ncommunity = "{COMMUNITY}"\n'
    )
    os.environ["LIFECYCLE_SSH"] = (
        PASSWORD  # the instance's environment (the CLI runs as a child of this test)
    )
    output = queue.enqueue(new_output_record(agent="lc1", topic="HeartbeatProbe"))
    agent = RunningAgent("lc1", strict_url, tmp_path / "mid")
    try:
        _wait_for(
            lambda: (
                "waiting for validation: on the instance run `midprobe mid validate lc1`" in agent.events()
            ),
            "the log",
        )
        _beats(queue, "lc1", 2)  # polled all along: still nothing claimed
        registered = queue.get_agent("lc1")
        assert registered is not None
        assert (registered.status, registered.validated) == ("Up", False)
        assert registered.public_key
        assert queue.get(output).state == "ready"  # type: ignore[union-attr]
        assert "sealed for 0 MIDs" in _mid("credentials", str(credentials), "--queue", strict_url)
        listed = _mid("list", "--queue", strict_url)
        assert "no work: not validated" in listed

        _mid("validate", "lc1", "--queue", strict_url)
        _wait_for(lambda: queue.get(output).state == "processed", "the work to be done")  # type: ignore[union-attr]
        assert "sealed for 1 MIDs: lc1" in _mid("credentials", str(credentials), "--queue", strict_url)
        _wait_for(lambda: "credentials received sealed to this MID" in agent.events(), "the credentials")

        # Positive control: what the queue holds opens with the key on the MID's disk, and only with it.
        keys = MidKeyPair.load_or_create(agent.home / "state")
        assert oct((agent.home / "state" / "mid-key.pem").stat().st_mode & 0o777) == "0o600"
        sealed = queue.get_sealed_credentials("lc1")
        assert sealed is not None
        opened = open_credentials(sealed, keys)
        assert [c.id for c in opened.credentials] == ["ops", "snmp-ro"]
        assert opened.credentials[0].password.reveal() == PASSWORD  # type: ignore[union-attr]

        # Rekey: the MID makes a new pair; the old sealed text opens with it no more.
        _mid("rekey", "lc1", "--queue", strict_url)
        _wait_for(lambda: queue.get_agent("lc1").public_key != keys.public_key, "the new key")  # type: ignore[union-attr]
        new_keys = MidKeyPair.load_or_create(agent.home / "state")
        assert new_keys.public_key != keys.public_key
        with pytest.raises(CredentialError):
            open_credentials(sealed, new_keys)
        assert queue.get_sealed_credentials("lc1") is None
        _mid("credentials", str(credentials), "--queue", strict_url)
        _wait_for(
            lambda: agent.events().count("credentials received sealed to this MID") == 2,
            "the resealed credentials",
        )
    finally:
        agent.stop()
        os.environ.pop("LIFECYCLE_SSH", None)
    for secret in (PASSWORD, COMMUNITY):
        assert secret.encode() not in queue_contents(strict_url)
        assert secret.encode() not in tree_contents(agent.home)  # its state, its log, its working folder


@pytest.mark.timeout(90)
def test_an_agent_of_another_major_version_is_refused_work_and_shown_so(
    strict_url: str, queue: EccQueue, tmp_path: Path
) -> None:
    other = f"{int(queue.get_setting(SETTING_ACCEPTED_MAJOR)) + 1}.0.0"
    output = queue.enqueue(new_output_record(agent="future", topic="HeartbeatProbe"))
    agent = RunningAgent("future", strict_url, tmp_path / "mid", MIDPROBE_VERSION=other)
    try:
        _wait_for(lambda: queue.get_agent("future") is not None, "the registration")
        _mid("validate", "future", "--queue", strict_url)
        _wait_for(lambda: "the instance refuses work to this MID" in " ".join(agent.events()), "the log")
        _beats(queue, "future", 2)
        assert queue.get(output).state == "ready"  # type: ignore[union-attr]
        assert [issue.kind for issue in queue.list_issues("future")] == [ISSUE_VERSION]
        listed = _mid("list", "--queue", strict_url)
        assert f"no work: version {other} is not accepted" in listed
        assert f"future Up {other} yes 1" in " ".join(listed.split())
    finally:
        agent.stop()


@pytest.mark.timeout(90)
def test_pause_and_drain_show_in_the_status_and_resume_brings_work_back(
    strict_url: str, queue: EccQueue, tmp_path: Path
) -> None:
    agent = RunningAgent("pd", strict_url, tmp_path / "mid")
    try:
        _wait_for(lambda: queue.get_agent("pd") is not None, "the registration")
        _mid("validate", "pd", "--queue", strict_url)
        _mid("pause", "pd", "--queue", strict_url)
        _wait_for(lambda: queue.get_agent("pd").status == "Paused", "Paused")  # type: ignore[union-attr]
        output = queue.enqueue(new_output_record(agent="pd", topic="HeartbeatProbe"))
        _beats(queue, "pd", 2)
        assert queue.get(output).state == "ready"  # type: ignore[union-attr]
        _mid("drain", "pd", "--queue", strict_url)
        _wait_for(lambda: queue.get_agent("pd").status == "Drained", "Drained")  # type: ignore[union-attr]
        assert queue.get(output).state == "ready"  # type: ignore[union-attr]
        _mid("resume", "pd", "--queue", strict_url)
        _wait_for(lambda: queue.get(output).state == "processed", "the work after resume")  # type: ignore[union-attr]
        _wait_for(lambda: queue.get_agent("pd").status == "Up", "Up")  # type: ignore[union-attr]
    finally:
        agent.stop()


def test_the_mid_raises_clock_skew_and_probe_failure_issues_and_resolves_them(queue: EccQueue) -> None:
    registration = AgentRegistration("skewed")
    queue.register_agent(registration)
    runner = ProbeRunner(registry=default_registry(), identity=AgentIdentity("skewed"))
    offset = [timedelta(minutes=5)]
    lifecycle = MidLifecycle(clock=lambda: datetime.now(UTC) + offset[0])
    lifecycle.check(queue, registration, runner, in_flight=0, instance="i1")
    (skew,) = queue.list_issues("skewed")
    assert skew.kind == "clock_skew"
    assert "off the queue's clock" in skew.message
    assert not lifecycle.may_claim  # not validated yet
    offset[0] = timedelta(0)
    queue.heartbeat_agent("skewed")
    lifecycle.check(queue, registration, runner, in_flight=0, instance="i1")
    assert queue.list_issues("skewed") == []

    tells = [lifecycle.answered(failed=True) for _ in range(PROBE_FAILURES_IN_A_ROW)]
    assert tells[:-1] == [None] * (PROBE_FAILURES_IN_A_ROW - 1)
    raise_it = tells[-1]
    assert raise_it is not None
    raise_it(queue, "skewed")
    assert [issue.kind for issue in queue.list_issues("skewed")] == ["probe_failures"]
    resolve = lifecycle.answered(failed=False)
    assert resolve is not None
    resolve(queue, "skewed")
    assert queue.list_issues("skewed") == []
    assert lifecycle.answered(failed=False) is None  # nothing to tell the queue any more

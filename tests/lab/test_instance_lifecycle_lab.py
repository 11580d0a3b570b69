"""The MID lifecycle over HTTPS: an instance on a lab address holding the credentials, a new agent
that reaches it only over HTTPS, validated with ``midprobe mid validate`` through the instance's API,
and the credentials reaching it only sealed to its own key.

The test reads every place a secret could leak: the instance's database, the wire inside TLS (the
instance's wire log of every agent request and answer), the agent's disk (key, spool, working folder)
and both logs. It finds the sealed text on the wire, and no secret anywhere.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from midprobe.runner.ecc.builders import new_output_record
from midprobe.runner.ecc.payload import ProbeRequest, decode_input_payload, encode_multiprobe_payload
from midprobe.runner.instance.auth import open_users
from midprobe.runner.lab import Lab
from midprobe.runner.queue.url import open_queue, sqlite_url
from tests.lab.instance_support import serve_instance
from tests.support.leaks import queue_contents, tree_contents

pytestmark = pytest.mark.lab

MID_PASSWORD = "lifecycle-mid-password-9d2e"
ADMIN_PASSWORD = "lifecycle-admin-password-4b7a"
RUNNER = [sys.executable, "-m", "midprobe.runner"]


def _wait_for(
    condition: Callable[[], object], what: str, timeout: float = 60.0, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
            raise AssertionError(f"timed out waiting for {what}: {tail}")
        time.sleep(0.1)


def _events(log: Path) -> list[str]:
    return [json.loads(line)["event"] for line in log.read_text().splitlines() if line.startswith("{")]


@pytest.mark.timeout(240)
def test_a_new_mid_over_https_works_only_once_validated_with_credentials_sealed_to_its_key(
    lab: Lab, tmp_path: Path
) -> None:
    linux = lab.host("linux1")
    instance_home, mid_home = tmp_path / "instance", tmp_path / "mid"
    instance_home.mkdir()
    mid_home.mkdir()
    url = sqlite_url(instance_home / "ecc.db")
    with open_users(url) as users:
        users.add("mid", MID_PASSWORD, ("mid_server",))
        users.add("admin", ADMIN_PASSWORD, ("admin",))
    credentials = instance_home / "credentials.toml"
    credentials.write_text(
        f'[[credential]]\nid = "lab-password"\ntype = "ssh_password"\nuser = "{lab.credentials.ssh_user}"\n'
        f'password = "{lab.credentials.ssh_password}"\norder = 1\n\n'
        f'[[credential]]\nid = "lab-community"\ntype = "snmp"\ncommunity = "{lab.credentials.snmp_community}"\n'
        'version = "2c"\n'
    )
    request = new_output_record(agent="sealed1", topic="MultiProbe", source=linux.address)
    request = request.with_changes(
        payload=encode_multiprobe_payload([ProbeRequest("SSHClassify"), ProbeRequest("SNMPClassify")])
    )
    with open_queue(url) as queue:
        queue.enqueue(request)
    wire = instance_home / "wire.log"
    instance, base, ca = serve_instance(
        lab, url, "198.18.0.1:0", "--credentials", str(credentials), "--wire-log", str(wire)
    )
    agent_log = mid_home / "agent.log"
    argv = ["ip", "netns", "exec", lab.scanner_namespace, *RUNNER, "agent", "--name", "sealed1"]
    argv += ["--queue", base, "--user", "mid", "--ca", str(ca), "--lab", "--poll-idle", "0.5"]
    argv += ["--poll-busy", "0.2", "--state", str(mid_home / "state"), "--spool", str(mid_home / "spool")]
    environment = {
        **os.environ,
        "MIDPROBE_INSTANCE_PASSWORD": MID_PASSWORD,
        "MIDPROBE_REGISTRY_HEARTBEAT_SECONDS": "1",
    }
    with agent_log.open("wb") as stderr:
        agent = subprocess.Popen(
            argv, cwd=mid_home, env=environment, stdout=subprocess.DEVNULL, stderr=stderr
        )
    try:
        _wait_for(
            lambda: (
                "waiting for validation: on the instance run `midprobe mid validate sealed1`"
                in _events(agent_log)
            ),
            "the agent to wait for validation",
            log=agent_log,
        )
        beats: set[object] = set()

        def beat_twice() -> bool:
            with open_queue(url) as queue:
                found = queue.get_agent("sealed1")
            beats.add(found.last_heartbeat if found else None)
            return len(beats) > 2

        _wait_for(beat_twice, "two more heartbeats")
        with open_queue(url) as queue:
            assert queue.get(request.sys_id).state == "ready"  # type: ignore[union-attr]
            assert queue.get_sealed_credentials("sealed1") is None  # nothing sealed before validation

        admin = ["ip", "netns", "exec", lab.scanner_namespace, *RUNNER, "mid"]
        options = ["--queue", base, "--user", "admin", "--ca", str(ca)]
        admin_env = {**os.environ, "MIDPROBE_INSTANCE_PASSWORD": ADMIN_PASSWORD}
        listed = subprocess.run(
            [*admin, "list", *options], capture_output=True, text=True, env=admin_env, timeout=60
        )
        assert listed.returncode == 0, listed.stderr
        assert "no work: not validated" in listed.stdout
        refused = subprocess.run(
            [*admin, "validate", "sealed1", "--queue", base, "--user", "mid", "--ca", str(ca)],
            capture_output=True,
            text=True,
            env={**os.environ, "MIDPROBE_INSTANCE_PASSWORD": MID_PASSWORD},  # a MID may not validate itself
            timeout=60,
        )
        assert refused.returncode == 2
        assert "may not do this" in refused.stderr
        validated = subprocess.run(
            [*admin, "validate", "sealed1", *options],
            capture_output=True,
            text=True,
            env=admin_env,
            timeout=60,
        )
        assert validated.returncode == 0, validated.stderr

        def answered() -> bool:
            with open_queue(url) as queue:
                return bool(queue.list(queue_side="input", response_to=request.sys_id))

        _wait_for(answered, "the answer", timeout=120, log=agent_log)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(60)
        instance.send_signal(signal.SIGTERM)
        _, instance_errors = instance.communicate(timeout=60)

    with open_queue(url) as queue:
        (answer,) = queue.list(queue_side="input", response_to=request.sys_id)
    assert answer.error_string == ""
    results = decode_input_payload(answer.payload).results
    assert all(result.get("error") is None for result in results), answer.payload[:2000]
    assert "lab-password" in answer.payload  # the sealed credentials did the logging in
    assert "lab-community" in answer.payload
    assert "credentials received sealed to this MID" in _events(agent_log)
    wire_text = wire.read_text()
    assert '"sealed": "msc1.' in wire_text  # the credentials crossed the wire, sealed
    for secret in (lab.credentials.ssh_password, lab.credentials.snmp_community):
        assert secret not in wire_text
        assert secret.encode() not in queue_contents(url)
        assert secret.encode() not in tree_contents(mid_home)  # key, spool, agent log, working folder
        assert secret not in instance_errors

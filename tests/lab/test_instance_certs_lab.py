"""Mutual TLS with a real ``midprobe instance serve --client-certs required``: certificates from
``midprobe instance cert issue`` log a MID in without a password, and only as the MID it is bound to."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from midprobe.runner.ecc.builders import new_output_record
from midprobe.runner.instance.auth import open_users
from midprobe.runner.lab import Lab, NamespaceThread
from midprobe.runner.queue.url import open_queue, sqlite_url
from tests.lab.instance_support import serve_instance
from tests.support.trust import trust_every_agent

pytestmark = pytest.mark.lab

RUNNER = [sys.executable, "-m", "midprobe.runner"]


def test_a_client_certificate_logs_a_bound_mid_in_and_no_certificate_is_turned_away(
    lab: Lab, lab_thread: NamespaceThread, tmp_path: Path
) -> None:
    url = trust_every_agent(sqlite_url(tmp_path / "ecc.db"))  # about certificates, not validation
    with open_users(url) as users:
        users.add("mid1", "never-used-password-1", ("mid_server",), mids=("mid1",))
    output = new_output_record(agent="mid1", topic="HeartbeatProbe")
    with open_queue(url) as queue:
        queue.enqueue(output)

    process, base, ca = serve_instance(lab, url, "127.0.0.1:0", "--client-certs", "required")
    try:
        issued = subprocess.run(
            [*RUNNER, "instance", "cert", "issue", "mid1", "--queue", url, "-o", str(tmp_path / "mid1")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert issued.returncode == 0, issued.stderr
        cert, key = tmp_path / "mid1" / "mid1.pem", tmp_path / "mid1" / "mid1-key.pem"
        assert (tmp_path / "mid1" / "ca.pem").read_bytes() == ca.read_bytes()

        def talk() -> tuple[httpx.Response, httpx.Response, str]:
            pinned = ssl.create_default_context(cafile=str(ca))
            pinned.load_cert_chain(str(cert), str(key))
            with httpx.Client(base_url=base, verify=pinned, timeout=30) as client:
                listing = client.get("/api/now/table/ecc_agent")
                other = client.post("/api/midprobe/v1/agents", json={"registration": {"name": "mid2"}})
            try:
                with httpx.Client(
                    base_url=base, verify=ssl.create_default_context(cafile=str(ca)), timeout=30
                ) as anonymous:
                    anonymous.get("/api/now/table/ecc_agent")
            except httpx.TransportError as error:
                refused = type(error).__name__
            else:
                refused = "served"
            return listing, other, refused

        listing, other, refused = lab_thread.call(talk)
        # The agent, with its certificate and no password at all, answers its output.
        environment = {k: v for k, v in os.environ.items() if k != "MIDPROBE_INSTANCE_PASSWORD"}
        agent = subprocess.run(
            [
                *["ip", "netns", "exec", lab.scanner_namespace, *RUNNER, "agent", "--name", "mid1"],
                *["--queue", base, "--user", "mid1", "--ca", str(ca), "--cert", str(cert), "--key", str(key)],
                *["--once", "--lab", "--poll-busy", "0.2", "--spool", str(tmp_path / "spool")],
                *["--state", str(tmp_path / "state")],
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=environment,
        )
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)

    assert listing.status_code == 200, listing.text
    assert other.status_code == 403
    assert other.json()["error"]["detail"] == "user mid1 may act only as MID mid1, not as mid2"
    assert refused != "served"
    assert agent.returncode == 0, agent.stderr
    assert json.loads(agent.stdout)["answered"] == 1
    with open_queue(url) as queue:
        assert len(queue.list(queue_side="input", response_to=output.sys_id)) == 1
    assert process.returncode == 0, stderr

"""A discovery's credentials reach each MID only sealed to its own key.

``discover run --queue https://...`` sends the lab's credentials file (secrets generated for this
lab, and an SSH key) with the schedule; the two agents have no credentials of their own and the
instance none of its own, so every login the discovery makes is with the discovery's. After it
completed, with Linux servers classified over SSH and the switch over SNMP, no secret is found
in the queue's database (its file and write-ahead log, bytes), on the wire inside TLS (the
instance's wire log), in the instance's output, on the agents' disks (state folders, spools), in
their output, in ``discover status --json`` or in the CMDB.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from midprobe.runner.lab import Lab
from midprobe.runner.queue.url import open_queue
from tests.lab.instance_support import serve_instance
from tests.lab.test_instance_discovery_lab import (  # noqa: F401  (agents: the fixture)
    PASSWORDS,
    RUNNER,
    Agents,
    _wait,
    agents,
    prepare_discovery,
)

pytestmark = pytest.mark.lab


def _secrets(lab: Lab) -> list[str]:
    """The lab's generated secrets, and every line of its SSH private key's body."""
    key_lines = lab.credentials.ssh_private_key.read_text(encoding="ascii").splitlines()
    body = [line for line in key_lines if line and not line.startswith("-----") and len(line) >= 40]
    assert body
    return [*lab.credentials.secrets(), *body]


def _files_text(*folders: Path) -> bytes:
    """Every byte of every file under ``folders``."""
    return b"".join(
        path.read_bytes()
        for folder in folders
        if folder.exists()
        for path in folder.rglob("*")
        if path.is_file()
    )


@pytest.mark.timeout(420)
def test_a_discoverys_credentials_reach_the_mids_only_sealed_and_are_found_nowhere_in_clear(
    lab: Lab,
    tmp_path: Path,
    agents: Agents,  # noqa: F811  (the fixture imported above)
) -> None:
    schedule, url = prepare_discovery(
        lab, tmp_path, 'name = "sealed credentials"\nports = "22,161,9100"\nbehaviour = ["ssh", "snmp"]\n'
    )
    wire = tmp_path / "wire.log"
    instance, base, ca = serve_instance(lab, url, "198.18.0.1:0", "--wire-log", str(wire))
    operator_env = {**os.environ, "MIDPROBE_INSTANCE_PASSWORD": PASSWORDS["operator"]}
    as_operator = ["--queue", base, "--user", "operator", "--ca", str(ca)]
    try:
        agents.start(base, ca, own_credentials=False, log_level="debug")
        deadline = time.monotonic() + 300
        with open_queue(url) as queue:
            _wait(queue, "both agents", lambda: all(queue.get_agent(n) for n in ("east", "west")), deadline)
            for name in ("east", "west"):
                queue.update_agent(name, validated=True)
        discovered = lab.run(
            [*RUNNER, "discover", "run", str(schedule), *as_operator, "--lab"], env=operator_env, timeout=300
        )
        status_id = discovered.stdout.splitlines()[0].strip()
        status = lab.run([*RUNNER, "discover", "status", status_id, *as_operator, "--json"], env=operator_env)
        listed = lab.run([*RUNNER, "cmdb", "list", *as_operator, "--json"], env=operator_env)
        shown = [
            lab.run([*RUNNER, "cmdb", "show", host, *as_operator, "--json"], env=operator_env).stdout
            for host in ("linux1", "switch1", "printer1")
        ]
        with open_queue(url) as queue:
            inputs = [
                record
                for record in queue.list(queue_side="input", limit=10_000)
                if record.agent_correlator == status_id
            ]
        database_while_running = b"".join(path.read_bytes() for path in tmp_path.glob("ecc.db*"))
    finally:
        said = agents.stop()
        instance.send_signal(signal.SIGTERM)
        instance_out, instance_err = instance.communicate(timeout=60)

    assert json.loads(status.stdout)["state"] == "Completed", status.stdout
    cis = {ci["ip_address"]: ci["sys_class_name"] for ci in json.loads(listed.stdout)}
    linux1, switch1 = lab.host("linux1").address, lab.host("switch1").address
    assert cis[linux1] == "cmdb_ci_linux_server"
    assert cis[switch1] == "cmdb_ci_ip_switch"
    # Classified by logging in with the discovery's credentials (the MIDs and the instance have none).
    used = {
        (record.source, credential)
        for record in inputs
        for credential in ("lab-ssh", "lab-key", "lab-v3", "lab-community")
        if f'credential_id="{credential}"' in record.payload
    }
    assert {source for source, _ in used} >= {linux1, switch1}, used
    # Each MID got them sealed to its own key, once per discovery, and what crossed the wire was that.
    asked = [json.loads(line) for line in wire.read_text(encoding="utf-8").splitlines()]
    sealed = {
        entry["path"].split("/")[5]: entry["answer"]["sealed"]
        for entry in asked
        if entry["path"].endswith("/credentials") and "/outputs/" in entry["path"]
    }
    assert set(sealed) == {"mid.server.east", "mid.server.west"}, sealed
    assert all(text.startswith("msc1.") for text in sealed.values())

    database_after = b"".join(path.read_bytes() for path in tmp_path.glob("ecc.db*"))
    on_disk = _files_text(tmp_path / "state", agents.spool("east"), agents.spool("west"))
    printed = "".join(
        [
            discovered.stdout,
            discovered.stderr,
            status.stdout,
            listed.stdout,
            *shown,
            instance_out,
            instance_err,
            wire.read_text(encoding="utf-8"),
            *said.values(),
            *agents.printed.values(),
            *(record.payload for record in inputs),
        ]
    )
    assert "discovery credentials received sealed" in said["west"]  # the agents' logs are there to read
    for secret in _secrets(lab):
        assert secret not in printed
        for where in (database_while_running, database_after, on_disk):
            assert secret.encode() not in where
    assert PASSWORDS["operator"] not in printed

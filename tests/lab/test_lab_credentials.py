"""``midprobe lab status --credentials-toml``: the running lab's credentials as a file ``scan`` takes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from midprobe.probes.credentials import load_credential_file
from midprobe.runner.lab import Lab

pytestmark = pytest.mark.lab


def _midprobe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "midprobe.runner", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _scan(lab: Lab, credentials: Path, *targets: str) -> dict[str, dict[str, Any]]:
    argv = [sys.executable, "-m", "midprobe.runner", "scan", "--lab", "--format", "json", "-n", "-p", "22,161"]  # fmt: skip
    done = lab.run([*argv, "--credentials", str(credentials), *targets], timeout=120)
    return {report["address"]: report for report in map(json.loads, done.stdout.splitlines())}


def test_the_printed_file_logs_in_to_the_lab(lab: Lab, tmp_path: Path) -> None:
    printed = _midprobe("lab", "status", "--prefix", lab.prefix, "--credentials-toml")
    assert printed.returncode == 0, printed.stderr
    assert printed.stderr == ""
    path = tmp_path / "creds.toml"
    path.write_text(printed.stdout, encoding="utf-8")
    assert load_credential_file(path).credentials  # a valid credentials file

    linux, switch = lab.host("linux1"), lab.host("switch1")
    found = _scan(lab, path, linux.address, switch.address)
    assert found[linux.address]["credential_id"] == {"ssh": "lab-ssh", "snmp": "lab-v3"}
    assert found[linux.address]["os"]["hostname"] == "linux1"
    assert found[switch.address]["credential_id"] == {"snmp": "lab-v3"}

    # Without SNMPv3 and the SSH password, the key and the community are the ones that work.
    blocks = printed.stdout.split("[[credential]]")
    kept = [block for block in blocks if '"lab-v3"' not in block and '"lab-ssh"' not in block]
    fallback = tmp_path / "fallback.toml"
    fallback.write_text("[[credential]]".join(kept), encoding="utf-8")
    found = _scan(lab, fallback, linux.address, switch.address)
    assert found[linux.address]["credential_id"] == {"ssh": "lab-key", "snmp": "lab-community"}
    assert found[switch.address]["credential_id"] == {"snmp": "lab-community"}


def test_secrets_are_printed_only_when_asked_for(lab: Lab) -> None:
    shown = _midprobe("lab", "status", "--prefix", lab.prefix)
    assert shown.returncode == 0, shown.stderr
    for secret in lab.credentials.secrets():
        assert secret not in shown.stdout + shown.stderr
    mixed = _midprobe("lab", "status", "--prefix", lab.prefix, "--credentials-toml", "--json")
    assert mixed.returncode == 2
    assert mixed.stdout == ""
    assert mixed.stderr.count("\n") == 1
    assert "--credentials-toml" in mixed.stderr

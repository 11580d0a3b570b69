"""`midprobe demo` (what `make demo` runs): a whole discovery through the ECC queue against its own lab."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from midprobe.runner.cmdb import open_cmdb
from midprobe.runner.queue.url import open_queue, sqlite_url

pytestmark = pytest.mark.lab


@pytest.mark.timeout(300)
def test_demo_discovers_the_lab_into_the_cmdb(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "midprobe.runner", "demo", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert "then open https://127.0.0.1:8443/console" in out.split("5. Where to look next")[1]
    status_part, cmdb_part = (
        out.split("3. The discovery's status")[1]
        .split("5. Where to look next")[0]
        .split("4. The CMDB it filled")
    )
    assert "Completed: scanning 1/1" in status_part
    assert "SNMPClassify classified it cmdb_ci_printer" in status_part
    for name, ci_class in (("linux1", "linux_server"), ("switch1", "ip_switch"), ("printer1", "printer")):
        (line,) = [line for line in cmdb_part.splitlines() if f" {name} " in line]
        assert f" {ci_class} " in line
    assert "198.18.0.14" not in cmdb_part, "the silent host never answered: no CI"

    url = sqlite_url(tmp_path / "ecc.db")
    with open_queue(url) as queue:
        outputs = queue.list(queue_side="output")
        assert {record.state for record in outputs} <= {"processed", "error"}  # every output answered
        assert {"Shazzam", "SSHClassify", "SNMPClassify"} <= {record.topic for record in outputs}
    with open_cmdb(url) as cmdb:
        rows = json.loads(cmdb.export("json"))
    secrets = (tmp_path / "creds.toml").read_text(encoding="utf-8")
    assert "password" in secrets
    assert (tmp_path / "creds.toml").stat().st_mode & 0o077 == 0  # the lab's secrets, readable by root only
    assert all(
        value not in out
        for line in secrets.splitlines()
        if "key =" in line or "password =" in line
        for value in [line.split("=", 1)[1].strip().strip('"')]
    )
    assert {row["name"] for row in rows} >= {"linux1", "switch1", "printer1"}

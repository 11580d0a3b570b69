"""`midprobe demo` (what `make demo` runs): a whole discovery through the ECC queue against its own lab."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from midprobe.runner.ecc.payload import decode_input_payload
from midprobe.runner.queue.url import open_queue, sqlite_url

pytestmark = pytest.mark.lab


@pytest.mark.timeout(300)
def test_demo_discovers_the_lab_through_the_queue(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "midprobe.runner", "demo", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert "linux1.sandiego.lab.example.test" in out
    assert "198.18.0.12" in out
    assert "80, 9100" in out
    assert "198.18.0.14" not in out.split("5. Results")[1], "the silent host is omitted"
    assert "HeartbeatProbe answered with result_code 0: True" in out

    with open_queue(sqlite_url(tmp_path / "ecc.db")) as queue:
        outputs = queue.list(queue_side="output")
        answers = queue.list(queue_side="input", topic="Shazzam")
        assert {record.state for record in outputs} == {"processed"}
        assert {record.topic for record in outputs} == {"Shazzam", "HeartbeatProbe", "DNS"}
        (shazzam,) = answers
        decoded = decode_input_payload(queue.read_payload(shazzam))
    assert decoded.result_code == 0
    hosts = {host.get("ip"): host for result in decoded.results for host in result.iter("host")}
    linux = hosts["198.18.0.10"]
    assert linux.get("alive") == "true"
    assert linux.get("active") == "true"
    open_ports = {s.get("port") for s in linux.iter("scanner") if s.get("result") == "open"}
    assert open_ports == {"22", "80"}
    assert decoded.echoed("topic") == "Shazzam"

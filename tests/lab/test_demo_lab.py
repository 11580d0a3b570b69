"""`midprobe demo` (what `make demo` runs): the instance, a MID validated over HTTPS and a discovery of its own lab.

The demo leaves the instance running with a forward from this machine's 127.0.0.1 to its console:
the test logs in there as the operator, then `midprobe lab down` stops everything.
"""

from __future__ import annotations

import re
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from midprobe.runner.queue.url import open_queue, sqlite_url

pytestmark = pytest.mark.lab

RUNNER = [sys.executable, "-m", "midprobe.runner"]
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _sections(out: str) -> dict[str, str]:
    """The demo's output by numbered step (``"3"`` -> what step 3 printed)."""
    parts = re.split(r"^(\d)\. ", out, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _log_in(console: str, ca: Path, password: str) -> str:
    """Log in to the console as the operator (from this machine's namespace); the MID Servers page."""
    with httpx.Client(verify=ssl.create_default_context(cafile=ca), timeout=30) as client:
        form = client.get(f"{console}/login")
        token = CSRF.search(form.text)
        assert token is not None, form.text
        page = client.post(
            f"{console}/login",
            data={"csrf_token": token.group(1), "name": "operator", "password": password},
            follow_redirects=True,
        )
        assert page.status_code == 200, page.text
        return page.text


@pytest.mark.timeout(300)
@pytest.mark.usefixtures("keeps_a_detached_lab")
def test_demo_validates_its_mid_over_https_discovers_the_lab_and_leaves_the_console_open(
    tmp_path: Path,
) -> None:
    completed = subprocess.run(
        [*RUNNER, "demo", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    prefix = re.search(r"lab (mp[0-9a-f]{6}) keep running", completed.stdout)
    try:
        assert completed.returncode == 0, completed.stderr
        assert prefix is not None, completed.stdout
        out = completed.stdout
        steps = _sections(out)
        mid_list, validated = steps["3"].split("mid validate demo-mid")
        (line,) = [line for line in mid_list.splitlines() if line.startswith("demo-mid ")]
        assert line.split()[3] == "no"
        assert "no work: not validated" in line
        assert "demo-mid: validated" in validated
        assert "Completed: scanning 1/1" in steps["5"]
        assert "SNMPClassify classified it cmdb_ci_printer" in steps["5"]
        for name, ci_class in (("linux1", "linux_server"), ("switch1", "ip_switch"), ("printer1", "printer")):
            (row,) = [row for row in steps["6"].splitlines() if f" {name} " in row]
            assert f" {ci_class} " in row
        assert "198.18.0.14" not in steps["6"], "the silent host never answered: no CI"

        address = re.search(r"open (https://127\.0\.0\.1:\d+/console)", steps["7"])
        assert address is not None, steps["7"]
        ca = tmp_path / "ecc-tls" / "ca.pem"
        assert str(ca) in steps["7"]
        password = (tmp_path / "operator-password").read_text(encoding="utf-8").strip()
        mids = _log_in(address.group(1), ca, password)
        assert "demo-mid" in mids
        assert "<td>yes</td>" in mids  # validated

        with open_queue(sqlite_url(tmp_path / "ecc.db")) as queue:
            outputs = queue.list(queue_side="output")
        assert {record.state for record in outputs} <= {"processed", "error"}  # every output answered
        assert {"Shazzam", "SSHClassify", "SNMPClassify"} <= {record.topic for record in outputs}
        assert {record.agent for record in outputs} == {"mid.server.demo-mid"}  # the validated MID did it all
        secrets = (tmp_path / "creds.toml").read_text(encoding="utf-8")
        assert (
            tmp_path / "creds.toml"
        ).stat().st_mode & 0o077 == 0  # the lab's secrets, readable by root only
        assert (tmp_path / "operator-password").stat().st_mode & 0o077 == 0
        assert password not in out
        assert all(
            value not in out
            for line in secrets.splitlines()
            if "key =" in line or "password =" in line
            for value in [line.split("=", 1)[1].strip().strip('"')]
        )
        assert f"lab down --prefix {prefix.group(1)}" in out
    finally:
        if prefix is not None:
            subprocess.run([*RUNNER, "lab", "down", "--prefix", prefix.group(1)], check=True, timeout=120)
    with pytest.raises(httpx.TransportError):  # `lab down` stopped the instance and the forward too
        _log_in(address.group(1), ca, password)

"""``midprobe mid setup`` end to end: against a real instance in the lab's namespace it pins the CA by its
fingerprint, writes the config, password file and unit, and the unit's ExecStart starts an agent that is Up."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from midprobe.runner.instance.auth import open_users
from midprobe.runner.lab import Lab
from midprobe.runner.queue.url import open_queue, sqlite_url
from tests.lab.instance_support import serve_instance

pytestmark = pytest.mark.lab

PASSWORD = 'setup "pw" \\ $HOME'
RUNNER = [sys.executable, "-m", "midprobe.runner"]


def _setup(
    lab: Lab, base: str, tmp_path: Path, *extra: str, answers: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``mid setup`` with flags (``--yes``), or answering its questions with ``answers``."""
    asked = [] if answers is not None else ["--yes"]
    argv = ["ip", "netns", "exec", lab.scanner_namespace, *RUNNER, "mid", "setup", *asked, "--url", base]
    argv += ["--user", "mid1", "--config-dir", str(tmp_path / "etc"), "--unit-dir", str(tmp_path / "units")]
    argv += ["--state-dir", str(tmp_path / "state"), "--lab", *extra]
    env = {**os.environ, "MIDPROBE_INSTANCE_PASSWORD": PASSWORD}
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=60, check=False, env=env, input=answers or ""
    )


def _environment(path: Path) -> dict[str, str]:
    """An EnvironmentFile's KEY="value" lines, unquoted as systemd reads them."""
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        (found[key],) = shlex.split(value)
    return found


def test_mid_setup_writes_a_config_and_unit_whose_agent_reaches_up(lab: Lab, tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "ecc.db")
    with open_users(url) as users:
        users.add("mid1", PASSWORD, ("mid_server",), mids=("mid1",))
    instance, base, _ca = serve_instance(lab, url, "127.0.0.1:0")
    agent: subprocess.Popen[str] | None = None
    try:
        assert instance.stdout is not None
        fingerprint = instance.stdout.readline().strip().removeprefix("CA fingerprint (SHA-256): ")

        wrong = _setup(lab, base, tmp_path, "--name", "mid1", "--ca-fingerprint", "AB" * 32)
        assert wrong.returncode == 2
        assert wrong.stderr.strip().endswith("not the fingerprint given: do not trust it"), wrong.stderr
        declined = _setup(lab, base, tmp_path, answers="mid1\nn\n")  # the MID name asked, the CA declined
        assert fingerprint in declined.stdout
        assert declined.returncode == 2
        assert "the CA was not confirmed" in declined.stderr
        other = _setup(lab, base, tmp_path, "--name", "mid2", "--ca-fingerprint", fingerprint)
        assert other.returncode == 2
        assert "may act only as MID mid1, not as mid2" in other.stderr
        assert not (tmp_path / "etc").exists()  # nothing is written before every check passed

        done = _setup(lab, base, tmp_path, "--name", "mid1", "--ca-fingerprint", fingerprint)
        assert done.returncode == 0, done.stderr
        assert "systemctl daemon-reload && systemctl enable --now midprobe-mid-mid1.service" in done.stdout
        unit = (tmp_path / "units" / "midprobe-mid-mid1.service").read_text()
        settings = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line)
        secrets_file = Path(settings["EnvironmentFile"])
        assert secrets_file.stat().st_mode & 0o777 == 0o600
        assert PASSWORD not in unit + (tmp_path / "etc" / "agent.toml").read_text()

        # The unit starts the environment `current` points at (an upgrade re-points it): this one.
        current = tmp_path / "state" / "upgrades" / "venvs" / "current"
        assert shlex.split(settings["ExecStart"])[0] == str(current / "bin" / Path(sys.executable).name)
        assert current.resolve() == Path(sys.prefix).resolve()
        # The unit's ExecStart, with the unit's environment, as systemd would start it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("MIDPROBE_")}
        env |= _environment(secrets_file)
        agent = subprocess.Popen(
            ["ip", "netns", "exec", lab.scanner_namespace, *shlex.split(settings["ExecStart"])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and agent.poll() is None:
            with open_queue(url) as queue:
                registered = queue.get_agent("mid1")
            status = registered.status if registered is not None else None
            if status == "Up":
                break
            time.sleep(0.2)
        if status != "Up":
            agent.kill()
            instance.send_signal(signal.SIGTERM)
            log = agent.communicate(timeout=30)[1][-6000:]
            pytest.fail(
                f"the agent did not reach Up ({status}): {log} INSTANCE {instance.communicate(timeout=30)[1]}"
            )
        agent.send_signal(signal.SIGTERM)
        _, agent_log = agent.communicate(timeout=90)
        assert agent.returncode == 0, agent_log
        assert PASSWORD not in agent_log
        # Its key pair is in the state folder the unit lets it write, its spool inside it.
        assert f"StateDirectory={tmp_path / 'state'}" not in unit  # not under /var/lib: a path
        assert f"ReadWritePaths={tmp_path / 'state'}" in unit.splitlines()
        assert any((tmp_path / "state").iterdir())
        assert (tmp_path / "state" / "spool").is_dir()
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()
            agent.communicate(timeout=30)
        instance.send_signal(signal.SIGTERM)
        instance.communicate(timeout=60)

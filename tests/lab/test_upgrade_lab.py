"""MID upgrades in the lab: two midprobe wheels built here of different versions, a third that cannot
start and a fourth whose self-test fails, served by an instance over HTTPS; a MID running from a
virtual environment of its own upgrades by ``midprobe mid upgrade`` into the newer one, goes back
from the one that cannot start and stays on its version when the self-test fails, with status
Upgrade Failed and working on, and a pinned MID never upgrades.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from midprobe.runner.agent.upgrade import site_folders
from midprobe.runner.ecc.builders import new_output_record
from midprobe.runner.instance.auth import open_users
from midprobe.runner.lab import Lab
from midprobe.runner.queue.base import AgentRegistration
from midprobe.runner.queue.url import open_queue, sqlite_url
from tests.lab.conftest import TINY_PROFILE
from tests.lab.instance_support import serve_instance

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
MID_PASSWORD = "upgrade-mid-password-51c3"
ADMIN_PASSWORD = "upgrade-admin-password-0e7d"
OLD, NEW, CANNOT_START, BROKEN = "0.1.1", "0.1.2", "0.1.3", "0.1.4"


def _build_wheel(source: Path, version: str, out: Path) -> Path:
    pyproject = source / "pyproject.toml"
    pyproject.write_text(re.sub(r'(?m)^version = ".*"$', f'version = "{version}"', pyproject.read_text()))
    for stale in (source / "build", *source.glob("*.egg-info")):  # setuptools would reuse them
        shutil.rmtree(stale, ignore_errors=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = out.glob(f"midprobe-{version}-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Wheels of OLD, NEW, CANNOT_START (it fails before registering) and BROKEN (its self-test
    raises), built offline from a copy of this tree."""
    base = tmp_path_factory.mktemp("wheels")
    source = base / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "build",
            "dist",
            "*.egg-info",
            "__pycache__",
            ".*_cache",
            "tests",
            "fixtures",
            "bench",
        ),
    )
    built = {version: _build_wheel(source, version, base / "out") for version in (OLD, NEW)}
    for version, module, line, broken in (
        (
            CANNOT_START,
            "daemon.py",
            "        # Refused (AgentNameInUse) while another live process runs under this name.\n",
            '        raise QueueError("this build cannot start, on purpose")\n',
        ),
        (
            BROKEN,
            "selftest.py",
            "    modules = import_everything()\n",
            '    raise SelfTestFailed("this build is broken on purpose")\n',
        ),
    ):
        path = source / "runner" / "agent" / module
        text = path.read_text()
        assert line in text
        path.write_text(text.replace(line, broken + line))
        built[version] = _build_wheel(source, version, base / "out")
        path.write_text(text)
    return built


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab.up(TINY_PROFILE) as running:
        yield running


def _venv_with(wheel: Path, where: Path) -> Path:
    """A virtual environment running ``wheel``, its dependencies those of this test's environment."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=60)
    site = where / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    (site / "_deps.pth").write_text("".join(f"{folder}\n" for folder in site_folders(sys.path)))
    python = where / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return python


def _wait_for(condition: Callable[[], object], what: str, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {log.read_text()[-3000:]}")
        time.sleep(0.1)


def _events(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


@pytest.mark.timeout(240)
def test_a_mid_upgrades_to_a_newer_wheel_rolls_back_from_a_broken_one_and_a_pinned_one_stays(
    lab: Lab, wheels: dict[str, Path], tmp_path: Path
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    for version in (NEW, CANNOT_START, BROKEN):
        shutil.copy(wheels[version], served)
    url = sqlite_url(tmp_path / "ecc.db")
    with open_users(url) as users:
        users.add("mid", MID_PASSWORD, ("mid_server",))
        users.add("admin", ADMIN_PASSWORD, ("admin",))
    instance, base, ca = serve_instance(lab, url, "198.18.0.1:0", "--wheels", str(served))
    python = _venv_with(wheels[OLD], tmp_path / "mid-venv")
    netns = ["ip", "netns", "exec", lab.scanner_namespace]
    agents: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}

    def start(name: str, interpreter: Path | None = None, **environment: str) -> Path:
        home = tmp_path / name
        home.mkdir(exist_ok=True)
        log = home / "agent.log"
        program = str(interpreter or python)
        argv = [*netns, program, "-m", "midprobe.runner", "agent", "--name", name, "--queue", base]
        argv += ["--user", "mid", "--ca", str(ca), "--lab", "--poll-idle", "0.5", "--poll-busy", "0.2"]
        argv += ["--state", str(home / "state"), "--spool", str(home / "spool")]
        env = {
            **os.environ,
            "MIDPROBE_INSTANCE_PASSWORD": MID_PASSWORD,
            "MIDPROBE_REGISTRY_HEARTBEAT_SECONDS": "1",
        }
        with log.open("wb") as stderr:
            process = subprocess.Popen(argv, cwd=home, env={**env, **environment}, stderr=stderr)
        agents[name] = (process, log)
        return log

    def registered(name: str) -> AgentRegistration | None:
        with open_queue(url) as queue:
            return queue.get_agent(name)

    def mid(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [*netns, sys.executable, "-m", "midprobe.runner", "mid", *args]
        argv += ["--queue", base, "--user", "admin", "--ca", str(ca)]
        env = {**os.environ, "MIDPROBE_INSTANCE_PASSWORD": ADMIN_PASSWORD}
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)

    def answered(name: str) -> Callable[[], bool]:
        with open_queue(url) as queue:
            sys_id = queue.enqueue(new_output_record(agent=name, topic="HeartbeatProbe"))

        def done() -> bool:
            with open_queue(url) as queue:
                return bool(queue.list(queue_side="input", response_to=sys_id))

        return done

    try:
        log = start("upg1")
        pinned_log = start("upg2", MIDPROBE_UPGRADE_CHECK_SECONDS="1")
        _wait_for(lambda: registered("upg1") and registered("upg2"), "both MIDs to register", log)
        with open_queue(url) as queue:
            for name in ("upg1", "upg2"):
                queue.update_agent(name, validated=True)
            queue.update_agent("upg2", pinned_version=OLD)
        assert registered("upg1").version == OLD  # type: ignore[union-attr]

        # Bad input: one line each, exit 2.
        unknown = mid("upgrade", "upg1", "--version", "9.9.9")
        assert unknown.returncode == 2
        assert unknown.stderr.strip().endswith(
            f"no wheel of version 9.9.9 is served (served: {NEW}, {CANNOT_START}, {BROKEN})"
        )
        refused = mid("upgrade", "upg2")
        assert refused.returncode == 2
        assert "pinned to 0.1.1: a pinned MID never upgrades" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1

        # An upgrade into the newer wheel: Upgrading, then Up on the new version, in the same process.
        asked = mid("upgrade", "upg1", "--version", NEW)
        assert asked.returncode == 0, asked.stderr
        assert f"upg1: upgrade from {OLD} to {NEW} requested" in asked.stdout
        statuses: set[str] = set()

        def upgraded() -> bool:
            found = registered("upg1")
            statuses.add(found.status if found else "")
            return found is not None and (found.version, found.status) == (NEW, "Up")

        _wait_for(upgraded, f"upg1 to run {NEW}", log)
        assert "Upgrading" in statuses or any(e.get("status") == "Upgrading" for e in _events(log))
        assert agents["upg1"][0].poll() is None  # exec'd: the same process runs the new version
        current = tmp_path / "upg1" / "state" / "upgrades" / "venvs" / "current"
        assert current.resolve().name == f"midprobe-{NEW}"

        def failed(version: str) -> Callable[[], bool]:
            def done() -> bool:
                with open_queue(url) as queue:
                    return any(
                        row.to_version == version and row.state == "Failed"
                        for row in queue.list_upgrades("upg1")
                    )

            return done

        def upgrade_failed_on_new() -> bool:
            found = registered("upg1")
            return found is not None and (found.version, found.status) == (NEW, "Upgrade Failed")

        # A version that passes its self-test but cannot start: the MID goes back to NEW.
        asked = mid("upgrade", "upg1", "--version", CANNOT_START)
        assert asked.returncode == 0, asked.stderr
        _wait_for(failed(CANNOT_START), f"the upgrade to {CANNOT_START} to fail", log)
        _wait_for(upgrade_failed_on_new, f"upg1 back on {NEW}, Upgrade Failed", log)
        assert agents["upg1"][0].poll() is None  # exec'd back: still the same process
        assert current.resolve().name == f"midprobe-{NEW}"
        _wait_for(answered("upg1"), "upg1 to answer work after going back", log)
        assert sorted(path.name for path in current.parent.iterdir()) == ["current", f"midprobe-{NEW}"]

        # The newest served wheel is broken: its self-test fails, the MID stays on NEW and says so.
        broken = mid("upgrade", "upg1")
        assert broken.returncode == 0, broken.stderr
        assert f"to {BROKEN} requested" in broken.stdout
        _wait_for(failed(BROKEN), "the broken upgrade to fail", log)
        _wait_for(upgrade_failed_on_new, "status Upgrade Failed", log)
        assert current.resolve().name == f"midprobe-{NEW}"
        _wait_for(answered("upg1"), "upg1 to answer work after the failed self-test", log)
        assert sorted(path.name for path in current.parent.iterdir()) == ["current", f"midprobe-{NEW}"]
        assert not any((tmp_path / "upg1" / "state" / "upgrades" / "wheels").iterdir())

        history = mid("upgrades", "upg1")
        assert history.returncode == 0, history.stderr
        lines = history.stdout.strip().splitlines()
        assert len(lines) == 3
        assert re.search(rf"Failed .* {NEW} -> {BROKEN} .*this build is broken on purpose", lines[0]), lines
        assert re.search(
            rf"Failed .* {NEW} -> {CANNOT_START} .*the new version did not start: this build cannot start",
            lines[1],
        ), lines
        assert re.search(rf"Succeeded .* {OLD} -> {NEW} .*running {NEW}", lines[2]), lines

        # Every unpinned MID to NEW: upg1 runs it already; upg2 is pinned and never upgrades.
        everyone = mid("upgrade", "--all", "--version", NEW)
        assert everyone.returncode == 0, everyone.stderr
        _wait_for(
            lambda: any(e["event"] == "not upgrading: pinned" for e in _events(pinned_log)),
            "the pinned MID to check",
            pinned_log,
        )
        _wait_for(answered("upg2"), "upg2 to answer work", pinned_log)
        assert registered("upg2").version == OLD  # type: ignore[union-attr]
        with open_queue(url) as queue:
            assert queue.list_upgrades("upg2") == []
            assert len(queue.list_upgrades("upg1")) == 3

        # A restart (as systemd's, whose unit `mid setup` points at `current`) keeps the upgrade.
        process, _ = agents.pop("upg1")
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        log = start("upg1", current / "bin" / "python")
        _wait_for(upgraded, f"upg1 restarted through current on {NEW}", log)
        _wait_for(answered("upg1"), "upg1 to answer work after the restart", log)
    finally:
        for process, _ in agents.values():
            process.send_signal(signal.SIGTERM)
        for process, _ in agents.values():
            process.wait(60)
        instance.send_signal(signal.SIGTERM)
        instance.communicate(timeout=60)

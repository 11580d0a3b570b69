"""The MID's own upgrades: a wheel from the instance into a fresh virtual environment, a self-test, a restart.

The agent asks at every heartbeat whether the operator asked it to upgrade (``mid upgrade NAME``)
and every ``upgrade_check_seconds`` whether the instance wants every MID on a version
(``mid upgrade --all``). To upgrade it downloads the wheel over the instance's HTTPS (its SHA-256
checked), makes a virtual environment beside the running one (``STATE/upgrades/venvs/midprobe-V``)
that sees the running environment's packages through a ``.pth`` file (nothing is fetched: it works
offline), installs the wheel there without dependencies, and runs the new version's self-test
(``midprobe agent ... --self-test``). Only when that passes does it finish its work in flight,
switch ``venvs/current`` and exec the new interpreter (same process, same arguments); else it stays
on the running version with status Upgrade Failed. A new version that then fails to start goes
back to the one before (exec'd again), which shows Upgrade Failed. A pinned MID never upgrades.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

from midprobe.capabilities.errors import MidprobeError
from midprobe.runner.queue.lifecycle import AgentUpgrade, upgrade_refusal
from midprobe.runner.queue.wire import ServedWheel

#: The environment variables an upgraded process is started with: the upgrade it finishes, and the
#: process token it keeps (it is the same process, exec'd: its name and leases stay its own).
UPGRADE_VARIABLE: Final = "MIDPROBE_UPGRADE_ID"
INSTANCE_VARIABLE: Final = "MIDPROBE_AGENT_INSTANCE"
#: The interpreter of the version before, which a new version that fails to start goes back to,
#: and what that one is told: the upgrade, its version and why (tab-separated).
ROLLBACK_VARIABLE: Final = "MIDPROBE_UPGRADE_ROLLBACK"
FAILED_VARIABLE: Final = "MIDPROBE_UPGRADE_FAILED"
#: How long each step may take before the attempt fails.
VENV_SECONDS: Final = 120.0
INSTALL_SECONDS: Final = 300.0
SELF_TEST_SECONDS: Final = 120.0
#: The file in the new environment's site-packages naming the running environment's package folders.
BASE_PTH: Final = "_midprobe_base.pth"


class UpgradeFailed(MidprobeError):
    """One step of an upgrade failed; the message is the reason kept in the upgrade history."""


class WheelSource(Protocol):
    """Where wheels come from: the instance (``HttpsQueue``)."""

    def list_wheels(self) -> list[ServedWheel]: ...

    def download_wheel(self, wheel: ServedWheel, folder: Path) -> Path: ...


@dataclass(frozen=True)
class UpgradePlan:
    """An upgrade to do now: to ``version``, for the operator's ``request`` (``None``: the instance-wide version)."""

    version: str
    request: AgentUpgrade | None = None


def plan_upgrade(
    running: str, pinned: str, pending: AgentUpgrade | None, wanted_everywhere: str, given_up: frozenset[str]
) -> tuple[UpgradePlan | None, str | None]:
    """What to do (pure): the upgrade to start, and why the pending request is refused (if it is).

    A request of this MID comes first; else the instance-wide version, unless this process gave
    it up already (it failed once: the history says why, and it is not tried every hour).
    """
    if pending is not None:
        refusal = upgrade_refusal(running, pinned, pending.to_version)
        if refusal is None:
            return UpgradePlan(pending.to_version, pending), None
        return None, refusal
    if wanted_everywhere in given_up or upgrade_refusal(running, pinned, wanted_everywhere) is not None:
        return None, None
    return UpgradePlan(wanted_everywhere), None


def venvs_folder(state_dir: Path) -> Path:
    """Where a MID's upgrades' environments are, ``current`` (the one to start) among them."""
    return state_dir / "upgrades" / "venvs"


def running_python(executable: str = sys.executable) -> str:
    """The running interpreter by a path that stays right when ``venvs/current`` moves: its folder
    resolved (a unit starts the agent through ``current/bin/python``), the file itself not (a virtual
    environment's ``python`` is a link to the base interpreter; following it would leave the
    environment)."""
    path = Path(executable)
    return str(path.parent.resolve() / path.name)


def site_folders(path: Sequence[str]) -> list[str]:
    """The package folders of the running environment (``site-packages``, ``dist-packages``), in
    order, resolved (reached through ``venvs/current`` they would follow its next switch)."""
    found: list[str] = []
    for entry in path:
        folder = Path(entry).resolve() if entry else None
        if (
            folder
            and folder.name in ("site-packages", "dist-packages")
            and folder.is_dir()
            and str(folder) not in found
        ):
            found.append(str(folder))
    return found


def _tail(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""


def _run(argv: Sequence[str], seconds: float, what: str, env: Mapping[str, str] | None = None) -> str:
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=seconds, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        raise UpgradeFailed(f"{what} did not finish within {seconds:g} s") from None
    except OSError as error:
        raise UpgradeFailed(f"{what}: {error.strerror or error}") from None
    if done.returncode != 0:
        said = _tail(done.stderr) or _tail(done.stdout) or f"exit status {done.returncode}"
        raise UpgradeFailed(f"{what} failed: {said}")
    return _tail(done.stdout)


@dataclass(frozen=True)
class Upgrader:
    """Where and how this MID upgrades: its state folder and the arguments it was started with."""

    #: The instance, which serves the wheels.
    source: WheelSource
    state_dir: Path
    #: The command line after the program (``agent --name ...``): the new version runs it again.
    arguments: tuple[str, ...]
    python: str = field(default_factory=running_python)

    @property
    def venvs(self) -> Path:
        return venvs_folder(self.state_dir)

    @property
    def downloads(self) -> Path:
        return self.state_dir / "upgrades" / "wheels"

    def new_python(self, version: str) -> Path:
        return self.venvs / f"midprobe-{version}" / "bin" / "python"

    def prepare(self, version: str) -> Path:
        """Download, check, install and self-test ``version``; the new interpreter (``UpgradeFailed`` if any step fails)."""
        source = self.source
        try:
            served = [wheel for wheel in source.list_wheels() if wheel.version == version]
        except MidprobeError as error:
            raise UpgradeFailed(f"the wheels could not be listed: {error}") from None
        if not served:
            raise UpgradeFailed(f"the instance serves no wheel of version {version}")
        self.downloads.mkdir(parents=True, exist_ok=True)
        try:
            wheel = source.download_wheel(served[0], self.downloads)
        except MidprobeError as error:
            raise UpgradeFailed(f"download failed: {error}") from None
        python = self._install(wheel, version)
        try:
            self.self_test(python)
        except UpgradeFailed:
            shutil.rmtree(python.parent.parent, ignore_errors=True)  # a version that failed is not kept
            raise
        finally:
            wheel.unlink(missing_ok=True)  # installed (or refused): the download is not needed again
        return python

    def _install(self, wheel: Path, version: str) -> Path:
        target = self.venvs / f"midprobe-{version}"
        if target.exists():  # what an earlier attempt left: start afresh
            shutil.rmtree(target)
        self.venvs.mkdir(parents=True, exist_ok=True)
        has_pip = importlib.util.find_spec("pip") is not None
        venv = [self.python, "-m", "venv", *(["--without-pip"] if has_pip else []), str(target)]
        _run(venv, VENV_SECONDS, "creating the virtual environment")
        python = target / "bin" / "python"
        site = target / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
        # The running environment's packages (the dependencies) behind the new one's own: the new
        # midprobe, installed into the new environment, comes first on its path. Earlier upgrades'
        # environments hold midprobe only (installed without dependencies): they are left out.
        venvs = self.venvs.resolve()
        folders = [folder for folder in site_folders(sys.path) if not Path(folder).is_relative_to(venvs)]
        (site / BASE_PTH).write_text("".join(f"{folder}\n" for folder in folders), encoding="utf-8")
        pip = [self.python, "-m", "pip", "--python", str(python)] if has_pip else [str(python), "-m", "pip"]
        install = [*pip, "install", "--no-deps", "--no-index", "--no-input", "--disable-pip-version-check"]
        _run([*install, "--quiet", str(wheel)], INSTALL_SECONDS, "installing the wheel")
        return python

    def self_test(self, python: Path) -> str:
        """The new version's ``--self-test`` with this MID's own arguments; its one-line verdict."""
        env = {key: value for key, value in os.environ.items() if key != UPGRADE_VARIABLE}
        argv = [str(python), "-m", "midprobe.runner", *self.arguments, "--self-test"]
        return _run(argv, SELF_TEST_SECONDS, "the self-test", env=env)

    def discard(self, version: str) -> None:
        """Remove the environment of ``version`` (it failed), unless it is the one running."""
        target = self.venvs / f"midprobe-{version}"
        if target.is_dir() and Path(sys.prefix).resolve() != target.resolve():
            shutil.rmtree(target, ignore_errors=True)

    def switch(self, python: Path) -> None:
        """Point ``venvs/current`` at the environment of ``python``, and remove the environments
        other than it and the running one."""
        point_current(self.venvs, python)
        keep = {python.parent.parent.name, Path(sys.prefix).resolve().name, "current"}
        for other in self.venvs.iterdir():
            if other.name not in keep and other.is_dir() and not other.is_symlink():
                shutil.rmtree(other, ignore_errors=True)

    def exec_into(self, python: Path, upgrade: str, instance: str) -> None:
        """Switch to the new version and become it: the same process, the same arguments (returns only
        if the exec fails)."""
        try:
            self.switch(python)
        except OSError as error:
            raise UpgradeFailed(
                f"cannot switch {self.venvs / 'current'}: {error.strerror or error}"
            ) from None
        env = {
            **os.environ,
            UPGRADE_VARIABLE: upgrade,
            INSTANCE_VARIABLE: instance,
            ROLLBACK_VARIABLE: self.python,
        }
        argv = [str(python), "-m", "midprobe.runner", *self.arguments]
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.execve(python, argv, env)  # noqa: S606  (our own interpreter)
        except OSError as error:
            raise UpgradeFailed(f"cannot start {python}: {error.strerror or error}") from None


def point_current(venvs: Path, python: Path) -> None:
    """``venvs/current`` -> the environment of ``python`` (replaced atomically)."""
    venvs.mkdir(parents=True, exist_ok=True)
    staged = venvs / "current.new"
    staged.unlink(missing_ok=True)
    staged.symlink_to(python.parent.parent.absolute())
    staged.replace(venvs / "current")


def roll_back(
    old_python: str, arguments: Sequence[str], state_dir: Path, failed: tuple[str, str, str], instance: str
) -> None:
    """A new version that failed to start goes back to ``old_python`` (``failed``: the upgrade's
    sys_id, version and why), with the same arguments and process token; returns only if it cannot."""
    env = {
        key: value for key, value in os.environ.items() if key not in (UPGRADE_VARIABLE, ROLLBACK_VARIABLE)
    }
    env[FAILED_VARIABLE] = "\t".join(part.replace("\t", " ").replace("\n", " ") for part in failed)
    env[INSTANCE_VARIABLE] = instance
    with contextlib.suppress(OSError):
        point_current(venvs_folder(state_dir), Path(old_python))
    sys.stdout.flush()
    sys.stderr.flush()
    with contextlib.suppress(OSError):
        os.execve(old_python, [old_python, "-m", "midprobe.runner", *arguments], env)  # noqa: S606


def failed_upgrade(text: str | None) -> tuple[str, str, str] | None:
    """What ``FAILED_VARIABLE`` says (the upgrade's sys_id, version, reason), if it says it."""
    parts = (text or "").split("\t", 2)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


__all__ = [
    "FAILED_VARIABLE",
    "INSTANCE_VARIABLE",
    "ROLLBACK_VARIABLE",
    "UPGRADE_VARIABLE",
    "UpgradeFailed",
    "UpgradePlan",
    "Upgrader",
    "WheelSource",
    "failed_upgrade",
    "plan_upgrade",
    "point_current",
    "roll_back",
    "running_python",
    "site_folders",
    "venvs_folder",
]

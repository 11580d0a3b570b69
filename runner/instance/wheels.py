"""The midprobe wheels the instance serves to its MIDs for upgrades (``instance serve --wheels DIR``).

A wheel is served when its file name is a midprobe wheel's (``midprobe-0.1.2-py3-none-any.whl``)
and its major version is the one the instance accepts; each comes with its SHA-256, which the MID
checks before it installs it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path

from midprobe.capabilities.errors import ConfigError
from midprobe.runner.queue.lifecycle import check_version, major_version, wheel_version
from midprobe.runner.queue.wire import ServedWheel

_READ_BYTES = 1 << 20


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Orders versions as numbers where they are numbers (``0.1.10`` after ``0.1.9``)."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in version.replace("+", ".").split(".")
    )


def newest(versions: Sequence[str]) -> str:
    return max(versions, key=_version_key)


def choose_version(wheels: Sequence[ServedWheel], asked: str | None) -> str:
    """The version an upgrade goes to: ``asked`` if a wheel of it is served, else the newest served.

    ``ConfigError`` (naming ``--version``) when no wheel is served or none of ``asked``.
    """
    served = [wheel.version for wheel in wheels]
    if not served:
        raise ConfigError(
            "the instance serves no midprobe wheel it accepts (instance serve --wheels DIR)",
            field="--version",
        )
    if asked is None:
        return newest(served)
    version = check_version(asked, "--version")
    if version not in served:
        raise ConfigError(
            f"no wheel of version {version} is served (served: {', '.join(sorted(served, key=_version_key))})",
            field="--version",
        )
    return version


class WheelShelf:
    """The wheels folder: lists what it holds (digests kept while a file is unchanged) and finds one by name."""

    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise ConfigError(f"{folder} is not a folder", field="--wheels")
        self.folder = folder
        self._digests: dict[str, tuple[int, int, str]] = {}
        self._lock = threading.Lock()

    def _digest(self, path: Path) -> tuple[int, str]:
        status = path.stat()
        with self._lock:
            known = self._digests.get(path.name)
        if known is not None and known[:2] == (status.st_mtime_ns, status.st_size):
            return status.st_size, known[2]
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(_READ_BYTES):
                digest.update(chunk)
        with self._lock:
            self._digests[path.name] = (status.st_mtime_ns, status.st_size, digest.hexdigest())
        return status.st_size, digest.hexdigest()

    def wheels(self, accepted_major: str) -> list[ServedWheel]:
        """The midprobe wheels of ``accepted_major`` (every major when it is ""), oldest version first."""
        served: list[ServedWheel] = []
        for path in sorted(self.folder.glob("midprobe-*.whl")):
            version = wheel_version(path.name)
            if version is None or not path.is_file():
                continue
            if accepted_major and major_version(version) != accepted_major:
                continue
            size, sha256 = self._digest(path)
            served.append(ServedWheel(path.name, version, sha256, size))
        return sorted(served, key=lambda wheel: _version_key(wheel.version))

    def path(self, filename: str, accepted_major: str) -> Path | None:
        """The file of the served wheel named ``filename`` (``None`` when no such wheel is served)."""
        if not any(wheel.filename == filename for wheel in self.wheels(accepted_major)):
            return None
        return self.folder / filename


__all__ = ["WheelShelf", "choose_version", "newest"]

"""SSH host keys seen before: a store protocol, an in-memory store and one backed by a known_hosts file.

The file is OpenSSH's ``known_hosts`` format (``host`` or ``[host]:port``, key type,
base64 key; hashed ``|1|salt|hash`` names are read too), so ``ssh-keygen -F`` and
``ssh`` understand what midprobe recorded and the other way round.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import fnmatch
import hashlib
import hmac
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import paramiko

from midprobe.capabilities.errors import ConfigError


@dataclass(frozen=True)
class HostKey:
    """The public host key a server offered (nothing secret)."""

    key_type: str  # "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa", ...
    key_base64: str

    @classmethod
    def from_pkey(cls, key: paramiko.PKey) -> HostKey:
        return cls(key.get_name(), key.get_base64())

    @property
    def fingerprint(self) -> str:
        """``SHA256:...`` exactly as ``ssh-keygen -l`` prints it."""
        digest = hashlib.sha256(base64.b64decode(self.key_base64)).digest()
        return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")

    def describe(self) -> str:
        return f"{self.key_type} {self.fingerprint}"


class KnownHostsStore(Protocol):
    """Where host keys are remembered between connections."""

    def lookup(self, host: str, port: int) -> tuple[HostKey, ...]:
        """Every key recorded for ``host``/``port`` (any key type)."""
        ...

    def remember(self, host: str, port: int, key: HostKey) -> None:
        """Record ``key``, replacing a recorded key of the same type."""
        ...


def host_pattern(host: str, port: int) -> str:
    """How known_hosts names a host: ``host`` on port 22, ``[host]:port`` elsewhere."""
    return host if port == 22 else f"[{host}]:{port}"


class InMemoryKnownHosts:
    """Host keys for the life of the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, dict[str, HostKey]] = {}

    def lookup(self, host: str, port: int) -> tuple[HostKey, ...]:
        with self._lock:
            return tuple(self._keys.get(host_pattern(host, port), {}).values())

    def remember(self, host: str, port: int, key: HostKey) -> None:
        with self._lock:
            self._keys.setdefault(host_pattern(host, port), {})[key.key_type] = key


@dataclass(frozen=True)
class KnownHostsLine:
    """One parsed line of a known_hosts file."""

    patterns: tuple[str, ...]  # plain names, or "|1|salt|hash" entries
    key: HostKey
    marker: str | None = None  # "@cert-authority" / "@revoked"

    def matches(self, name: str) -> bool:
        for pattern in self.patterns:
            negated = pattern.startswith("!")
            if _pattern_matches(pattern.lstrip("!"), name):
                return not negated
        return False


def parse_known_hosts(text: str) -> list[KnownHostsLine]:
    """Every usable line of a known_hosts file (pure; comments and broken lines are skipped)."""
    lines: list[KnownHostsLine] = []
    for raw in text.splitlines():
        fields = raw.strip().split()
        if not fields or fields[0].startswith("#"):
            continue
        marker = None
        if fields[0].startswith("@"):
            marker, fields = fields[0], fields[1:]
        if len(fields) < 3:
            continue
        try:
            base64.b64decode(fields[2], validate=True)
        except binascii.Error:
            continue
        lines.append(KnownHostsLine(tuple(fields[0].split(",")), HostKey(fields[1], fields[2]), marker))
    return lines


def format_known_hosts_line(host: str, port: int, key: HostKey) -> str:
    return f"{host_pattern(host, port)} {key.key_type} {key.key_base64}\n"


def _pattern_matches(pattern: str, name: str) -> bool:
    if pattern.startswith("|1|"):
        try:
            _, _, salt, digest = pattern.split("|")
            expected = hmac.new(base64.b64decode(salt), name.encode(), hashlib.sha1).digest()
            return hmac.compare_digest(expected, base64.b64decode(digest))
        except (ValueError, binascii.Error):
            return False
    if "*" in pattern or "?" in pattern:
        return fnmatch.fnmatchcase(name, pattern)
    return pattern == name


class FileKnownHosts:
    """A known_hosts file: read on every lookup that follows a change, appended under a file lock."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        self._cache: tuple[float, int, list[KnownHostsLine]] | None = None

    def lookup(self, host: str, port: int) -> tuple[HostKey, ...]:
        name = host_pattern(host, port)
        return tuple(line.key for line in self._lines() if line.marker is None and line.matches(name))

    def remember(self, host: str, port: int, key: HostKey) -> None:
        name = host_pattern(host, port)
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a+", encoding="utf-8") as handle:
                    fcntl.flock(handle, fcntl.LOCK_EX)
                    handle.seek(0)
                    lines = handle.read().splitlines(keepends=True)
                    kept = [line for line in lines if not _replaces(line, name, key)]
                    if len(kept) != len(lines):
                        handle.seek(0)
                        handle.truncate()
                        handle.writelines(kept)
                    handle.write(format_known_hosts_line(host, port, key))
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as error:
                raise ConfigError(f"cannot write: {error.strerror or error}", source=str(self.path)) from None
            self._cache = None

    def _lines(self) -> list[KnownHostsLine]:
        with self._lock:
            try:
                stat = self.path.stat()
            except FileNotFoundError:
                return []
            except OSError as error:
                raise ConfigError(f"cannot read: {error.strerror or error}", source=str(self.path)) from None
            if self._cache is not None and self._cache[:2] == (stat.st_mtime, stat.st_size):
                return self._cache[2]
            try:
                lines = parse_known_hosts(self.path.read_text(encoding="utf-8", errors="replace"))
            except OSError as error:
                raise ConfigError(f"cannot read: {error.strerror or error}", source=str(self.path)) from None
            self._cache = (stat.st_mtime, stat.st_size, lines)
            return lines


def _replaces(raw_line: str, name: str, key: HostKey) -> bool:
    """Is ``raw_line`` a plain entry for exactly ``name`` with ``key``'s type (so the new key replaces it)?"""
    parsed = parse_known_hosts(raw_line)
    return (
        bool(parsed)
        and parsed[0].marker is None
        and parsed[0].patterns == (name,)
        and (parsed[0].key.key_type == key.key_type)
    )


def keys_by_type(keys: Iterable[HostKey]) -> dict[str, HostKey]:
    return {key.key_type: key for key in keys}

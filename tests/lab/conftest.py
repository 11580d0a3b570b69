"""Session fixtures for lab tests: one running default lab and a thread inside its scanner namespace.

``lab`` brings up fixtures/lab/default.toml once per session and tears it down at the end;
``lab_thread`` runs in-process code (sockets, asyncio) inside the scanner namespace.
Tests that use either are marked ``lab`` automatically.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from midprobe.runner.lab import Lab, NamespaceThread

LAB_FIXTURES = frozenset({"lab", "lab_thread"})
#: Held shared while a test keeps a detached lab (one `lab up`/`demo` left running), exclusively while
#: a test runs `lab down --all` (which removes every detached lab): the two never overlap across
#: pytest-xdist workers.
DETACHED_LABS_LOCK = Path(tempfile.gettempdir()) / "midprobe-tests-detached-labs.lock"
TINY_PROFILE = Path(__file__).resolve().parents[2] / "fixtures" / "lab" / "tiny.toml"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if LAB_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.lab)


def _require_lab_tools() -> None:
    if os.geteuid() != 0:
        pytest.fail("the lab needs root (network namespaces); run the lab tests as root", pytrace=False)
    tools = ("ip", "sshd", "snmpd", "dnsmasq", "nmap", "snmpget", "ssh", "tcpdump", "ping")
    missing = [tool for tool in tools if not (shutil.which(tool) or shutil.which(f"/usr/sbin/{tool}"))]
    if missing:
        pytest.fail(f"lab tools missing: {', '.join(missing)}; run `make system-deps`", pytrace=False)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The default lab (linux1, switch1, printer1, web1, silent1, dns1), up for the whole session."""
    _require_lab_tools()
    with Lab.up() as running:
        yield running


@pytest.fixture(scope="session")
def lab_thread(lab: Lab) -> Iterator[NamespaceThread]:
    """A dedicated thread inside the lab's scanner namespace (198.18.0.1)."""
    with lab.namespace_thread() as thread:
        yield thread


@pytest.fixture(scope="session")
def tiny_profile() -> Path:
    """fixtures/lab/tiny.toml: one host (solo, 198.18.0.10) with HTTP on 8080."""
    return TINY_PROFILE


def _hold_detached_labs_lock(mode: int) -> Iterator[None]:
    with DETACHED_LABS_LOCK.open("a") as handle:
        fcntl.flock(handle, mode)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture
def keeps_a_detached_lab() -> Iterator[None]:
    """For a test whose lab outlives the command that started it: no `lab down --all` meanwhile."""
    yield from _hold_detached_labs_lock(fcntl.LOCK_SH)


@pytest.fixture
def removes_detached_labs() -> Iterator[None]:
    """For a test that runs `lab down --all`: waits until no other test keeps a detached lab."""
    yield from _hold_detached_labs_lock(fcntl.LOCK_EX)

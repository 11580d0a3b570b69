"""Session fixtures for lab tests: one running default lab and a thread inside its scanner namespace.

``lab`` brings up fixtures/lab/default.toml once per session and tears it down at the end;
``lab_thread`` runs in-process code (sockets, asyncio) inside the scanner namespace.
Tests that use either are marked ``lab`` automatically.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from midprobe.runner.lab import Lab, NamespaceThread

LAB_FIXTURES = frozenset({"lab", "lab_thread"})
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

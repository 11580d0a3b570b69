"""Scale mode (`lab up --scale N`): one namespace answers for every address of a routed 198.19.0.0/N.

A /24 here, so it is quick; bench/bench_scale.py runs the /18 and the /16. Whole processes, as a
user runs them: `midprobe scan` (both engines) and `midprobe sweep` from the scanner namespace,
cross-checked against nmap where nmap is installed.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from midprobe.runner.lab import Lab

pytestmark = pytest.mark.lab

TINY_PROFILE = Path(__file__).resolve().parents[2] / "fixtures" / "lab" / "tiny.toml"
MIDPROBE = [sys.executable, "-m", "midprobe.runner"]
#: Open in scale mode: 22, 80, 443; closed (RST): the rest.
PORTS = "21,22,80,443,8080"


@pytest.fixture(scope="module")
def scale_lab() -> Iterator[Lab]:
    with Lab.up(TINY_PROFILE, scale=24) as lab:
        yield lab


def _every_address(lab: Lab) -> set[str]:
    assert lab.scale is not None
    return {str(address) for address in ipaddress.IPv4Network(lab.scale.network)}


def _scan(lab: Lab, *flags: str) -> dict[str, list[int]]:
    assert lab.scale is not None
    done = lab.run(
        [*MIDPROBE, "scan", "--lab", "-n", "--no-banners", "--format", "json", "-p", PORTS, *flags,
         lab.scale.network],
        timeout=120,
    )  # fmt: skip
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert all(row.get("incomplete") in (None, False, []) for row in rows), done.stderr
    return {row["address"]: row["open_tcp_ports"] for row in rows}


def test_the_lab_describes_its_routed_network(scale_lab: Lab) -> None:
    assert scale_lab.scale is not None
    assert scale_lab.scale.network == "198.19.0.0/24"
    assert scale_lab.scale.open_tcp_ports == (22, 80, 443)
    again = Lab.attach(scale_lab.prefix)
    assert again.scale == scale_lab.scale
    # Routed, not on the scanner's subnet: the scanner reaches it through the gateway.
    routes = scale_lab.run(["ip", "route", "show", scale_lab.scale.network]).stdout
    assert f"via {scale_lab.scale.gateway}" in routes


@pytest.mark.parametrize("engine", ["syn", "connect"])
def test_a_scan_finds_every_address_with_the_three_open_ports(scale_lab: Lab, engine: str) -> None:
    found = _scan(scale_lab, "--engine", engine)
    assert set(found) == _every_address(scale_lab)
    assert {tuple(ports) for ports in found.values()} == {(22, 80, 443)}


def test_a_sweep_finds_every_address_by_icmp(scale_lab: Lab) -> None:
    assert scale_lab.scale is not None
    done = scale_lab.run(
        [*MIDPROBE, "sweep", "--lab", "--format", "json", scale_lab.scale.network], timeout=60
    )
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert {row["address"] for row in rows} == _every_address(scale_lab)
    assert {row["method"] for row in rows} == {"icmp"}
    assert "256 of 256 addresses answered" in done.stderr


@pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap is not installed")
def test_nmap_sees_the_same_open_ports(scale_lab: Lab) -> None:
    assert scale_lab.scale is not None
    done = scale_lab.run(
        ["nmap", "-sT", "-T5", "-n", "-Pn", "-p", PORTS, "-oG", "-", scale_lab.scale.network]
    )
    open_lines = [line for line in done.stdout.splitlines() if "Ports:" in line]
    assert len(open_lines) == 256
    assert all("22/open/" in line and "443/open/" in line and "21/closed/" in line for line in open_lines)


def test_a_scale_outside_16_to_24_is_refused_in_one_line() -> None:
    done = subprocess.run(
        [*MIDPROBE, "lab", "up", "--scale", "12"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "--scale" in done.stderr
    assert "at least 16 and at most 24" in done.stderr
    assert "Traceback" not in done.stderr

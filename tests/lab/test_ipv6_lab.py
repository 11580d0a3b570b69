"""IPv6 in the lab: 2001:db8::/64 on the lab bridge, swept with ICMPv6 echo and port-scanned."""

from __future__ import annotations

import ipaddress
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from midprobe.runner.lab import Lab
from midprobe.runner.lab.credentials_file import lab_credentials_toml

pytestmark = pytest.mark.lab

MIDPROBE = [sys.executable, "-m", "midprobe.runner"]


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_every_lab_host_has_an_ipv6_address_on_the_lab_network(lab: Lab) -> None:
    network = ipaddress.IPv6Network(lab.network6)
    addresses = [host.address6 for host in lab.hosts]
    assert len(set(addresses)) == len(addresses)
    assert all(ipaddress.IPv6Address(address) in network for address in addresses)
    assert lab.host("linux1").address6 == "2001:db8::10"  # the twin of 198.18.0.10


def test_the_sweep_finds_the_ipv6_hosts_with_icmpv6(lab: Lab) -> None:
    done = lab.run([*MIDPROBE, "sweep", "--lab", "--format", "json", "--wait", "300", "2001:db8::/120"])
    rows = _json_lines(done.stdout)
    silent = lab.host("silent1").address6  # answers neighbour discovery, drops every IP packet
    expected = {lab.scanner_address6, *(h.address6 for h in lab.hosts)} - {silent}
    # Addresses the kernel would not solicit (its neighbour table, shared by every lab on the
    # machine, full) are listed as incomplete, never as down; each lab host still answers.
    undecided = {row["address"] for row in rows if "incomplete" in row}
    assert not undecided & expected
    rows = [row for row in rows if "incomplete" not in row]
    addresses = [row["address"] for row in rows]
    assert set(addresses) == expected
    assert addresses == sorted(addresses, key=lambda a: int(ipaddress.IPv6Address(a)))
    assert {row["method"] for row in rows} == {"icmp"}
    assert f"{len(expected)} of 256 addresses answered (icmp)" in done.stderr


@pytest.mark.parametrize("engine", ["syn", "connect"])
def test_the_scan_finds_open_ports_over_ipv6(lab: Lab, engine: str) -> None:
    linux1, web1 = lab.host("linux1"), lab.host("web1")
    done = lab.run(
        [*MIDPROBE, "scan", "--lab", "-n", "--format", "json", "--engine", engine, "-p", "22,80,8080",
         linux1.address6, web1.address6],
        timeout=90,
    )  # fmt: skip
    found = {report["address"]: report for report in _json_lines(done.stdout)}
    assert sorted(found) == sorted([linux1.address6, web1.address6])
    assert found[linux1.address6]["open_tcp_ports"] == [22, 80]
    assert found[web1.address6]["open_tcp_ports"] == [8080]
    assert found[linux1.address6]["banners"]["22"].startswith("SSH-2.0-OpenSSH")
    assert f"({engine} scan, icmp ping)" in done.stderr  # host discovery swept them with ICMPv6 first
    assert all(report["engine"] == engine for report in found.values())


def test_a_credentialed_scan_over_ipv6_logs_in_and_asks_snmp(lab: Lab, tmp_path: Path) -> None:
    credentials = tmp_path / "creds.toml"
    credentials.write_text(lab_credentials_toml(lab))
    linux1, switch1 = lab.host("linux1"), lab.host("switch1")
    done = lab.run(
        [*MIDPROBE, "scan", "--lab", "-n", "--format", "json", "-p", "22", "--credentials", str(credentials),
         linux1.address6, switch1.address6],
        timeout=120,
    )  # fmt: skip
    found = {report["address"]: report for report in _json_lines(done.stdout)}
    assert found[linux1.address6]["ci_class"] == "cmdb_ci_linux_server"
    assert found[linux1.address6]["credential_id"]["ssh"] in ("lab-ssh", "lab-key")  # the SSH login over IPv6
    assert "uname says Linux" in found[linux1.address6]["evidence"]
    assert found[switch1.address6]["ci_class"] == "cmdb_ci_ip_switch"  # its snmpd answers on udp6
    for secret in lab.credentials.secrets():
        assert secret not in done.stdout + done.stderr

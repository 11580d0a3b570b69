"""No packet leaves the lab: no route out of any lab namespace, and the root namespace sees no lab traffic."""

from __future__ import annotations

import ipaddress
import json
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from midprobe.runner.lab import Lab, netns

pytestmark = pytest.mark.lab

LAB_FILTER = ["net", "198.18.0.0/15", "or", "net", "2001:db8::/32"]
LAB_NETWORKS = (ipaddress.ip_network("198.18.0.0/15"), ipaddress.ip_network("2001:db8::/32"))
#: IPv6 routes every interface may have that lead to nothing beyond its link.
LINK_ONLY = (ipaddress.ip_network("fe80::/10"), ipaddress.ip_network("ff00::/8"))


def _count_pcap_packets(path: Path) -> int:
    """Records in a classic pcap file (what ``tcpdump -w`` writes)."""
    data = path.read_bytes()
    if len(data) < 24:
        raise AssertionError(f"{path} is not a pcap file (tcpdump did not start?)")
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    count, offset = 0, 24
    while offset + 16 <= len(data):
        (included,) = struct.unpack_from(endian + "I", data, offset + 8)
        offset += 16 + included
        count += 1
    return count


def _start_tcpdump(argv_prefix: list[str], interface: str, output: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [*argv_prefix, "tcpdump", "-i", interface, "-n", "-U", "-w", str(output), *LAB_FILTER],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    lines = []
    for _ in range(5):  # "tcpdump: listening on ..." once the capture runs
        lines.append(process.stderr.readline())
        if "listening on" in lines[-1]:
            return process
    process.kill()
    process.communicate(timeout=10)
    raise AssertionError(f"tcpdump did not start: {''.join(lines)}")


def _stop(process: subprocess.Popen[str]) -> None:
    time.sleep(0.5)  # let the last packets reach the capture buffer
    process.terminate()
    process.communicate(timeout=10)


def test_root_namespace_captures_no_lab_packet_during_a_scan(lab: Lab, tmp_path: Path) -> None:
    root_capture = tmp_path / "root.pcap"
    bridge_capture = tmp_path / "bridge.pcap"
    root = _start_tcpdump([], "any", root_capture)
    bridge = _start_tcpdump(["ip", "netns", "exec", lab.bridge_namespace], "br0", bridge_capture)
    try:
        ports = sorted({p for h in lab.hosts for p in h.open_tcp_ports} | {23, 443})
        lab.run(
            ["nmap", "-sT", "-Pn", "-n", "-T4", "--max-retries", "1", "-p", ",".join(map(str, ports)),
             *(h.address for h in lab.hosts)],
            timeout=120,
        )  # fmt: skip
        lab.run(["snmpget", "-v2c", "-c", lab.credentials.snmp_community, "-t", "1", "-r", "0",
                 lab.host("linux1").address, "1.3.6.1.2.1.1.5.0"])  # fmt: skip
        lab.run(["ping", "-c", "2", "-i", "0.2", "-W", "1", lab.host("switch1").address])
        lab.run(
            ["nmap", "-6", "-sT", "-Pn", "-n", "-T4", "--max-retries", "1", "-p", ",".join(map(str, ports)),
             *(h.address6 for h in lab.hosts)],
            timeout=120,
        )  # fmt: skip
        lab.run(["ping", "-6", "-c", "2", "-i", "0.2", "-W", "1", lab.host("switch1").address6])
    finally:
        _stop(root)
        _stop(bridge)
    seen_in_lab = _count_pcap_packets(bridge_capture)
    probes = 2 * len(ports) * len(lab.hosts)  # over IPv4 and IPv6
    assert seen_in_lab > probes, "the control capture on the lab bridge should see the whole scan"
    assert _count_pcap_packets(root_capture) == 0, "lab packets reached the machine's root namespace"


def test_no_lab_namespace_has_a_way_out(lab: Lab) -> None:
    for name in lab.namespaces:
        for family in ("-4", "-6"):
            routes = json.loads(
                netns.ip("-j", family, "route", "show", "table", "all", namespace=name) or "[]"
            )
            for route in routes:
                destination = route.get("dst", "")
                assert destination != "default", (name, route)
                if route.get("type") in ("local", "broadcast", "multicast", "blackhole", "anycast"):
                    continue
                network = ipaddress.ip_network(destination, strict=False)
                if any(network.version == link.version and network.subnet_of(link) for link in LINK_ONLY):  # type: ignore[arg-type]
                    continue
                inside = [lab_net for lab_net in LAB_NETWORKS if lab_net.version == network.version]
                assert any(network.subnet_of(lab_net) for lab_net in inside), (name, route)  # type: ignore[arg-type]


def test_the_root_namespace_holds_no_part_of_the_lab(lab: Lab) -> None:
    addresses = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    assert "198.18." not in addresses
    assert "2001:db8:" not in addresses
    for family in ("-4", "-6"):
        routes = subprocess.run(
            ["ip", family, "route", "show", "table", "all"], capture_output=True, text=True, check=True
        )
        assert "198.18." not in routes.stdout
        assert "2001:db8:" not in routes.stdout
    bridge_links = netns.ip("-o", "link", "show", "master", "br0", namespace=lab.bridge_namespace)
    assert bridge_links.count("master br0") == len(lab.hosts) + 1  # every host and the scanner


def test_lab_mode_refuses_a_namespace_with_a_route_out(lab: Lab, tmp_path: Path) -> None:
    """``--lab`` run where lab addresses would follow a default route out: refused before any packet."""
    name = f"{lab.prefix}-routed"
    netns.add_namespace(name)
    try:
        # A veth pair with both ends in the namespace (what is sent stays there, unanswered) and a
        # default route on one end: a machine's namespace in small.
        netns.ip("link", "add", "out0", "type", "veth", "peer", "name", "out1", namespace=name)
        netns.ip("link", "set", "out1", "up", namespace=name)
        netns.ip("addr", "add", "192.0.2.2/24", "dev", "out0", namespace=name)
        netns.ip("link", "set", "out0", "up", namespace=name)
        netns.ip("route", "add", "default", "via", "192.0.2.1", namespace=name)
        inside = ["ip", "netns", "exec", name, sys.executable, "-m", "midprobe.runner"]
        commands = [
            ["scan", "--lab", "-n", "-p", "22", "198.18.0.10"],
            ["agent", "--lab", "--once", "--name", "a1", "--queue", f"sqlite:///{tmp_path}/ecc.db"],
        ]
        for command in commands:
            done = subprocess.run(
                [*inside, *command], capture_output=True, text=True, timeout=60, check=False
            )
            assert done.returncode == 2, (command, done.stderr)
            assert "routes outside the lab (0.0.0.0/0 dev out0" in done.stderr
            assert "midprobe lab exec" in done.stderr
            assert len(done.stderr.strip().splitlines()) == 1
            assert "Traceback" not in done.stderr
        # The same namespace with an IPv6 default route only: refused too, for IPv6 targets as well.
        netns.ip("route", "del", "default", namespace=name)
        netns.ip("addr", "del", "192.0.2.2/24", "dev", "out0", namespace=name)  # and its subnet's route
        netns.ip("-6", "route", "add", "default", "via", "fe80::1", "dev", "out0", namespace=name)
        for command in (
            ["scan", "--lab", "-n", "-p", "22", "2001:db8::10"],
            ["sweep", "--lab", "2001:db8::/120"],
        ):
            done = subprocess.run(
                [*inside, *command], capture_output=True, text=True, timeout=60, check=False
            )
            assert done.returncode == 2, (command, done.stderr)
            assert "routes outside the lab (::/0 dev out0" in done.stderr
            assert len(done.stderr.strip().splitlines()) == 1
        # Loopback never leaves the host: lab mode may scan it from anywhere.
        done = subprocess.run(
            [*inside, "scan", "--lab", "-n", "--no-banners", "-p", "9", "127.0.0.1"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    finally:
        netns.delete_namespace(name)

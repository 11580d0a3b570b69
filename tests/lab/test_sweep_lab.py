"""HostSweep against the lab: ARP and ICMP on the lab subnet, the TCP-connect fallback (forced, and
for real in a process without CAP_NET_RAW), and a sparse /22 behind a router in large mode."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from defusedxml import ElementTree

from midprobe.capabilities.errors import ProbeParameterError
from midprobe.probes.base import ProbeContext
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.sweep.host_sweep import PROBE, SweepResult
from midprobe.runner.lab import Lab, NamespaceThread

pytestmark = pytest.mark.lab

TINY_PROFILE = Path(__file__).resolve().parents[2] / "fixtures" / "lab" / "tiny.toml"


def _sweep(thread: NamespaceThread, targets: str, **parameters: str) -> SweepResult:
    params = PROBE.parse_params(targets, parameters)
    context = ProbeContext(policy=TargetPolicy.lab())
    return thread.run_async(lambda: PROBE.run(params, context))


def _addresses(result: SweepResult) -> set[str]:
    return {host.address for host in result.alive}


def _answering(lab: Lab) -> set[str]:
    """Lab hosts that answer IP (every profile but the silent one), and the scanner itself."""
    return {h.address for h in lab.hosts if h.profile != "silent"} | {lab.scanner_address}


def test_the_default_sweep_arps_the_subnet_and_sees_every_neighbour(
    lab: Lab, lab_thread: NamespaceThread
) -> None:
    result = _sweep(lab_thread, lab.network)
    assert result.complete
    assert result.raw_sockets
    assert result.fallback_reason is None
    assert result.addresses == 256
    assert result.unchecked == 0
    # The silent host drops IP but still answers ARP, like a host behind a dropping firewall
    # (nmap -sn reports it up too). Our own address is pinged: no neighbour answers ARP for it.
    assert _addresses(result) == {h.address for h in lab.hosts} | {lab.scanner_address}
    by_address = {host.address: host for host in result.alive}
    assert by_address[lab.scanner_address].method == "icmp"
    neighbours = [by_address[h.address] for h in lab.hosts]
    assert {host.method for host in neighbours} == {"arp"}
    macs = [host.mac for host in neighbours]
    assert all(mac is not None and len(mac) == 17 for mac in macs)
    assert len(set(macs)) == len(macs)
    assert result.methods_used == ("arp", "icmp")


def test_a_forced_arp_sweep_asks_only_arp(lab: Lab, lab_thread: NamespaceThread) -> None:
    hosts = f"{lab.hosts[0].address}-{lab.hosts[-1].address}"
    result = _sweep(lab_thread, hosts, method="arp")
    assert result.methods_used == ("arp",)
    assert [(h.address, h.method) for h in result.alive] == [(h.address, "arp") for h in lab.hosts]


def test_an_icmp_sweep_finds_exactly_the_hosts_that_answer(lab: Lab, lab_thread: NamespaceThread) -> None:
    result = _sweep(lab_thread, lab.network, method="icmp")
    assert result.complete
    assert result.methods_used == ("icmp",)
    assert _addresses(result) == _answering(lab)
    assert lab.host("silent1").address not in _addresses(result)
    assert all(host.mac is None and host.rtt_ms >= 0 for host in result.alive)


def test_the_tcp_connect_sweep_counts_open_and_refused_ports_as_alive(
    lab: Lab, lab_thread: NamespaceThread
) -> None:
    result = _sweep(lab_thread, lab.network, method="tcp", wait="500")
    assert result.complete
    assert result.methods_used == ("tcp-connect",)
    assert not result.raw_sockets
    assert result.fallback_reason is None  # asked for, not fallen back to
    assert _addresses(result) == _answering(lab)
    by_address = {host.address: host for host in result.alive}
    # dns1 has none of the ping ports open: a reset (refused) is enough.
    dns1 = by_address[lab.host("dns1").address]
    assert dns1.port_state == "refused"
    assert dns1.port in (22, 80, 443, 135, 445, 3389)
    # linux1 listens on 22 and 80: whichever answered first, its state matches the port.
    linux1 = by_address[lab.host("linux1").address]
    assert linux1.port_state == ("open" if linux1.port in (22, 80) else "refused")


def test_only_open_ports_asked_for_a_host_with_no_ping_port_still_finds_it(
    lab: Lab, lab_thread: NamespaceThread
) -> None:
    web1 = lab.host("web1")
    result = _sweep(lab_thread, web1.address, method="tcp", tcp_ports="8080")
    assert [(h.address, h.port, h.port_state) for h in result.alive] == [(web1.address, 8080, "open")]


_WITHOUT_RAW = """
import asyncio, json, sys
import xml.etree.ElementTree as ET
from midprobe.probes.base import ProbeContext
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.sweep.host_sweep import PROBE
params = PROBE.parse_params(sys.argv[1], json.loads(sys.argv[2]))
result = asyncio.run(PROBE.run(params, ProbeContext(policy=TargetPolicy.lab())))
print(ET.tostring(PROBE.encode_results(result)[0], encoding="unicode"))
"""


def _run_without_cap_net_raw(lab: Lab, targets: str, parameters: Mapping[str, str]) -> str:
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to drop CAP_NET_RAW", pytrace=False)
    argv = [
        "setpriv", "--inh-caps=-net_raw", "--bounding-set=-net_raw",
        sys.executable, "-c", _WITHOUT_RAW, targets, json.dumps(dict(parameters)),
    ]  # fmt: skip
    return lab.run(argv, timeout=60).stdout


def test_without_raw_sockets_the_sweep_falls_back_to_tcp_and_says_so(lab: Lab) -> None:
    hosts = f"{lab.hosts[0].address}-{lab.hosts[-1].address}"
    xml = _run_without_cap_net_raw(lab, hosts, {"wait": "500"})
    sweep = ElementTree.fromstring(xml).find("sweep")
    assert sweep is not None
    assert (sweep.get("method"), sweep.get("methods_used"), sweep.get("raw_sockets")) == (
        "auto",
        "tcp-connect",
        "false",
    )
    assert "raw sockets are not permitted" in sweep.get("fallback", "")
    assert {host.get("method") for host in sweep.iter("host")} == {"tcp-connect"}
    assert {host.get("ip") for host in sweep.iter("host")} == _answering(lab) - {lab.scanner_address}


def test_a_user_with_only_cap_net_raw_sweeps_with_raw_sockets(lab: Lab) -> None:
    # What `midprobe mid setup --raw-sockets` gives its dynamic user: not root, CAP_NET_RAW alone.
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to run as nobody with CAP_NET_RAW", pytrace=False)
    caps = ["--inh-caps=-all,+net_raw", "--ambient-caps=-all,+net_raw", "--bounding-set=-all,+net_raw"]
    argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *caps, sys.executable, "-c"]
    hosts = f"{lab.hosts[0].address}-{lab.hosts[-1].address}"
    xml = lab.run([*argv, _WITHOUT_RAW, hosts, '{"wait": "500"}'], timeout=60).stdout
    sweep = ElementTree.fromstring(xml).find("sweep")
    assert sweep is not None
    assert (sweep.get("raw_sockets"), sweep.get("fallback")) == ("true", None)
    # ARP, so the silent host is seen too, as with root (and nmap -sn)
    assert {host.get("method") for host in sweep.iter("host")} == {"arp"}
    assert {host.get("ip") for host in sweep.iter("host")} == {h.address for h in lab.hosts}


def test_forcing_icmp_without_raw_sockets_is_refused_with_the_reason(lab: Lab) -> None:
    argv = ["setpriv", "--inh-caps=-net_raw", "--bounding-set=-net_raw", sys.executable, "-c", _WITHOUT_RAW]
    done = lab.run([*argv, lab.hosts[0].address, '{"method": "icmp"}'], check=False, timeout=60)
    assert done.returncode != 0
    assert "method=icmp needs raw sockets: raw sockets are not permitted" in done.stderr


# --- large mode: a sparse /22 behind a router ------------------------------------------------------


@pytest.fixture(scope="module")
def large_lab() -> Iterator[Lab]:
    with Lab.up(TINY_PROFILE, large=True) as big:
        yield big


@pytest.fixture(scope="module")
def large_thread(large_lab: Lab) -> Iterator[NamespaceThread]:
    with large_lab.namespace_thread() as thread:
        yield thread


def test_a_sparse_slash_22_is_swept_completely_within_its_deadline(
    large_lab: Lab, large_thread: NamespaceThread
) -> None:
    assert large_lab.large is not None
    result = _sweep(large_thread, large_lab.large.network, sweep_timeout="30000")
    assert result.complete
    assert result.unchecked == 0
    assert result.methods_used == ("icmp",)  # behind the gateway: no ARP
    assert result.addresses == 1024
    assert _addresses(result) == set(large_lab.large.alive)
    assert result.silent == 1024 - len(large_lab.large.alive)


def test_arp_cannot_be_forced_onto_a_routed_network(large_lab: Lab, large_thread: NamespaceThread) -> None:
    assert large_lab.large is not None
    with pytest.raises(ProbeParameterError, match="not on a directly attached subnet"):
        _sweep(large_thread, large_lab.large.network, method="arp")


def test_the_sweep_command_lists_who_answers_sorted_with_a_summary(lab: Lab) -> None:
    argv = [sys.executable, "-m", "midprobe.runner", "sweep", "--lab", "--format", "json", lab.network]
    done = lab.run(argv)
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    addresses = [row["address"] for row in rows]
    expected = sorted({lab.scanner_address, *(host.address for host in lab.hosts)}, key=_ip_key)
    assert addresses == expected  # silent1 answers ARP on the lab's subnet, as nmap -sn reports it
    assert {row["method"] for row in rows if row["address"] != lab.scanner_address} == {"arp"}
    assert f"{len(expected)} of 256 addresses answered" in done.stderr

    icmp = lab.run([*argv[:-1], "--method", "icmp", lab.network])
    answered = {json.loads(line)["address"] for line in icmp.stdout.splitlines()}
    assert lab.host("silent1").address not in answered  # it drops every IP packet
    assert answered == set(expected) - {lab.host("silent1").address}


def _ip_key(address: str) -> tuple[int, ...]:
    return tuple(int(part) for part in address.split("."))

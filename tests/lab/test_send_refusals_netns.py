"""Hosts the kernel will not send to (ENOBUFS, as when its neighbour table is full) come out
incomplete, with real traffic to the others, in a private namespace of our own.

The engines and the sweep get sockets that refuse every send to 127.0.0.2
(``tests/support/refusing_sockets.py``); everything else goes out for real on the namespace's
loopback, where this module's listeners answer. ``midprobe scan`` runs in-process on the
namespace's thread, its Shazzam probe scanning with such an engine: the warning line, the exit
status and the outputs are the command's own.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from midprobe.probes import shazzam
from midprobe.probes.shazzam import decode_results
from midprobe.probes.sweep import host_sweep
from midprobe.probes.sweep.common import EngineOptions
from midprobe.probes.sweep.raw import RawSweeper
from midprobe.probes.sweep.routes import read_routing
from midprobe.probes.targets import parse_targets
from midprobe.probes.tcpscan.common import SEND_RETRY_BUDGET, HostScan, ScanOptions
from midprobe.probes.tcpscan.connect import ConnectScanner
from midprobe.probes.tcpscan.engine import scan
from midprobe.probes.tcpscan.syn import SynScanner
from midprobe.runner.cli.main import main
from midprobe.runner.ecc.payload import decode_input_payload
from tests.lab.shazzam_support import PrivateNamespace, private_namespace
from tests.support.refusing_sockets import Refusals

pytestmark = pytest.mark.lab

OPEN = (22, 80)
REFUSED = "127.0.0.2"


@pytest.fixture(scope="module")
def netns() -> Iterator[PrivateNamespace]:
    with private_namespace() as namespace:
        for port in OPEN:
            namespace.listen("127.0.0.1", port)
        yield namespace


@pytest.mark.parametrize("engine", ["connect", "syn"])
def test_the_refused_host_is_incomplete_and_the_others_are_scanned_for_real(
    netns: PrivateNamespace, engine: str
) -> None:
    refusals = Refusals(REFUSED, passthrough=True)
    scanner = (
        SynScanner(open_sender=refusals.syn_sender)
        if engine == "syn"
        else ConnectScanner(open_socket=refusals.stream_socket)
    )
    options = ScanOptions(connect_wait=0.5, retries=1)

    def run() -> dict[str, HostScan]:
        hosts = scan(parse_targets("127.0.0.1-3"), (*OPEN, 443), options, engine=scanner)
        return {str(host.address): host for host in hosts}

    hosts = netns.call(run)
    assert (hosts["127.0.0.1"].open_ports, hosts["127.0.0.1"].refused_ports) == (OPEN, (443,))
    assert hosts["127.0.0.3"].refused_ports == (*OPEN, 443)  # the listeners are on 127.0.0.1 only
    assert hosts["127.0.0.1"].incomplete is None
    assert hosts["127.0.0.3"].incomplete is None
    assert "ENOBUFS" in (hosts[REFUSED].incomplete or "")
    assert not hosts[REFUSED].alive
    assert refusals.count == SEND_RETRY_BUDGET + 1


def test_the_icmp_sweep_finds_the_others_alive_and_the_refused_address_incomplete(
    netns: PrivateNamespace,
) -> None:
    refusals = Refusals(REFUSED, passthrough=True)

    async def sweep() -> tuple[list[str], list[str]]:
        options = EngineOptions(wait=0.5, retries=1, rate=None, deadline=time.monotonic() + 30)
        sweeper = RawSweeper(read_routing(), options, use_arp=False, open_icmp=refusals.icmp_socket)
        tally = await sweeper.run(parse_targets("127.0.0.1-3"))
        return sorted(str(a.target.address) for a in tally.alive), [
            str(t.address) for t, _ in tally.incomplete
        ]

    alive, incomplete = netns.call(lambda: asyncio.run(sweep()))
    assert alive == ["127.0.0.1", "127.0.0.3"]
    assert incomplete == [REFUSED]


def _scan_command(
    netns: PrivateNamespace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """``midprobe scan --lab -n -Pn --no-banners -p 22,80 ARGS 127.0.0.1-3`` with the refusing engine."""
    refusals = Refusals(REFUSED, passthrough=True)
    monkeypatch.setattr(
        shazzam.PROBE, "engines", lambda _: ConnectScanner(open_socket=refusals.stream_socket)
    )
    argv = ["scan", "--lab", "-n", "-Pn", "--no-banners", "-p", "22,80", *args, "127.0.0.1-3"]

    def run() -> int:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        return int(exit_info.value.code or 0)

    code = netns.call(run)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_scan_says_how_many_hosts_are_incomplete_and_why_and_exits_1(
    netns: PrivateNamespace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _scan_command(netns, monkeypatch, capsys, "--format", "json")
    assert code == 1, err
    lines = {data["address"]: data for data in map(json.loads, out.splitlines())}
    assert sorted(lines) == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    assert lines["127.0.0.1"]["open_tcp_ports"] == list(OPEN)
    assert "ENOBUFS" in lines[REFUSED]["incomplete"]
    assert "incomplete" not in lines["127.0.0.1"]
    (warning,) = [line for line in err.splitlines() if line.startswith("midprobe: warning:")]
    assert warning.startswith(
        "midprobe: warning: incomplete: 1 host(s) not fully scanned, the kernel refused sends to them "
        "(ENOBUFS: neighbour table full or no buffer space); they are not known to be down; "
    )
    # Which advice follows is the machine's neighbour-table counters' to say (other scans may fill
    # the shared table meanwhile); each names what to do.
    assert warning.endswith(("or scan fewer addresses at once", "scan slower (--rate)")), warning
    assert "2 host(s) up, 1 incomplete, 3 addresses scanned" in err


def test_scan_to_an_ecc_file_marks_the_host_and_the_payload_incomplete(
    netns: PrivateNamespace,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    output = tmp_path / "scan.xml"
    code, _, err = _scan_command(netns, monkeypatch, capsys, "--format", "ecc", "-o", str(output))
    assert code == 1, err
    payload = decode_input_payload(output.read_text(encoding="utf-8"))
    assert payload.result_code == 1
    assert (payload.error or "").startswith("incomplete: 1 host(s) not fully scanned")
    assert payload.echoed("complete") == "false"
    assert payload.echoed("hosts_incomplete") == "1"
    hosts = {host.ip: host for host in decode_results(payload.results).hosts}
    assert "ENOBUFS" in (hosts[REFUSED].incomplete or "")
    assert not hosts[REFUSED].alive
    assert hosts["127.0.0.1"].open_ports == OPEN


def test_scan_table_shows_the_incomplete_host(
    netns: PrivateNamespace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _scan_command(netns, monkeypatch, capsys)
    assert code == 1, err
    lines = out.splitlines()
    row = next(index for index, line in enumerate(lines) if line.startswith(f"{REFUSED} "))
    assert lines[row].split()[-1] == "incomplete"
    assert lines[row + 1].startswith("    ! incomplete: the kernel refused")
    assert lines[-1].startswith("incomplete: 1 host(s) not fully scanned")


def test_sweep_lists_the_address_it_could_not_ask_as_incomplete(
    netns: PrivateNamespace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    refusals = Refusals(REFUSED, passthrough=True)
    monkeypatch.setattr(
        host_sweep, "RawSweeper", functools.partial(RawSweeper, open_icmp=refusals.icmp_socket)
    )

    def run() -> int:
        with pytest.raises(SystemExit) as exit_info:
            main(["sweep", "--lab", "--method", "icmp", "--wait", "500", "--format", "json", "127.0.0.1-3"])
        return int(exit_info.value.code or 0)

    assert netns.call(run) == 0
    captured = capsys.readouterr()
    lines = {data["address"]: data for data in map(json.loads, captured.out.splitlines())}
    assert sorted(lines) == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    assert lines["127.0.0.1"]["method"] == "icmp"
    assert "ENOBUFS" in lines[REFUSED]["incomplete"]
    assert "2 of 3 addresses answered (icmp); 0 silent, 0 unreachable" in captured.err
    assert "; 1 incomplete (the kernel refused the requests: ENOBUFS)" in captured.err

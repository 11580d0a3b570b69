"""A host whose sends the kernel keeps refusing (ENOBUFS: neighbour table full) comes out incomplete,
after a bounded number of tries, and the other hosts of the scan are decided as usual.

The engines get sockets that refuse every send to 127.0.0.2 (``tests/support/refusing_sockets.py``)
and put nothing on the wire for the other addresses (these tests run in the machine's own
namespace): a SYN is swallowed (so the port is unanswered), a connect is answered "refused".
"""

from __future__ import annotations

import pytest

from midprobe.probes.targets import parse_targets
from midprobe.probes.tcpscan.common import SEND_RETRY_BUDGET, HostScan, ScanOptions
from midprobe.probes.tcpscan.connect import ConnectScanner
from midprobe.probes.tcpscan.engine import scan
from midprobe.probes.tcpscan.syn import SynScanner, raw_sockets_allowed
from tests.support.refusing_sockets import Refusals

TARGETS = "127.0.0.1-3"
REFUSED = "127.0.0.2"
PORTS = (22, 80, 443)
#: Short waits: a swallowed SYN is given up quickly.
OPTIONS = ScanOptions(connect_wait=0.05, min_timeout=0.05, retries=0)

needs_raw_sockets = pytest.mark.skipif(not raw_sockets_allowed(), reason="the SYN engine needs raw sockets")


def _by_address(hosts: list[HostScan]) -> dict[str, HostScan]:
    return {str(host.address): host for host in hosts}


def _syn(refusals: Refusals, **engine: int) -> dict[str, HostScan]:
    scanner = SynScanner(open_sender=refusals.syn_sender, **engine)
    return _by_address(list(scan(parse_targets(TARGETS), PORTS, OPTIONS, engine=scanner)))


def _connect(refusals: Refusals, **engine: int) -> dict[str, HostScan]:
    scanner = ConnectScanner(open_socket=refusals.stream_socket, **engine)
    return _by_address(list(scan(parse_targets(TARGETS), PORTS, OPTIONS, engine=scanner)))


def _assert_incomplete(host: HostScan) -> None:
    assert host.incomplete is not None
    assert "ENOBUFS" in host.incomplete
    assert "neighbour table" in host.incomplete
    assert (host.open_ports, host.refused_ports, host.unreachable) == ((), (), False)
    assert host.unanswered == 0, "ports never probed were counted as unanswered (filtered)"


@needs_raw_sockets
def test_syn_a_host_the_kernel_will_not_send_to_is_incomplete_and_the_others_are_scanned() -> None:
    refusals = Refusals(REFUSED)
    hosts = _syn(refusals)
    assert sorted(hosts) == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    _assert_incomplete(hosts[REFUSED])
    for address in ("127.0.0.1", "127.0.0.3"):  # sent (swallowed), so decided: unanswered
        assert (hosts[address].incomplete, hosts[address].unanswered) == (None, len(PORTS))
    assert refusals.count == SEND_RETRY_BUDGET + 1


@needs_raw_sockets
def test_syn_the_retry_budget_bounds_the_sends_tried() -> None:
    refusals = Refusals(REFUSED)
    hosts = _syn(refusals, send_retry_budget=2)
    _assert_incomplete(hosts[REFUSED])
    assert "refused 3 sends" in (hosts[REFUSED].incomplete or "")
    assert refusals.count == 3


@needs_raw_sockets
def test_syn_a_refusal_within_the_budget_is_retried_and_the_host_is_complete() -> None:
    refusals = Refusals(REFUSED, limit=SEND_RETRY_BUDGET)
    hosts = _syn(refusals)
    assert (hosts[REFUSED].incomplete, hosts[REFUSED].unanswered) == (None, len(PORTS))
    assert refusals.count == SEND_RETRY_BUDGET


def test_connect_a_host_the_kernel_will_not_send_to_is_incomplete_and_the_others_are_scanned() -> None:
    refusals = Refusals(REFUSED)
    hosts = _connect(refusals)
    assert sorted(hosts) == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    _assert_incomplete(hosts[REFUSED])
    for address in ("127.0.0.1", "127.0.0.3"):
        assert (hosts[address].incomplete, hosts[address].refused_ports) == (None, PORTS)
    assert refusals.count == SEND_RETRY_BUDGET + 1


def test_connect_the_retry_budget_bounds_the_attempts() -> None:
    refusals = Refusals(REFUSED)
    hosts = _connect(refusals, send_retry_budget=0)
    _assert_incomplete(hosts[REFUSED])
    assert refusals.count == 1


def test_connect_a_refusal_within_the_budget_is_retried_and_the_host_is_complete() -> None:
    refusals = Refusals(REFUSED, limit=3)
    hosts = _connect(refusals)
    assert (hosts[REFUSED].incomplete, hosts[REFUSED].refused_ports) == (None, PORTS)
    assert refusals.count == 3


def test_connect_a_whole_scan_the_kernel_refuses_ends_with_every_host_incomplete() -> None:
    """Before, 50 refusals with nothing in flight ended the whole scan with an error."""
    refusals = Refusals("127.0.0.1")
    scanner = ConnectScanner(open_socket=refusals.stream_socket, send_retry_budget=1)
    (host,) = scan(parse_targets("127.0.0.1"), range(1, 200), OPTIONS, engine=scanner)
    assert host.incomplete is not None
    assert refusals.count == 2  # the host given up, its other ports with it

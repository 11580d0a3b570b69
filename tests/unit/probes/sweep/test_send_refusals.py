"""A sweep's address the kernel will not send to (ENOBUFS) is incomplete, never silent or down, after
a bounded number of tries; the other addresses are decided as usual.

The sweepers get raw sockets that refuse every request to one address
(``tests/support/refusing_sockets.py``) and swallow the others (these tests run in the machine's
own namespace: nothing leaves), so the others come out silent.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from midprobe.probes.sweep.common import EngineOptions, Tally
from midprobe.probes.sweep.host_sweep import IncompleteHost, SweepResult, encode_sweep
from midprobe.probes.sweep.icmp6 import Icmp6Pinger
from midprobe.probes.sweep.raw import RawSweeper, raw_sockets_allowed
from midprobe.probes.sweep.routes import Routing
from midprobe.probes.targets import parse_targets
from midprobe.probes.tcpscan.common import SEND_RETRY_BUDGET
from midprobe.runner.discovery.readers import read_sweep
from midprobe.runner.ecc.payload import decode_input_payload, encode_input_payload
from tests.support.refusing_sockets import Refusals

needs_raw_sockets = pytest.mark.skipif(not raw_sockets_allowed()[0], reason="the sweeps need raw sockets")


def _options() -> EngineOptions:
    return EngineOptions(wait=0.05, retries=1, rate=None, deadline=time.monotonic() + 30, min_wait=0.05)


def _incomplete(tally: Tally) -> dict[str, str]:
    return {str(target.address): reason for target, reason in tally.incomplete}


@needs_raw_sockets
def test_icmp_an_address_the_kernel_will_not_send_to_is_incomplete() -> None:
    refusals = Refusals("198.18.0.2")
    sweeper = RawSweeper(
        Routing(routes=(), local=frozenset()), _options(), use_arp=False, open_icmp=refusals.icmp_socket
    )
    tally = asyncio.run(sweeper.run(parse_targets("198.18.0.1-3")))
    (reason,) = _incomplete(tally).values()
    assert list(_incomplete(tally)) == ["198.18.0.2"]
    assert "ENOBUFS" in reason
    assert (tally.silent, tally.unreachable, tally.alive) == (2, 0, [])
    assert tally.complete
    assert tally.decided == 3
    assert refusals.count == SEND_RETRY_BUDGET + 1


@needs_raw_sockets
def test_icmp_a_refusal_within_the_budget_is_retried() -> None:
    refusals = Refusals("198.18.0.2", limit=SEND_RETRY_BUDGET)
    sweeper = RawSweeper(
        Routing(routes=(), local=frozenset()), _options(), use_arp=False, open_icmp=refusals.icmp_socket
    )
    tally = asyncio.run(sweeper.run(parse_targets("198.18.0.1-3")))
    assert (tally.incomplete, tally.silent) == ([], 3)


@needs_raw_sockets
def test_icmp6_an_address_the_kernel_will_not_send_to_is_incomplete() -> None:
    refusals = Refusals("2001:db8::2")
    pinger = Icmp6Pinger(_options(), open_socket=refusals.icmp6_socket, send_retry_budget=3)
    tally = asyncio.run(pinger.run(parse_targets("2001:db8::1 2001:db8::2 2001:db8::3")))
    assert list(_incomplete(tally)) == ["2001:db8::2"]
    assert "refused 4 sends (ENOBUFS" in _incomplete(tally)["2001:db8::2"]
    assert (tally.silent, tally.unreachable, tally.alive) == (2, 0, [])
    assert refusals.count == 4
    assert pinger.window.window.cuts >= 1, "a refused send is a loss: the window was never cut"
    assert pinger.window.in_flight == 0, "every attempt gave its probe back"


def test_the_sweep_result_lists_an_incomplete_address_and_the_scan_reads_it_back() -> None:
    result = SweepResult(
        targets="198.18.0.0/30",
        method="icmp",
        methods_used=("icmp",),
        raw_sockets=True,
        fallback_reason=None,
        addresses=4,
        alive=(),
        unreachable=0,
        silent=3,
        unchecked=0,
        probes_sent=9,
        elapsed_ms=5,
        complete=True,
        incomplete=(IncompleteHost("198.18.0.2", "the kernel refused 17 sends (ENOBUFS: ...)"),),
    )
    element = encode_sweep(result)
    summary = element.find("sweep")
    assert summary is not None
    assert summary.get("incomplete") == "1"
    (host,) = summary.iter("host")
    assert (host.get("ip"), host.get("alive")) == ("198.18.0.2", "false")
    assert host.get("incomplete", "").startswith("the kernel refused 17 sends")
    reading = read_sweep(decode_input_payload(encode_input_payload([element], probe_time_ms=5)))
    assert (reading.alive, reading.incomplete) == (frozenset(), frozenset({"198.18.0.2"}))

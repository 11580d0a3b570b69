"""Shazzam's streaming entry points (``ShazzamProbe.scan``, ``stream``) and ``run`` on top of them,
driven by an in-memory port scan engine (no network): prepared before anything is sent, streamed
lazily, and name lookups only where the policy allows them."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import xml.etree.ElementTree as ET

import pytest

from midprobe.capabilities.errors import ProbeParameterError, TargetNotAllowed
from midprobe.probes.base import ProbeContext
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.shazzam import ShazzamParams, ShazzamProbe, ShazzamResult
from midprobe.probes.tcpscan.common import HostScan
from tests.support.table_engine import TableEngine

LAB = ProbeContext(policy=TargetPolicy.lab())


@pytest.fixture
def reverse_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The system resolver's reverse lookups, answered from a table (and recorded)."""
    asked: list[str] = []

    def answer(address: str) -> tuple[str, list[str], list[str]]:
        asked.append(address)
        if address == "198.18.0.10":
            return "linux1.sandiego.lab.example.test", [], [address]
        raise socket.herror(1, "Unknown host")

    monkeypatch.setattr(socket, "gethostbyaddr", answer)
    return asked


def _probe(engine: TableEngine) -> ShazzamProbe:
    return ShazzamProbe(engines=engine.choose)


def test_the_scan_is_prepared_before_it_starts_and_streams_lazily() -> None:
    engine = TableEngine({"10.0.0.1": (80,)})
    probe = _probe(engine)
    params = probe.parse_params("10.0.0.0/8", {"ports": "22,80", "engine": "connect"})

    async def scenario() -> tuple[int, int, str, list[HostScan]]:
        scan = await probe.scan(params, ProbeContext())
        before = engine.consumed
        hosts: list[HostScan] = []
        try:
            async for host in scan:
                hosts.append(host)
                if len(hosts) == 2:
                    break
        finally:
            await scan.aclose()
        return before, scan.hosts_scanned, scan.engine, hosts

    before, count, engine_name, hosts = asyncio.run(scenario())
    assert before == 0  # nothing scanned until the stream is read
    assert count == 1 << 24  # counted, never expanded
    assert (engine_name, engine.chosen) == ("table", ["connect"])
    assert [(str(h.address), h.open_ports, h.refused_ports) for h in hosts] == [
        ("10.0.0.0", (), (22,)),
        ("10.0.0.1", (80,), (22,)),
    ]
    assert engine.consumed < 1100  # the bridge's queue (1024 hosts) and a few in hand, not 16 million
    assert engine.closed.is_set()


def test_run_is_the_streamed_scan_with_the_readers_on_top() -> None:
    engine = TableEngine({"198.18.0.12": (9100,)}, refused=())
    probe = _probe(engine)
    params = probe.parse_params("198.18.0.10-13", {"ports": "22,9100", "scanners": "GenericTCP"})

    result: ShazzamResult = asyncio.run(probe.run(params, LAB))

    assert (result.engine, result.hosts_scanned, result.ports) == ("table", 4, (22, 9100))
    (host,) = result.hosts  # the silent addresses are left out
    assert (host.ip, host.open_ports, host.alive, host.active) == ("198.18.0.12", (9100,), True, True)
    assert engine.chosen == ["auto"]


def test_a_target_outside_the_policy_is_refused_before_an_engine_is_chosen() -> None:
    engine = TableEngine({})
    probe = _probe(engine)
    params = probe.parse_params("198.18.0.10 192.0.2.1", {"ports": "22"})

    with pytest.raises(TargetNotAllowed, match=r"192\.0\.2\.1"):
        asyncio.run(probe.scan(params, LAB))
    with pytest.raises(TargetNotAllowed, match=r"192\.0\.2\.1"):
        asyncio.run(probe.run(params, LAB))
    assert (engine.chosen, engine.consumed) == ([], 0)


def test_reverse_names_in_lab_mode_without_the_lab_dns_are_refused_before_the_scan(
    reverse_lookups: list[str],
) -> None:
    engine = TableEngine({"198.18.0.10": (22,)})
    probe = _probe(engine)
    params = probe.parse_params("198.18.0.10", {"ports": "22", "resolve_names": "true"})

    with pytest.raises(ProbeParameterError, match=r"'resolve_names'.*lab's DNS server"):
        asyncio.run(probe.run(params, LAB))
    assert (engine.chosen, engine.consumed) == ([], 0)
    assert reverse_lookups == []  # the system resolver was not asked


def test_reverse_names_through_the_lab_dns_never_ask_the_system_resolver(
    reverse_lookups: list[str],
) -> None:
    engine = TableEngine({"198.18.0.10": (22,)}, refused=())
    probe = _probe(engine)
    params = probe.parse_params(
        "198.18.0.10", {"ports": "22", "resolve_names": "true", "scanners": "GenericTCP"}
    )
    # The deadline has passed: the lab's DNS server is the one asked, and nothing goes out to it.
    context = ProbeContext(policy=TargetPolicy.lab("198.18.0.15"), deadline=0.0)

    host_names = asyncio.run(_host_names(probe, params, context))

    assert host_names == {"198.18.0.10": ("", "")}
    assert reverse_lookups == []


def test_reverse_names_outside_lab_mode_come_from_the_system_resolver(reverse_lookups: list[str]) -> None:
    engine = TableEngine({"198.18.0.10": (22,), "198.18.0.11": (22,)}, refused=())
    probe = _probe(engine)
    params = probe.parse_params(
        "198.18.0.10-11", {"ports": "22", "resolve_names": "true", "scanners": "GenericTCP"}
    )

    host_names = asyncio.run(_host_names(probe, params, ProbeContext()))

    assert host_names == {
        "198.18.0.10": ("linux1", "sandiego.lab.example.test"),
        "198.18.0.11": ("", ""),
    }
    assert sorted(reverse_lookups) == ["198.18.0.10", "198.18.0.11"]


async def _host_names(
    probe: ShazzamProbe, params: ShazzamParams, context: ProbeContext
) -> dict[str, tuple[str, str]]:
    result = await probe.run(params, context)
    return {host.ip: (host.host_name, host.domain_name) for host in result.hosts}


def test_the_result_stream_gives_each_host_as_decided_with_the_progress_in_its_shell() -> None:
    engine = TableEngine({"198.18.0.11": (22,)}, refused=())
    probe = ShazzamProbe(resolver=lambda name: ipaddress.ip_address("198.18.0.11"), engines=engine.choose)
    params = probe.parse_params(
        "198.18.0.10 web1.lab.example.test 198.18.0.12", {"ports": "22", "scanners": "GenericTCP"}
    )

    async def scenario() -> tuple[ET.Element, list[ET.Element | None], ET.Element]:
        stream = await probe.stream(params, LAB)
        before = stream.shell()
        try:
            items = [item async for item in stream]
        finally:
            await stream.aclose()
        return before, items, stream.shell()

    before, items, after = asyncio.run(scenario())
    # Before the scan: what preparing found (the names resolved), nothing decided yet.
    assert (before.get("hosts_scanned"), before.get("hosts_done"), before.get("hosts_alive")) == (
        "3",
        "0",
        "0",
    )
    assert [(t.get("name"), t.get("ip")) for t in before.iter("target")] == [
        ("web1.lab.example.test", "198.18.0.11")
    ]
    # One item per address, in the scan's order: the silent ones as None.
    assert [None if item is None else item.get("ip") for item in items] == [None, "198.18.0.11", None]
    assert (after.get("hosts_done"), after.get("hosts_alive"), list(after)) == ("3", "1", [])

"""Both TCP scan engines and the Shazzam probe on real sockets, in a private namespace of our own.

The namespace's loopback carries listeners this module opens; 198.18.9.50 is a silent neighbour
(SYNs leave and are never answered) and 198.18.77.7 has no route. Nothing else is reachable.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from midprobe.capabilities.errors import ProbeParameterError, ProbeTimeout, TargetNotAllowed, TargetSpecError
from midprobe.probes.base import ProbeContext
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.shazzam import PROBE, ShazzamProbe, decode_results
from midprobe.probes.targets import Target, parse_targets
from midprobe.probes.tcpscan.common import HostScan, ScanOptions
from midprobe.probes.tcpscan.engine import scan, scan_async
from tests.lab.shazzam_support import (
    SILENT_ADDRESS,
    UNROUTED_ADDRESS,
    PrivateNamespace,
    private_namespace,
)

pytestmark = pytest.mark.lab

ENGINES = ["connect", "syn"]
#: Includes ports inside the ephemeral range (where self-connects happen) and both ends of the range.
OPEN_V4 = (1, 22, 80, 8080, 40000, 50123, 65535)
OPEN_V6 = (22, 443, 40001)


@pytest.fixture(scope="module")
def netns() -> Iterator[PrivateNamespace]:
    with private_namespace() as namespace:
        for port in OPEN_V4:
            namespace.listen("127.0.0.1", port)
        for port in OPEN_V6:
            namespace.listen("::1", port)
        yield namespace


def scan_in(
    namespace: PrivateNamespace, spec: str, ports: range | tuple[int, ...], engine: str, **options: float
) -> list[HostScan]:
    scan_options = ScanOptions(**options)  # type: ignore[arg-type]
    return namespace.call(lambda: list(scan(parse_targets(spec), ports, scan_options, engine=engine)))


@pytest.mark.parametrize("engine", ENGINES)
def test_all_65535_ports_give_exactly_the_open_ones(netns: PrivateNamespace, engine: str) -> None:
    (host,) = scan_in(netns, "127.0.0.1", range(1, 65536), engine)
    assert host.open_ports == OPEN_V4
    assert len(host.refused_ports) == 65535 - len(OPEN_V4)
    assert set(host.refused_ports).isdisjoint(OPEN_V4)
    assert (host.unanswered, host.unreachable, host.engine) == (0, False, engine)
    assert host.alive
    assert host.active


@pytest.mark.parametrize("engine", ENGINES)
def test_both_address_families_in_one_spec(netns: PrivateNamespace, engine: str) -> None:
    ports = (*range(1, 1025), 8080, 40000, 40001)
    hosts = {str(h.address): h for h in scan_in(netns, "127.0.0.1 ::1 127.0.0.2", ports, engine)}
    assert hosts["127.0.0.1"].open_ports == (1, 22, 80, 8080, 40000)
    assert hosts["::1"].open_ports == (22, 443, 40001)
    # the listeners are bound to 127.0.0.1 only: on .2 everything is refused
    assert hosts["127.0.0.2"].open_ports == ()
    assert hosts["127.0.0.2"].alive
    assert not hosts["127.0.0.2"].active
    assert all(len(h.open_ports) + len(h.refused_ports) == len(ports) for h in hosts.values())


def test_self_connect_on_loopback_is_not_reported_open() -> None:
    with private_namespace() as namespace:
        # Ten source ports for every connect: a probe to one of them often gets it as its own
        # source port, and TCP simultaneous open then "connects" the socket to itself.
        subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                namespace.name,
                "sysctl",
                "-qw",
                "net.ipv4.ip_local_port_range=40000 40009",
            ],
            check=True,
            timeout=20,
        )
        targets = range(40000, 40010)
        for _ in range(60):
            (host,) = scan_in(namespace, "127.0.0.1", targets, "connect")
            assert host.open_ports == ()
            assert host.refused_ports == tuple(targets)

        def naive_self_connects() -> int:
            """The same probes without the check: how often a socket really connected to itself."""
            found = 0
            for _ in range(60):
                for port in targets:
                    with socket.socket() as sock:
                        # close with RST: a self-connection left in TIME_WAIT would bar the next one
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        sock.settimeout(1)
                        if (
                            sock.connect_ex(("127.0.0.1", port)) == 0
                            and sock.getsockname() == sock.getpeername()
                        ):
                            found += 1
            return found

        assert namespace.call(naive_self_connects) > 0  # the trap was really there


@pytest.mark.parametrize("engine", ENGINES)
def test_unanswered_probes_are_retransmitted_then_given_up(netns: PrivateNamespace, engine: str) -> None:
    options = ScanOptions(connect_wait=0.2, retries=2)

    def work() -> list[HostScan]:
        return list(scan(parse_targets(SILENT_ADDRESS), range(1, 21), options, engine=engine))

    (host,), syns = netns.count_syns("mpsa", SILENT_ADDRESS, work)
    assert (host.alive, host.unanswered, host.open_ports, host.refused_ports) == (False, 20, (), ())
    assert syns == 20 * 3  # first try and two retransmissions per port


@pytest.mark.parametrize("engine", ENGINES)
def test_retransmissions_to_one_host_do_not_disturb_another(netns: PrivateNamespace, engine: str) -> None:
    # The rate limit keeps 127.0.0.1's probes going out while the silent host's first tries time
    # out, so the two hosts' probes interleave.
    options = ScanOptions(connect_wait=0.2, retries=1, rate=5000.0)

    def work() -> list[HostScan]:
        return list(
            scan(parse_targets(f"{SILENT_ADDRESS} 127.0.0.1"), range(1, 2001), options, engine=engine)
        )

    hosts, syns = netns.count_syns("mpsa", SILENT_ADDRESS, work)
    found = {str(host.address): host for host in hosts}
    assert syns == 2000 * 2
    assert found[SILENT_ADDRESS].unanswered == 2000
    local = found["127.0.0.1"]
    assert local.open_ports == (1, 22, 80)
    assert (len(local.refused_ports), local.unanswered) == (1997, 0)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_subnet_of_silent_neighbours_finishes_within_its_timeouts(
    netns: PrivateNamespace, engine: str
) -> None:
    # Nobody answers ARP on mpsa: every SYN waits in the kernel (~3 s) and holds send-buffer space
    # meanwhile. The scan must still end after its own timeouts, far inside this deadline.
    options = ScanOptions(connect_wait=0.2, retries=1, deadline=time.monotonic() + 2.5)
    spec = parse_targets("198.18.9.0/24", exclude="198.18.9.1")
    hosts = netns.call(lambda: list(scan(spec, range(1, 9), options, engine=engine)))
    assert len(hosts) == 255
    assert not any(host.alive for host in hosts)
    assert sum(host.unanswered for host in hosts) == 255 * 8


@pytest.mark.parametrize("engine", ENGINES)
def test_unroutable_host_gives_up_at_once(netns: PrivateNamespace, engine: str) -> None:
    (host,) = scan_in(netns, UNROUTED_ADDRESS, range(1, 1001), engine)
    assert host.unreachable
    assert not host.alive
    assert host.unanswered == 1000


@pytest.mark.parametrize("engine", ENGINES)
def test_rate_limit_spreads_the_probes(netns: PrivateNamespace, engine: str) -> None:
    started = time.monotonic()
    (host,) = scan_in(netns, "127.0.0.1", range(1, 1001), engine, rate=2000.0)
    elapsed = time.monotonic() - started
    assert host.open_ports == (1, 22, 80)
    # 1000 probes at 2000/s with a burst of 64 cannot take less than (1000 - 64) / 2000 s
    assert elapsed >= 0.45


@pytest.mark.parametrize("engine", ENGINES)
def test_deadline_stops_a_scan_that_would_run_on(netns: PrivateNamespace, engine: str) -> None:
    options = ScanOptions(connect_wait=1.0, retries=10, deadline=time.monotonic() + 0.3)
    with pytest.raises(ProbeTimeout, match="timed out"):
        netns.call(lambda: list(scan(parse_targets(SILENT_ADDRESS), range(1, 50), options, engine=engine)))


@pytest.mark.parametrize("engine", ENGINES)
def test_hosts_stream_out_long_before_a_big_spec_is_consumed(netns: PrivateNamespace, engine: str) -> None:
    pulled = 0

    def targets() -> Iterator[Target]:
        nonlocal pulled
        for target in parse_targets("127.0.0.0/16"):
            pulled += 1
            yield target

    def first_host() -> HostScan:
        results = scan(targets(), (22, 80), engine=engine)
        try:
            return next(results)
        finally:
            results.close()

    host = netns.call(first_host)
    assert host.alive
    assert pulled < 5000  # of 65,536: the rest was never expanded


def test_async_scan_can_be_left_early(netns: PrivateNamespace) -> None:
    async def first_two() -> list[str]:
        seen = []
        async for host in scan_async(parse_targets("127.0.0.0/16"), (22,), engine="connect"):
            seen.append(str(host.address))
            if len(seen) == 2:
                break
        return seen

    assert len(netns.thread.run_async(first_two)) == 2
    assert not [t for t in threading.enumerate() if t.name.startswith("midprobe-connect-scan")]


# --- the probe ---------------------------------------------------------------------------------


def run_shazzam(
    namespace: PrivateNamespace,
    source: str,
    parameters: dict[str, str],
    *,
    probe: ShazzamProbe = PROBE,
    policy: TargetPolicy | None = None,
) -> ET.Element:
    # These tests are about the port scan: the banner readers (tested in test_shazzam_lab.py) stay off.
    params = probe.parse_params(source, {"scanners": "GenericTCP", **parameters})
    context = ProbeContext(policy=policy or TargetPolicy.lab())
    result = namespace.thread.run_async(lambda: probe.run(params, context))
    (element,) = probe.encode_results(result)
    return element


@pytest.mark.parametrize("engine", ENGINES)
def test_shazzam_reports_each_answering_host_and_omits_silent_ones(
    netns: PrivateNamespace, engine: str
) -> None:
    element = run_shazzam(
        netns,
        f"127.0.0.1-2 {SILENT_ADDRESS}",
        {"ports": "22,80,81,8080", "engine": engine, "connect_wait": "200"},
    )
    assert (element.get("engine"), element.get("hosts_scanned"), element.get("hosts_alive")) == (
        engine,
        "3",
        "2",
    )
    hosts = {host.get("ip"): host for host in element.findall("host")}
    assert set(hosts) == {"127.0.0.1", "127.0.0.2"}
    first = hosts["127.0.0.1"]
    assert (first.get("alive"), first.get("active")) == ("true", "true")
    assert [(s.get("port"), s.get("result"), s.get("portprobe")) for s in first.findall("scanner")] == [
        ("22", "open", "ssh"),
        ("80", "open", "http"),
        ("81", "refused", "unknown"),
        ("8080", "open", "http-proxy"),
    ]
    assert all(s.get("name") == "GenericTCP" and s.get("protocol") == "tcp" for s in first.iter("scanner"))
    second = hosts["127.0.0.2"]
    assert (second.get("alive"), second.get("active")) == ("true", "false")
    assert {s.get("result") for s in second.iter("scanner")} == {"refused"}
    assert decode_results([element]).hosts_scanned == 3


def test_policy_refuses_before_anything_is_sent(netns: PrivateNamespace) -> None:
    params = PROBE.parse_params(f"{SILENT_ADDRESS} 10.1.2.3", {"ports": "1-100", "engine": "connect"})
    context = ProbeContext(policy=TargetPolicy.lab())

    def attempt() -> str:
        try:
            asyncio.run(PROBE.run(params, context))
        except TargetNotAllowed as error:
            return str(error)
        return "scanned"

    message, syns = netns.count_syns("mpsa", SILENT_ADDRESS, attempt)
    assert "10.1.2.3" in message
    assert syns == 0


def test_host_names_come_from_the_injected_resolver(netns: PrivateNamespace) -> None:
    names = {"solo.sandiego.lab.example.test": "127.0.0.1"}

    def resolve(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        if name not in names:
            raise TargetSpecError(f"cannot resolve host name {name!r}")
        return ipaddress.ip_address(names[name])

    probe = ShazzamProbe(resolver=resolve)
    element = run_shazzam(netns, "solo.sandiego.lab.example.test", {"ports": "22,23"}, probe=probe)
    (host,) = element.findall("host")
    assert (host.get("ip"), host.get("hostName"), host.get("domainName")) == (
        "127.0.0.1",
        "solo",
        "sandiego.lab.example.test",
    )
    with pytest.raises(ProbeParameterError, match=r"'source'.*nowhere\.lab\.example\.test"):
        run_shazzam(netns, "nowhere.lab.example.test", {}, probe=probe)


def test_reverse_names_when_asked(netns: PrivateNamespace) -> None:
    probe = ShazzamProbe(reverse_resolver=lambda ip: "loop.lab.example.test" if ip == "127.0.0.1" else None)
    element = run_shazzam(netns, "127.0.0.1-2", {"ports": "22", "resolve_names": "true"}, probe=probe)
    names = {h.get("ip"): (h.get("hostName"), h.get("domainName")) for h in element.iter("host")}
    assert names == {"127.0.0.1": ("loop", "lab.example.test"), "127.0.0.2": ("", "")}

"""Shazzam against the lab: the lab subnet with the discovery ports, every port of one host, the
BannerTCP/HTTP scanners on the lab's real daemons; and, in private namespaces, the SNMP tap against a
real snmpd answering ``public`` and the readers on servers the test runs."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import dns.resolver
import pytest

from midprobe.capabilities.errors import TargetSpecError
from midprobe.probes.base import ProbeContext
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.shazzam import (
    PROBE,
    ShazzamHost,
    ShazzamProbe,
    ShazzamResult,
    ShazzamScanner,
    decode_results,
)
from midprobe.probes.targets import IPAddress
from midprobe.runner.lab import Lab, NamespaceThread, load_profile
from tests.lab.shazzam_support import (
    DROPPED_TCP_PORTS,
    listener_banner,
    openssh_version,
    snmp_only_agent,
    snmp_packets_in,
)
from tests.lab.snmpd_harness import SYS_DESCR, SYS_OBJECT_ID, SnmpdTestBed

pytestmark = pytest.mark.lab

ENGINES = ["connect", "syn"]


def run_shazzam(
    thread: NamespaceThread, source: str, parameters: dict[str, str], probe: ShazzamProbe = PROBE
) -> ShazzamResult:
    params = probe.parse_params(source, parameters)
    context = ProbeContext(policy=TargetPolicy.lab())
    return thread.run_async(lambda: probe.run(params, context))


@pytest.mark.parametrize("engine", ENGINES)
def test_lab_subnet_scan_finds_each_host_with_its_open_ports(
    lab: Lab, lab_thread: NamespaceThread, engine: str
) -> None:
    ports = sorted({port for host in lab.hosts for port in host.open_tcp_ports} | {23, 443, 3389})
    # The port scan alone (GenericTCP): the other scanners are tested below.
    result = run_shazzam(
        lab_thread,
        lab.network,
        {
            "ports": ",".join(map(str, ports)),
            "engine": engine,
            "connect_wait": "300",
            "retries": "1",
            "scanners": "GenericTCP",
        },
    )
    assert result.engine == engine
    assert result.hosts_scanned == ipaddress.ip_network(lab.network).num_addresses
    found = {host.ip: host for host in result.hosts if host.ip != lab.scanner_address}
    expected = {host.address: host for host in lab.hosts if host.profile != "silent"}
    assert set(found) == set(expected)  # the silent host and the empty addresses are left out
    for address, lab_host in expected.items():
        host = found[address]
        assert host.open_ports == tuple(sorted(lab_host.open_tcp_ports)), lab_host.name
        assert host.alive
        assert host.active == bool(lab_host.open_tcp_ports)
        refused = {s.port for s in host.scanners if s.result == "refused"}
        assert refused == set(ports) - set(lab_host.open_tcp_ports), lab_host.name


@pytest.mark.parametrize("engine", ENGINES)
def test_every_port_of_one_host(lab: Lab, lab_thread: NamespaceThread, engine: str) -> None:
    linux = lab.host("linux1")
    result = run_shazzam(lab_thread, linux.address, {"ports": "-", "engine": engine})
    (host,) = result.hosts
    assert host.open_ports == tuple(sorted(linux.open_tcp_ports))
    assert all(s.result == "open" for s in host.scanners)  # refused ports are not listed for -p-


def test_host_name_source_resolved_by_the_lab_dns(lab: Lab, lab_thread: NamespaceThread) -> None:
    linux = lab.host("linux1")
    assert linux.fqdn is not None

    def resolve(name: str) -> IPAddress:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [lab.dns_server]
        resolver.lifetime = 3.0
        try:
            answer = resolver.resolve(name, "A")
        except dns.exception.DNSException as error:
            raise TargetSpecError(f"cannot resolve host name {name!r}: {error}") from None
        return ipaddress.ip_address(answer[0].address)

    result = run_shazzam(lab_thread, linux.fqdn, {"ports": "22,80,443"}, probe=ShazzamProbe(resolver=resolve))
    (host,) = result.hosts
    assert host.ip == linux.address
    assert f"{host.host_name}.{host.domain_name}" == linux.fqdn
    assert [(s.port, s.result) for s in host.scanners if s.name == "GenericTCP"] == [
        (port, "open" if port in linux.open_tcp_ports else "refused") for port in (22, 80, 443)
    ]


# --- the other scanners: BannerTCP, HTTP/HTTPS, SNMP --------------------------------------------------


def readings(host: ShazzamHost) -> dict[tuple[int, str], ShazzamScanner]:
    """(port, scanner name) -> element, for every scanner but GenericTCP."""
    return {(s.port, s.name): s for s in host.scanners if s.name != "GenericTCP"}


def test_default_scanners_read_banners_and_server_headers_and_leave_the_print_port_alone(
    lab: Lab, lab_thread: NamespaceThread
) -> None:
    linux, switch, printer = (lab.host(name) for name in ("linux1", "switch1", "printer1"))
    result = run_shazzam(
        lab_thread, f"{linux.address} {switch.address} {printer.address}", {"ports": "22,23,80,9100"}
    )
    hosts = {host.ip: host for host in result.hosts}
    assert set(hosts) == {linux.address, switch.address, printer.address}

    linux_host = hosts[linux.address]
    assert linux_host.open_ports == (22, 80)
    assert set(readings(linux_host)) == {(22, "BannerTCP"), (80, "HTTP")}
    ssh = readings(linux_host)[(22, "BannerTCP")]
    assert (ssh.result, ssh.protocol, ssh.portprobe, ssh.service) == ("open", "tcp", "ssh", "ssh")
    assert ssh.banner_text == f"SSH-2.0-{openssh_version()}"  # the real OpenSSH identification line
    http = readings(linux_host)[(80, "HTTP")]
    assert (http.result, http.service, http.http_status) == ("open", "http", 200)
    assert http.banner_text == listener_banner("linux_server", 80)

    addendum = load_profile().profiles["switch"].ssh
    assert addendum is not None
    switch_ssh = readings(hosts[switch.address])[(22, "BannerTCP")]
    assert switch_ssh.banner_text == f"SSH-2.0-{openssh_version()} {addendum.version_addendum}"

    printer_host = hosts[printer.address]
    assert set(readings(printer_host)) == {(80, "HTTP")}
    assert readings(printer_host)[(80, "HTTP")].banner_text == listener_banner("printer", 80)
    # The raw print port is open, and GenericTCP is all that went there.
    assert [(s.name, s.result) for s in printer_host.scanners if s.port == 9100] == [("GenericTCP", "open")]
    # Refused ports are read by nobody, and no SNMP tap was asked for.
    assert all(s.name == "GenericTCP" for host in result.hosts for s in host.scanners if s.port == 23)
    assert all(s.protocol == "tcp" for host in result.hosts for s in host.scanners)

    (element,) = PROBE.encode_results(result)
    linux_xml = next(h for h in element.iter("host") if h.get("ip") == linux.address)
    banner_xml = [s.attrib for s in linux_xml.iter("scanner") if s.get("name") == "BannerTCP"]
    assert banner_xml == [
        {
            "name": "BannerTCP",
            "port": "22",
            "portprobe": "ssh",
            "protocol": "tcp",
            "result": "open",
            "service": "ssh",
            "banner_text": f"SSH-2.0-{openssh_version()}",
        }
    ]
    assert decode_results([element]) == result


@pytest.fixture(scope="module")
def snmp_agent() -> Iterator[SnmpdTestBed]:
    with snmp_only_agent() as bed:
        yield bed


def test_snmp_tap_only_with_snmp_public_and_a_host_only_it_reaches_is_alive_not_active(
    snmp_agent: SnmpdTestBed,
) -> None:
    ports = ",".join(map(str, DROPPED_TCP_PORTS))
    parameters = {"ports": ports, "connect_wait": "200", "retries": "0"}
    before = snmp_packets_in(snmp_agent)
    quiet = run_shazzam(snmp_agent.thread, "127.0.0.1", parameters)
    between = snmp_packets_in(snmp_agent)
    asked = run_shazzam(snmp_agent.thread, "127.0.0.1", {**parameters, "snmp_public": "true"})
    after = snmp_packets_in(snmp_agent)

    assert quiet.hosts == ()  # TCP goes unanswered and nothing else was asked: a silent IP, omitted
    assert between - before == 1  # only our own counter query: nothing went to UDP 161
    assert after - between == 2  # one tap (answered at once) and the counter query
    (host,) = asked.hosts
    assert (host.ip, host.alive, host.active, host.open_ports) == ("127.0.0.1", True, False, ())
    (snmp,) = host.scanners
    assert (snmp.name, snmp.port, snmp.protocol, snmp.result, snmp.service) == (
        "SNMP",
        161,
        "udp",
        "open",
        "snmp",
    )
    assert snmp.sys_object_id == SYS_OBJECT_ID
    assert snmp.banner_text == SYS_DESCR

    (element,) = PROBE.encode_results(asked)
    assert element.get("hosts_alive") == "1"
    host_xml = element.find("host")
    assert host_xml is not None
    assert (host_xml.get("alive"), host_xml.get("active")) == ("true", "false")
    scanner_xml = host_xml.find("scanner")
    assert scanner_xml is not None
    assert {key: scanner_xml.get(key) for key in ("name", "port", "protocol", "result", "service")} == {
        "name": "SNMP",
        "port": "161",
        "protocol": "udp",
        "result": "open",
        "service": "snmp",
    }
    assert scanner_xml.get("sysObjectID") == SYS_OBJECT_ID
    assert decode_results([ET.fromstring(ET.tostring(element))]) == asked


@dataclass
class _Server:
    """What one test server saw."""

    connections: int = 0
    received: bytearray = field(default_factory=bytearray)


def test_readers_on_servers_we_run_greeting_http_when_asked_and_a_print_port(
    snmp_agent: SnmpdTestBed,
) -> None:
    seen = {port: _Server() for port in (2100, 4567, 7777, 9100)}

    async def record(port: int, reader: asyncio.StreamReader) -> None:
        seen[port].connections += 1
        with contextlib.suppress(ConnectionError, TimeoutError):
            async with asyncio.timeout(5):
                while chunk := await reader.read(4096):
                    seen[port].received += chunk
                    if port == 4567 and b"\r\n\r\n" in seen[port].received:
                        return

    def handler(port: int) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                if port == 2100:
                    writer.write(b"220 midprobe FTP ready\r\n")
                    await writer.drain()
                await record(port, reader)
                if port == 4567 and seen[port].received:
                    writer.write(b"HTTP/1.0 404 Not Found\r\nServer: midprobe-test\r\n\r\n")
                    await writer.drain()
            finally:
                writer.close()

        return handle

    async def scenario() -> tuple[ShazzamResult, ShazzamResult]:
        servers = [await asyncio.start_server(handler(port), "127.0.0.1", port) for port in seen]
        try:
            parameters = {"ports": "2100,4567,7777,9100", "engine": "syn", "banner_wait": "300"}
            context = ProbeContext(policy=TargetPolicy.lab())
            plain = await PROBE.run(PROBE.parse_params("127.0.0.1", parameters), context)
            probing = await PROBE.run(
                PROBE.parse_params("127.0.0.1", {**parameters, "probe_silent": "true"}), context
            )
            return plain, probing
        finally:
            for server in servers:
                server.close()
                await server.wait_closed()

    plain, probing = snmp_agent.thread.run_async(scenario)
    (plain_host,) = plain.hosts
    (probing_host,) = probing.hosts
    assert plain_host.open_ports == probing_host.open_ports == (2100, 4567, 7777, 9100)
    ftp = readings(plain_host)[(2100, "BannerTCP")]
    assert (ftp.service, ftp.banner_text, ftp.portprobe) == ("ftp", "220 midprobe FTP ready", "unknown")
    # Silent ports are only waited on, unless probe_silent asks them with HEAD /.
    assert set(readings(plain_host)) == {(2100, "BannerTCP")}
    assert set(readings(probing_host)) == {(2100, "BannerTCP"), (4567, "HTTP")}
    http = readings(probing_host)[(4567, "HTTP")]
    assert (http.service, http.banner_text, http.http_status) == ("http", "midprobe-test", 404)
    assert bytes(seen[4567].received).startswith(b"HEAD / HTTP/1.0\r\n")
    assert bytes(seen[7777].received).startswith(b"HEAD / HTTP/1.0\r\n")
    # The SYN scan never completes a connection; the readers never open one to a print port.
    assert (seen[9100].connections, bytes(seen[9100].received)) == (0, b"")
    assert seen[4567].connections == 2

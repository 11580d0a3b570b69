"""Shazzam against the lab: the lab subnet with the discovery ports, and every port of one host."""

from __future__ import annotations

import ipaddress

import dns.resolver
import pytest

from midprobe.capabilities.errors import TargetSpecError
from midprobe.probes.base import ProbeContext
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.shazzam import PROBE, ShazzamProbe, ShazzamResult
from midprobe.probes.targets import IPAddress
from midprobe.runner.lab import Lab, NamespaceThread

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
    result = run_shazzam(
        lab_thread,
        lab.network,
        {"ports": ",".join(map(str, ports)), "engine": engine, "connect_wait": "300", "retries": "1"},
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
    assert [(s.port, s.result) for s in host.scanners] == [
        (port, "open" if port in linux.open_tcp_ports else "refused") for port in (22, 80, 443)
    ]

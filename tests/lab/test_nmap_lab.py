"""The Nmap probes against the lab: nmap started from a thread inside the scanner namespace.

``lab_thread`` has joined the scanner namespace with setns(2); the probe's ``asyncio.to_thread`` workers
are created by that thread and inherit its namespace, and so does the nmap process python-nmap starts.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping

import pytest

from midprobe.capabilities.errors import ProbeError
from midprobe.probes.base import ProbeContext
from midprobe.probes.nmap import application_scan, discovery, host_scan
from midprobe.probes.nmap.common import NmapProbe, NmapResult
from midprobe.probes.nmap.engine import run_nmap
from midprobe.probes.nmap.options import NmapInvocation, parse_targets
from midprobe.probes.nmap.parse import NmapHost
from midprobe.probes.safety import TargetPolicy
from midprobe.runner.lab import Lab, NamespaceThread

pytestmark = pytest.mark.lab

CLOSED_PORT = 23


def run_probe(
    lab_thread: NamespaceThread,
    probe: NmapProbe,  # type: ignore[type-arg]
    source: str,
    parameters: Mapping[str, str],
) -> NmapResult:
    params = probe.parse_params(source, parameters)
    context = ProbeContext(agent_name="lab", policy=TargetPolicy.lab(), capabilities=frozenset({"Nmap"}))
    result: NmapResult = lab_thread.run_async(lambda: probe.run(params, context))
    return result


def only_host(result: NmapResult, address: str) -> NmapHost:
    return next(
        run.scan.host(address) for run in result.runs if any(h.address == address for h in run.scan.hosts)
    )


@pytest.fixture(scope="module")
def host_scan_result(lab: Lab, lab_thread: NamespaceThread) -> NmapResult:
    """One ServiceNow host scan of linux1 and silent1 (the same scan serves several tests)."""
    linux, silent = lab.host("linux1"), lab.host("silent1")
    ports = sorted({*linux.open_tcp_ports, CLOSED_PORT})
    return run_probe(
        lab_thread,
        host_scan.PROBE,
        f"{linux.address},{silent.address}",
        {"ports": ",".join(map(str, ports)), "timeout_ms": "90000"},
    )


def test_host_scan_finds_exactly_the_open_ports_and_a_linux_server(
    lab: Lab, host_scan_result: NmapResult
) -> None:
    linux = lab.host("linux1")
    host = only_host(host_scan_result, linux.address)
    assert host.is_up
    assert host.mac is not None
    assert tuple(port.portid for port in host.open_ports) == tuple(sorted(linux.open_tcp_ports))
    assert [port.state for port in host.ports if port.portid == CLOSED_PORT] == ["closed"]
    assert host.os_matches, "nmap -O found no OS match for a Linux namespace"
    best = host.best_os_match
    assert best is not None
    assert best.classes[0].family == "Linux"
    (element,) = host_scan.PROBE.encode_results(host_scan_result)
    classes = {h.get("address"): h.get("ci_class") for h in element.findall("host")}
    assert classes[linux.address] == "cmdb_ci_linux_server"


def test_host_scan_of_a_silent_host_sees_only_filtered_ports(lab: Lab, host_scan_result: NmapResult) -> None:
    silent = lab.host("silent1")
    host = only_host(host_scan_result, silent.address)
    assert host.ports, "nmap listed no ports for the silent host"
    assert {(port.state, port.reason) for port in host.ports} == {("filtered", "no-response")}
    assert not host.open_ports
    (element,) = host_scan.PROBE.encode_results(host_scan_result)
    classes = {h.get("address"): h.get("ci_class") for h in element.findall("host")}
    assert classes[silent.address] == "cmdb_ci_hardware"


def test_discovery_tells_lab_hosts_from_empty_addresses(lab: Lab, lab_thread: NamespaceThread) -> None:
    used = {lab.scanner_address, *(h.address for h in lab.hosts)}
    network = ipaddress.ip_network(lab.network)
    empty = [str(a) for a in list(network.hosts())[-12:-10] if str(a) not in used]
    result = run_probe(lab_thread, discovery.PROBE, ",".join([*(h.address for h in lab.hosts), *empty]), {})
    (run,) = result.runs
    status = {host.address: (host.status, host.reason) for host in run.scan.hosts}
    for host in lab.hosts:  # the silent host too: it still answers ARP
        assert status[host.address] == ("up", "arp-response"), host.name
    for address in empty:
        assert status[address] == ("down", "no-response"), address
    assert run.scan.runstats.hosts_down == len(empty)


def test_application_scan_identifies_ssh_and_http(lab: Lab, lab_thread: NamespaceThread) -> None:
    linux, web = lab.host("linux1"), lab.host("web1")
    result = run_probe(lab_thread, application_scan.PROBE, linux.address, {"ports": "22"})
    (run,) = result.runs
    (port,) = run.scan.host(linux.address).ports
    assert port.state == "open"
    assert port.service is not None
    assert (port.service.name, port.service.product, port.service.guessed) == ("ssh", "OpenSSH", False)
    assert port.service.identified
    assert [script.id for script in port.scripts] == ["ssh-hostkey"]

    web_port = web.open_tcp_ports[0]
    result = run_probe(lab_thread, application_scan.PROBE, web.address, {"ports": str(web_port)})
    (element,) = application_scan.PROBE.encode_results(result)
    port_element = element.find("host/port")
    assert isinstance(port_element, ET.Element)
    assert port_element.get("state") == "open"
    assert port_element.get("guess") == "false"
    assert port_element.get("service") == "http"
    assert port_element.get("product") == "nginx"


def test_nmap_refusing_its_arguments_becomes_one_probe_error_line(lab_thread: NamespaceThread) -> None:
    # No probe can build this argv (the allow-list refuses port 70000); nmap stops before sending.
    def bad(seconds: float) -> NmapInvocation:
        return NmapInvocation("service scan", ("-sS", "-p", "70000"), parse_targets("127.0.0.1"), seconds)

    async def scan() -> str:
        try:
            await run_nmap([bad], deadline=time.monotonic() + 30, topic="NmapServiceScan")
        except ProbeError as error:
            return str(error)
        return "no error"

    message = lab_thread.run_async(lambda: asyncio.wait_for(scan(), 60))
    assert message == "nmap service scan failed: Ports specified must be between 0 and 65535 inclusive"

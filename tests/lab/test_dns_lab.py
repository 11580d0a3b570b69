"""The DNS probes against the lab's dnsmasq, from the scanner namespace, under the lab policy."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

import pytest

from midprobe.probes.base import ProbeContext
from midprobe.probes.registry import default_registry
from midprobe.probes.safety import TargetPolicy
from midprobe.runner.lab import Lab, NamespaceThread

pytestmark = pytest.mark.lab


def run_probe(thread: NamespaceThread, topic: str, parameters: Mapping[str, str]) -> tuple[Any, ET.Element]:
    probe = default_registry().get(topic)
    params = probe.parse_params("", parameters)
    result = thread.run_async(lambda: probe.run(params, ProbeContext(policy=TargetPolicy.lab())))
    (element,) = probe.encode_results(result)
    return result, element


def named_hosts(lab: Lab) -> dict[str, str]:
    hosts = {host.fqdn: host.address for host in lab.hosts if host.fqdn}
    assert hosts, "the default lab names its hosts in DNS"
    return hosts


def test_lab_names_resolve_to_their_addresses(lab: Lab, lab_thread: NamespaceThread) -> None:
    hosts = named_hosts(lab)
    names = " ".join([*hosts, f"absent.sandiego.{lab.dns_zone}"])
    result, _ = run_probe(lab_thread, "DNSLookupProbe", {"names": names, "dns_servers": lab.dns_server})
    found = {lookup.name: lookup for lookup in result.lookups}
    for name, address in hosts.items():
        assert (found[name].status, found[name].addresses, found[name].server) == (
            "ok",
            (address,),
            lab.dns_server,
        )
    assert found[f"absent.sandiego.{lab.dns_zone}"].status == "nxdomain"
    # both sub-domains are populated, so Resolve DNS routing has something to route
    assert {name.split(".")[1] for name in hosts} >= {"sandiego", "sanjose"}


def test_lab_addresses_map_back_to_confirmed_names(lab: Lab, lab_thread: NamespaceThread) -> None:
    hosts = named_hosts(lab)
    unnamed = "198.18.0.250"
    addresses = ",".join([*hosts.values(), unnamed])
    _, element = run_probe(lab_thread, "DNS", {"ip_addresses": addresses, "dns_servers": lab.dns_server})
    found = {child.attrib["ip"]: child.attrib for child in element}
    for name, address in hosts.items():
        host, domain = name.split(".", 1)
        assert found[address]["name"] == name
        assert (found[address]["hostName"], found[address]["domainName"]) == (host, domain)
        assert found[address]["confirmed"] == "true"
    assert found[unnamed]["status"] == "nxdomain"


def test_name_resolver_on_the_lab(lab: Lab, lab_thread: NamespaceThread) -> None:
    linux1 = next(host for host in lab.hosts if host.fqdn)
    result, _ = run_probe(
        lab_thread, "DNSNameResolver", {"ip_addresses": linux1.address, "dns_servers": lab.dns_server}
    )
    (entry,) = result.addresses
    assert (entry.status, entry.names) == ("ok", (linux1.fqdn,))

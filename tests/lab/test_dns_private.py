"""The DNS probes against a real dnsmasq in a private namespace: ECC request in, ECC result out."""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from midprobe.capabilities.errors import TargetNotAllowed
from midprobe.probes.base import ProbeContext
from midprobe.probes.registry import default_registry
from midprobe.probes.safety import TargetPolicy
from midprobe.runner.agent.probe_runner import AgentIdentity, ProbeRunner
from midprobe.runner.ecc.builders import new_output_record
from midprobe.runner.ecc.payload import decode_input_payload
from tests.lab.dns_support import ZONE, PrivateDns, host_records, private_dns

pytestmark = pytest.mark.lab

HOSTS = host_records(3000)  # h0.lab.example.test -> 198.18.4.0, ...
MULTI = [(f"multi.{ZONE}", f"198.18.20.{i}") for i in range(120)]  # too many for one UDP reply
#: The lab policy plus the IPv6 documentation prefix of our IPv6 records and the IPv6 loopback.
LAB_WITH_V6 = TargetPolicy.only(["198.18.0.0/15", "127.0.0.0/8", "2001:db8::/32", "::1/128"], name="lab+v6")
EXTRA = [(f"v6.{ZONE}", "2001:db8::10"), (f"dual.{ZONE}", "198.18.21.1"), (f"dual.{ZONE}", "2001:db8::21")]


@pytest.fixture(scope="module")
def dns_server() -> Iterator[PrivateDns]:
    with private_dns(
        HOSTS + MULTI + EXTRA,
        cnames=[(f"alias.{ZONE}", f"h1.{ZONE}")],
        txt_records=[(f"txt.{ZONE}", "no address here")],
        ptr_records=[
            ("250.21.18.198.in-addr.arpa", f"h1.{ZONE}"),  # points at a name with another address
            ("251.21.18.198.in-addr.arpa", f"ghost.{ZONE}"),  # points at a name that does not exist
        ],
    ) as server:
        yield server


def run_probe(
    server: PrivateDns,
    topic: str,
    parameters: Mapping[str, str],
    *,
    source: str = "",
    context: ProbeContext | None = None,
) -> tuple[Any, ET.Element]:
    """Parse, run inside the namespace and encode, the way the runner does."""
    probe = default_registry().get(topic)
    params = probe.parse_params(source, parameters)
    ctx = context or ProbeContext(policy=TargetPolicy.lab())
    result = server.thread.run_async(lambda: probe.run(params, ctx))
    (element,) = probe.encode_results(result)
    assert element.tag == "result"
    return result, element


def entries(element: ET.Element, key: str) -> dict[str, ET.Element]:
    return {child.attrib[key]: child for child in element}


def test_lookup_answers_every_name_with_its_own_status(dns_server: PrivateDns) -> None:
    names = f"h1.{ZONE}, alias.{ZONE} nope.{ZONE};dual.{ZONE} v6.{ZONE} txt.{ZONE} 198.18.7.7 example.org"
    _, element = run_probe(
        dns_server, "DNSLookupProbe", {"names": names, "dns_servers": dns_server.server, "timeout": "1000"}
    )
    found = entries(element, "name")
    assert list(found) == [
        f"h1.{ZONE}",
        f"alias.{ZONE}",
        f"nope.{ZONE}",
        f"dual.{ZONE}",
        f"v6.{ZONE}",
        f"txt.{ZONE}",
        "198.18.7.7",
        "example.org",
    ]
    h1 = found[f"h1.{ZONE}"]
    assert h1.attrib["status"] == "ok"
    assert h1.attrib["server"] == dns_server.server
    assert [(a.attrib["type"], a.text) for a in h1] == [("A", "198.18.4.1")]
    alias = found[f"alias.{ZONE}"]
    assert alias.attrib["canonical_name"] == f"h1.{ZONE}"
    assert [a.text for a in alias] == ["198.18.4.1"]
    assert found[f"nope.{ZONE}"].attrib["status"] == "nxdomain"
    assert [(a.attrib["type"], a.text) for a in found[f"dual.{ZONE}"]] == [
        ("A", "198.18.21.1"),
        ("AAAA", "2001:db8::21"),
    ]
    assert [a.text for a in found[f"v6.{ZONE}"]] == ["2001:db8::10"]
    assert found[f"txt.{ZONE}"].attrib["status"] == "noanswer"
    assert [a.text for a in found["198.18.7.7"]] == ["198.18.7.7"]
    # dnsmasq has no upstream and refuses names outside its zones
    assert found["example.org"].attrib["status"] == "refused"


def test_truncated_answer_is_fetched_again_over_tcp(dns_server: PrivateDns) -> None:
    result, _ = run_probe(
        dns_server,
        "DNSLookupProbe",
        {"names": f"multi.{ZONE}", "record_types": "A", "dns_servers": "127.0.0.53"},
    )
    (lookup,) = result.lookups
    # 120 addresses do not fit the 1232 bytes advertised over UDP: only TCP can bring them all
    assert sorted(lookup.addresses) == sorted(address for _, address in MULTI)


def test_name_resolver_maps_addresses_back_to_names(dns_server: PrivateDns) -> None:
    _, element = run_probe(
        dns_server,
        "DNSNameResolver",
        {"ip_addresses": "198.18.4.1 2001:db8::10 198.18.200.200", "dns_servers": dns_server.server},
        context=ProbeContext(policy=LAB_WITH_V6),
    )
    found = entries(element, "address")
    assert found["198.18.4.1"].attrib == {
        "address": "198.18.4.1",
        "status": "ok",
        "name": f"h1.{ZONE}",
        "server": dns_server.server,
    }
    assert [child.text for child in found["198.18.4.1"]] == [f"h1.{ZONE}"]
    assert found["2001:db8::10"].attrib["name"] == f"v6.{ZONE}"
    assert found["198.18.200.200"].attrib["status"] == "nxdomain"


def test_name_resolver_takes_the_address_from_source(dns_server: PrivateDns) -> None:
    result, _ = run_probe(
        dns_server, "DNSNameResolver", {"dns_servers": dns_server.server}, source="198.18.4.2"
    )
    assert [(entry.address, entry.names) for entry in result.addresses] == [("198.18.4.2", (f"h2.{ZONE}",))]


def test_dns_probe_confirms_names_by_forward_lookup(dns_server: PrivateDns) -> None:
    _, element = run_probe(
        dns_server,
        "DNS",
        {
            "ip_addresses": "198.18.4.7, 198.18.21.250, 198.18.21.251, 198.18.99.1",
            "dns_servers": "127.0.0.53",
        },
    )
    found = entries(element, "ip")
    assert found["198.18.4.7"].attrib == {
        "ip": "198.18.4.7",
        "status": "ok",
        "name": f"h7.{ZONE}",
        "hostName": "h7",
        "domainName": ZONE,
        "confirmed": "true",
        "server": dns_server.server,
    }
    mismatch = found["198.18.21.250"]  # PTR says h1, whose address is 198.18.4.1
    assert (mismatch.attrib["name"], mismatch.attrib["confirmed"]) == (f"h1.{ZONE}", "false")
    assert mismatch.attrib["forward_status"] == "ok"
    ghost = found["198.18.21.251"]
    assert (ghost.attrib["confirmed"], ghost.attrib["forward_status"]) == ("false", "nxdomain")
    unknown = found["198.18.99.1"]
    assert unknown.attrib["status"] == "nxdomain"
    assert "confirmed" not in unknown.attrib


def test_dns_probe_without_forward_confirm_leaves_names_unchecked(dns_server: PrivateDns) -> None:
    result, _ = run_probe(
        dns_server,
        "DNS",
        {"ip_addresses": "198.18.21.250", "forward_confirm": "false", "dns_servers": dns_server.server},
    )
    (host,) = result.hosts
    assert (host.name, host.confirmed) == (f"h1.{ZONE}", None)


def test_silent_server_gives_per_name_timeouts_after_bounded_retries(dns_server: PrivateDns) -> None:
    dns_server.received_by_silent_server()
    result, element = run_probe(
        dns_server,
        "DNSLookupProbe",
        {
            "names": f"h1.{ZONE} h2.{ZONE}",
            "dns_servers": dns_server.silent_server,
            "timeout": "200",
            "retries": "1",
        },
    )
    assert [(lookup.name, lookup.status) for lookup in result.lookups] == [
        (f"h1.{ZONE}", "timeout"),
        (f"h2.{ZONE}", "timeout"),
    ]
    assert "no answer from 127.0.0.54 within 0.2 s" in element[0].attrib["detail"]
    # two names x (A, AAAA) x two attempts, and not one more
    assert dns_server.received_by_silent_server() == 8


def test_next_server_answers_when_the_first_is_silent(dns_server: PrivateDns) -> None:
    servers = f"{dns_server.silent_server},{dns_server.server}"
    result, _ = run_probe(
        dns_server,
        "DNSLookupProbe",
        {"names": f"h5.{ZONE}", "record_types": "A", "dns_servers": servers, "timeout": "200"},
    )
    (lookup,) = result.lookups
    assert (lookup.status, lookup.addresses, lookup.server) == ("ok", ("198.18.4.5",), dns_server.server)
    assert dns_server.received_by_silent_server() == 1


def test_a_server_without_a_route_fails_over_at_once_and_says_why(dns_server: PrivateDns) -> None:
    unroutable = "198.18.250.1"  # the namespace has only its loopback: no route, nothing is sent
    result, _ = run_probe(
        dns_server,
        "DNSLookupProbe",
        {"names": f"h5.{ZONE}", "record_types": "A", "dns_servers": f"{unroutable},{dns_server.server}"},
    )
    (lookup,) = result.lookups
    assert (lookup.status, lookup.addresses, lookup.server) == ("ok", ("198.18.4.5",), dns_server.server)
    result, _ = run_probe(
        dns_server, "DNSLookupProbe", {"names": f"h5.{ZONE}", "record_types": "A", "dns_servers": unroutable}
    )
    (lookup,) = result.lookups
    assert (lookup.status, lookup.server) == ("error", unroutable)
    assert lookup.detail.startswith(f"cannot send to {unroutable}: ")


def test_ipv6_server_after_a_silent_ipv4_one(dns_server: PrivateDns) -> None:
    servers = f"{dns_server.silent_server} {dns_server.server6}"
    result, _ = run_probe(
        dns_server,
        "DNSLookupProbe",
        {"names": f"dual.{ZONE}", "dns_servers": servers, "timeout": "200"},
        context=ProbeContext(policy=LAB_WITH_V6),
    )
    (lookup,) = result.lookups
    assert (lookup.status, lookup.addresses, lookup.server) == ("ok", ("198.18.21.1", "2001:db8::21"), "::1")
    assert dns_server.received_by_silent_server() == 2  # A and AAAA, once each


def test_probe_deadline_ends_the_batch_with_timeouts(dns_server: PrivateDns) -> None:
    probe = default_registry().get("DNSLookupProbe")
    names = " ".join(name for name, _ in HOSTS[:500])
    parameters = {
        "names": names,
        "dns_servers": dns_server.silent_server,
        "timeout": "10000",
        "concurrency": "50",
    }
    params = probe.parse_params("", parameters)
    context = ProbeContext(policy=TargetPolicy.lab(), deadline=time.monotonic() + 0.5)

    async def like_the_runner() -> Any:  # which cancels the probe at the deadline
        return await asyncio.wait_for(probe.run(params, context), timeout=context.remaining())

    started = time.monotonic()
    result = dns_server.thread.run_async(like_the_runner)
    # one attempt alone would wait 10 s; the batch stops just before the deadline, so every
    # name still gets its own result instead of the whole probe timing out
    assert time.monotonic() - started < 5
    assert len(result.lookups) == 500
    assert {lookup.status for lookup in result.lookups} == {"timeout"}
    assert {lookup.detail for lookup in result.lookups} == {"the probe deadline passed"}
    assert dns_server.received_by_silent_server() == 50  # the first window of questions, no more


def test_policy_refuses_a_server_before_anything_is_sent(dns_server: PrivateDns) -> None:
    context = ProbeContext(policy=TargetPolicy.only(["198.18.0.0/15"], name="lab network only"))
    with pytest.raises(TargetNotAllowed, match=r"127\.0\.0\.54 is outside the allowed networks"):
        run_probe(
            dns_server,
            "DNSLookupProbe",
            {"names": f"h1.{ZONE}", "dns_servers": dns_server.silent_server},
            context=context,
        )
    assert dns_server.received_by_silent_server() == 0


def test_policy_refuses_an_address_outside_the_lab(dns_server: PrivateDns) -> None:
    for topic in ("DNS", "DNSNameResolver"):
        with pytest.raises(TargetNotAllowed, match=r"192\.0\.2\.1 is outside"):
            run_probe(
                dns_server,
                topic,
                {"ip_addresses": "198.18.4.1 192.0.2.1", "dns_servers": dns_server.silent_server},
            )
    assert dns_server.received_by_silent_server() == 0


def test_thousands_of_names_and_addresses_in_one_request(dns_server: PrivateDns) -> None:
    names = " ".join(name for name, _ in HOSTS)
    dropped_before = dns_server.udp_receive_errors()
    result, element = run_probe(
        dns_server, "DNSLookupProbe", {"names": names, "record_types": "A", "dns_servers": dns_server.server}
    )
    assert len(element) == len(HOSTS)
    assert [(lookup.name, lookup.status, lookup.addresses) for lookup in result.lookups] == [
        (name, "ok", (address,)) for name, address in HOSTS
    ]
    addresses = ",".join(address for _, address in HOSTS)
    result, _ = run_probe(dns_server, "DNS", {"ip_addresses": addresses, "dns_servers": dns_server.server})
    assert [(host.address, host.name, host.confirmed) for host in result.hosts] == [
        (address, name, True) for name, address in HOSTS
    ]
    # the default window is below what dnsmasq's socket can queue: not one query was lost
    # (a lost one would have cost a whole time-out before its retry)
    assert dns_server.udp_receive_errors() == dropped_before


def window_lookups(
    server: PrivateDns, count: int, servers: str, *, timeout_ms: int, retries: int, concurrency: int
) -> Any:
    """A lookups of the first ``count`` host names, ``concurrency`` at a time (drains the silent server first)."""
    server.received_by_silent_server()
    names = " ".join(name for name, _ in HOSTS[:count])
    parameters = {"names": names, "record_types": "A", "dns_servers": servers}
    parameters.update(timeout=str(timeout_ms), retries=str(retries), concurrency=str(concurrency))
    result, _ = run_probe(server, "DNSLookupProbe", parameters)
    return result


def test_a_narrow_window_refills_after_time_outs_and_asks_every_name_once(dns_server: PrivateDns) -> None:
    """40 names, 7 at a time, a server that never answers, no retries: 40 queries, 40 time-outs."""
    result = window_lookups(
        dns_server, 40, dns_server.silent_server, timeout_ms=300, retries=0, concurrency=7
    )
    assert {lookup.status for lookup in result.lookups} == {"timeout"}
    assert dns_server.received_by_silent_server() == 40


def test_time_outs_and_answers_mixed_in_one_window_ask_each_server_once_per_name(
    dns_server: PrivateDns,
) -> None:
    """200 names (the silent server's socket queues 256), 50 at a time, a silent first server: each
    name times out there once and is then answered by the second; an attempt answered or asked
    again since never times out itself."""
    servers = f"{dns_server.silent_server},{dns_server.server}"
    result = window_lookups(dns_server, 200, servers, timeout_ms=100, retries=1, concurrency=50)
    assert [(lookup.status, lookup.server) for lookup in result.lookups] == [("ok", dns_server.server)] * 200
    assert [lookup.addresses for lookup in result.lookups] == [(address,) for _, address in HOSTS[:200]]
    assert dns_server.received_by_silent_server() == 200


def test_the_agent_runner_answers_dns_records(dns_server: PrivateDns) -> None:
    runner = ProbeRunner(
        registry=default_registry(),
        identity=AgentIdentity(name="lab1"),
        policy=TargetPolicy.lab(),
        probe_timeout_seconds=10.0,
    )
    output = new_output_record(
        agent="lab1", topic="DNS", source="198.18.4.3", parameters={"dns_servers": dns_server.server}
    )
    answer = dns_server.thread.run_async(lambda: runner.answer(output))
    decoded = decode_input_payload(answer.payload)
    assert (decoded.result_code, answer.error_string) == (0, "")
    host = decoded.results[0].find("host")
    assert host is not None
    assert (host.get("name"), host.get("confirmed")) == (f"h3.{ZONE}", "true")
    assert decoded.echoed("dns_servers") == dns_server.server
    refused = new_output_record(
        agent="lab1", topic="DNSLookupProbe", source=f"h3.{ZONE}", parameters={"dns_servers": "10.1.2.3"}
    )
    error = dns_server.thread.run_async(lambda: runner.answer(refused))
    assert "DNS server 10.1.2.3 is outside the allowed networks" in error.error_string

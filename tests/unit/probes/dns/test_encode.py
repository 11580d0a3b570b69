"""ECC result payloads of the DNS probes, and how per-type answers become one verdict per name."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import dns.name
import pytest

from midprobe.probes.dns.host_names import DNSProbe, DnsResult, HostName, split_name
from midprobe.probes.dns.lookup import DNSLookupProbe, LookupResult, NameLookup, combine
from midprobe.probes.dns.name_resolver import AddressName, DNSNameResolverProbe, NameResolverResult
from midprobe.probes.dns.resolver import Answer, Question, Status
from midprobe.probes.dns.wire import AAAA, A

NAME = "linux1.sandiego.lab.example.test"
SERVER = "198.18.0.53"


def xml(element: ET.Element) -> str:
    return ET.tostring(element, encoding="unicode")


def test_lookup_result_nesting() -> None:
    result = LookupResult(
        (
            NameLookup(NAME, Status.OK, ("198.18.0.10", "2001:db8::10"), None, SERVER),
            NameLookup(
                "www.lab.example.test", Status.OK, ("198.18.0.12",), "web1.sanjose.lab.example.test", SERVER
            ),
            NameLookup("nope.lab.example.test", Status.NXDOMAIN, (), None, SERVER),
            NameLookup(
                "slow.lab.example.test", Status.TIMEOUT, detail="no answer from 198.18.0.53 within 2 s"
            ),
        )
    )
    (element,) = DNSLookupProbe().encode_results(result)
    assert xml(element) == (
        "<result>"
        f'<lookup name="{NAME}" status="ok" server="{SERVER}">'
        '<address type="A">198.18.0.10</address><address type="AAAA">2001:db8::10</address></lookup>'
        '<lookup name="www.lab.example.test" status="ok" canonical_name="web1.sanjose.lab.example.test" '
        f'server="{SERVER}"><address type="A">198.18.0.12</address></lookup>'
        f'<lookup name="nope.lab.example.test" status="nxdomain" server="{SERVER}" />'
        '<lookup name="slow.lab.example.test" status="timeout" detail="no answer from 198.18.0.53 within 2 s" />'
        "</result>"
    )


def test_name_resolver_result_nesting() -> None:
    result = NameResolverResult(
        (
            AddressName("198.18.0.10", Status.OK, (NAME, "alias.lab.example.test"), SERVER),
            AddressName("198.18.0.99", Status.NXDOMAIN, (), SERVER),
        )
    )
    (element,) = DNSNameResolverProbe().encode_results(result)
    assert xml(element) == (
        "<result>"
        f'<reverse address="198.18.0.10" status="ok" name="{NAME}" server="{SERVER}">'
        f"<name>{NAME}</name><name>alias.lab.example.test</name></reverse>"
        f'<reverse address="198.18.0.99" status="nxdomain" server="{SERVER}" />'
        "</result>"
    )


def test_dns_result_nesting() -> None:
    result = DnsResult(
        (
            HostName("198.18.0.10", Status.OK, (NAME,), True, None, SERVER),
            HostName(
                "198.18.0.11", Status.OK, ("stale.sanjose.lab.example.test",), False, Status.NXDOMAIN, SERVER
            ),
            HostName("198.18.0.12", Status.SERVFAIL, (), None, None, SERVER, "198.18.0.53 answered SERVFAIL"),
        )
    )
    (element,) = DNSProbe().encode_results(result)
    assert xml(element) == (
        "<result>"
        f'<host ip="198.18.0.10" status="ok" name="{NAME}" hostName="linux1" '
        f'domainName="sandiego.lab.example.test" confirmed="true" server="{SERVER}"><name>{NAME}</name></host>'
        '<host ip="198.18.0.11" status="ok" name="stale.sanjose.lab.example.test" hostName="stale" '
        'domainName="sanjose.lab.example.test" confirmed="false" forward_status="nxdomain" '
        f'server="{SERVER}"><name>stale.sanjose.lab.example.test</name></host>'
        f'<host ip="198.18.0.12" status="servfail" server="{SERVER}" detail="198.18.0.53 answered SERVFAIL" />'
        "</result>"
    )


def test_awkward_names_survive_the_xml() -> None:
    odd = 'a<b>&"c\\032d.lab.example.test'
    (element,) = DNSLookupProbe().encode_results(LookupResult((NameLookup(odd, Status.NXDOMAIN),)))
    parsed = ET.fromstring(xml(element))
    assert parsed[0].attrib["name"] == odd


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        (NAME, ("linux1", "sandiego.lab.example.test")),
        ("localhost", ("localhost", "")),
        ("a\\.b.example.test", ("a\\.b", "example.test")),
    ],
)
def test_host_and_domain_names(name: str, parts: tuple[str, str]) -> None:
    assert split_name(name) == parts


def answer(rdtype: int, status: Status, *values: str, detail: str = "") -> Answer:
    server = None if status is Status.TIMEOUT else SERVER
    return Answer(Question(dns.name.from_text(NAME), rdtype), status, values, None, server, 1, detail)


def test_addresses_from_any_type_make_the_name_resolved() -> None:
    lookup = combine(NAME, [answer(A, Status.OK, "198.18.0.10"), answer(AAAA, Status.NOANSWER)])
    assert (lookup.status, lookup.addresses, lookup.detail) == (Status.OK, ("198.18.0.10",), "")
    partial = combine(NAME, [answer(A, Status.TIMEOUT), answer(AAAA, Status.OK, "2001:db8::10")])
    assert (partial.status, partial.addresses, partial.detail) == (Status.OK, ("2001:db8::10",), "A: timeout")


def test_without_addresses_the_most_telling_status_wins() -> None:
    assert (
        combine(NAME, [answer(A, Status.NOANSWER), answer(AAAA, Status.NOANSWER)]).status == Status.NOANSWER
    )
    assert (
        combine(NAME, [answer(A, Status.NXDOMAIN), answer(AAAA, Status.NXDOMAIN)]).status == Status.NXDOMAIN
    )
    mixed = combine(NAME, [answer(A, Status.NOANSWER), answer(AAAA, Status.TIMEOUT, detail="no answer")])
    assert (mixed.status, mixed.server, mixed.detail) == (Status.TIMEOUT, None, "no answer")

"""Target resolution: host names (and reverse lookups) under the target policy, through the policy's DNS
server when it names one, and never the system resolver in lab mode."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable
from typing import Any, TypeVar, cast

import dns.message
import dns.reversename
import dns.rrset
import pytest

from midprobe.capabilities.errors import TargetNotAllowed, TargetSpecError
from midprobe.probes.banner import PROBE as BANNER
from midprobe.probes.base import AnyProbe, ProbeContext
from midprobe.probes.resolve import (
    dns_server_lookup,
    dns_server_reverse_lookup,
    resolve_host,
    resolve_spec,
    resolver_for,
    reverse_resolver_for,
)
from midprobe.probes.safety import IPAddress, TargetPolicy
from midprobe.probes.shazzam import PROBE as SHAZZAM
from midprobe.probes.snmp.query import PROBE as SNMP
from midprobe.probes.sweep.host_sweep import PROBE as SWEEP
from midprobe.probes.targets import parse_targets

T = TypeVar("T")


def _run(pending: Awaitable[T]) -> T:
    """``asyncio.run`` of what a resolver returns (an awaitable: ``asyncio.run`` takes only a coroutine)."""

    async def wait() -> T:
        return await pending

    return asyncio.run(wait())


@pytest.fixture
def no_system_lookup(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fails (and records) any use of the system resolver."""
    asked: list[str] = []

    def refuse(host: object, *args: Any, **kwargs: Any) -> Any:
        asked.append(str(host))
        raise AssertionError(f"system resolver asked for {host!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "gethostbyaddr", refuse)
    return asked


def fake(table: dict[str, str]) -> Any:
    async def lookup(name: str) -> IPAddress:
        try:
            return ipaddress.ip_address(table[name])
        except KeyError:
            raise TargetSpecError(f"cannot resolve host name {name!r}") from None

    return lookup


def test_an_injected_resolver_answers_and_its_address_is_checked() -> None:
    policy = TargetPolicy.lab()
    lookup = fake({"linux1.lab.test": "198.18.0.11", "outside.test": "192.0.2.1"})
    assert asyncio.run(resolve_host("linux1.lab.test", policy, resolver=lookup)) == ipaddress.ip_address(
        "198.18.0.11"
    )
    with pytest.raises(TargetNotAllowed, match=r"192\.0\.2\.1"):
        asyncio.run(resolve_host("outside.test", policy, resolver=lookup))


def test_a_spec_with_names_is_resolved_then_checked_whole() -> None:
    lookup = fake({"linux1.lab.test": "198.18.0.11", "outside.test": "192.0.2.1"})
    spec = asyncio.run(resolve_spec(parse_targets("linux1.lab.test/30"), TargetPolicy.lab(), resolver=lookup))
    assert [str(target.address) for target in spec] == [
        "198.18.0.8",
        "198.18.0.9",
        "198.18.0.10",
        "198.18.0.11",
    ]
    with pytest.raises(TargetNotAllowed, match=r"192\.0\.2"):
        asyncio.run(
            resolve_spec(parse_targets("198.18.0.1, outside.test"), TargetPolicy.lab(), resolver=lookup)
        )


def test_lab_mode_without_a_lab_resolver_refuses_a_name(no_system_lookup: list[str]) -> None:
    with pytest.raises(TargetNotAllowed, match=r"lab's DNS server"):
        asyncio.run(resolve_host("linux1.lab.test", TargetPolicy.lab()))
    assert no_system_lookup == []


def test_a_lab_resolver_outside_the_policy_is_refused(no_system_lookup: list[str]) -> None:
    policy = TargetPolicy(TargetPolicy.lab().allowed, "lab", lab_mode=True, name_server="192.0.2.53")
    with pytest.raises(TargetNotAllowed, match=r"DNS server 192\.0\.2\.53"):
        asyncio.run(resolve_host("linux1.lab.test", policy))


def test_addresses_need_no_resolver(no_system_lookup: list[str]) -> None:
    assert str(asyncio.run(resolve_host(" 198.18.0.11 ", TargetPolicy.lab()))) == "198.18.0.11"


def test_outside_lab_mode_the_system_resolver_is_used_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    threads: list[str] = []

    def answer(host: object, *args: Any, **kwargs: Any) -> list[Any]:
        threads.append(threading.current_thread().name)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("198.51.100.7", 0))]

    monkeypatch.setattr(socket, "getaddrinfo", answer)
    found = asyncio.run(resolve_host("printer.example.test", TargetPolicy.unrestricted()))
    assert str(found) == "198.51.100.7"
    assert threads
    assert threads[0] != threading.main_thread().name


class _DnsServer(asyncio.DatagramProtocol):
    """A DNS server on 127.0.0.1 that knows one name."""

    def __init__(self, name: str, address: str) -> None:
        self.name, self.address = name, address
        self.transport: asyncio.BaseTransport | None = None
        self.questions: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        query = dns.message.from_wire(data)
        reply = dns.message.make_response(query)
        question = query.question[0]
        self.questions.append(f"{question.name} {dns.rdatatype.to_text(question.rdtype)}")
        if str(question.name) == self.name and question.rdtype == dns.rdatatype.A:
            reply.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", self.address))
        if (
            question.name == dns.reversename.from_address(self.address)
            and question.rdtype == dns.rdatatype.PTR
        ):
            reply.answer.append(dns.rrset.from_text(question.name, 60, "IN", "PTR", self.name))
        cast(asyncio.DatagramTransport, self.transport).sendto(reply.to_wire(), addr)


def test_the_lab_resolver_is_asked_directly(no_system_lookup: list[str]) -> None:
    async def scenario() -> tuple[str, list[str]]:
        loop = asyncio.get_running_loop()
        server = _DnsServer("linux1.lab.test.", "198.18.0.11")
        transport, _ = await loop.create_datagram_endpoint(lambda: server, local_addr=("127.0.0.1", 0))
        try:
            port = transport.get_extra_info("sockname")[1]
            lookup = dns_server_lookup("127.0.0.1", port=port)
            found = await resolve_host("linux1.lab.test", TargetPolicy.lab(), resolver=lookup)
            with pytest.raises(TargetSpecError, match=r"through DNS server 127\.0\.0\.1"):
                await lookup("nobody.lab.test")
            return str(found), server.questions
        finally:
            transport.close()

    found, questions = asyncio.run(scenario())
    assert found == "198.18.0.11"
    assert "linux1.lab.test. A" in questions


def test_the_lab_resolver_answers_reverse_lookups_directly(no_system_lookup: list[str]) -> None:
    async def scenario() -> tuple[str | None, str | None, list[str]]:
        loop = asyncio.get_running_loop()
        server = _DnsServer("linux1.lab.test.", "198.18.0.11")
        transport, _ = await loop.create_datagram_endpoint(lambda: server, local_addr=("127.0.0.1", 0))
        try:
            lookup = dns_server_reverse_lookup("127.0.0.1", port=transport.get_extra_info("sockname")[1])
            return await lookup("198.18.0.11"), await lookup("198.18.0.12"), server.questions
        finally:
            transport.close()

    known, unknown, questions = asyncio.run(scenario())
    assert (known, unknown) == ("linux1.lab.test", None)
    assert "11.0.18.198.in-addr.arpa. PTR" in questions


def test_a_policy_naming_a_dns_server_sends_names_only_there_in_any_mode(no_system_lookup: list[str]) -> None:
    # The deadline has passed: the lookup shows where it would go, and nothing is sent.
    for policy in (TargetPolicy.unrestricted("127.0.0.1"), TargetPolicy.lab("127.0.0.1")):
        lookup = resolver_for(policy, deadline=0.0)
        with pytest.raises(TargetSpecError, match=r"through DNS server 127\.0\.0\.1"):
            _run(lookup("linux1.lab.test"))
        reverse = reverse_resolver_for(policy, deadline=0.0)
        assert reverse is not None
        assert _run(reverse("198.18.0.11")) is None
    assert no_system_lookup == []


def test_reverse_lookups_in_lab_mode_need_the_lab_dns_server(no_system_lookup: list[str]) -> None:
    assert reverse_resolver_for(TargetPolicy.lab()) is None
    outside = TargetPolicy(TargetPolicy.lab().allowed, "lab", lab_mode=True, name_server="192.0.2.53")
    with pytest.raises(TargetNotAllowed, match=r"DNS server 192\.0\.2\.53"):
        reverse_resolver_for(outside)
    assert no_system_lookup == []


def test_outside_lab_mode_reverse_lookups_ask_the_system_resolver_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    threads: list[str] = []

    def answer(address: str) -> tuple[str, list[str], list[str]]:
        threads.append(threading.current_thread().name)
        if address != "198.51.100.7":
            raise socket.herror(1, "Unknown host")
        return "printer.example.test", [], [address]

    monkeypatch.setattr(socket, "gethostbyaddr", answer)
    reverse = reverse_resolver_for(TargetPolicy.unrestricted())
    assert reverse is not None
    assert _run(reverse("198.51.100.7")) == "printer.example.test"
    assert _run(reverse("198.51.100.8")) is None
    assert threads
    assert threading.main_thread().name not in threads


@pytest.mark.parametrize(
    ("probe", "parameters"),
    [
        (BANNER, {"ports": "22"}),
        (SHAZZAM, {"ports": "22"}),
        (SWEEP, {"method": "tcp"}),
        (SNMP, {"oid_spec_list": "walk system"}),
    ],
    ids=["BannerSniff", "Shazzam", "HostSweep", "SNMP"],
)
def test_every_probe_refuses_a_name_in_lab_mode_without_a_lab_resolver(
    probe: AnyProbe, parameters: dict[str, str], no_system_lookup: list[str]
) -> None:
    params = probe.parse_params("linux1.lab.test", parameters)
    with pytest.raises(TargetNotAllowed, match=r"linux1\.lab\.test"):
        asyncio.run(probe.run(params, ProbeContext(policy=TargetPolicy.lab())))
    assert no_system_lookup == []

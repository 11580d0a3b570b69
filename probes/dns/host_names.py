"""``DNS``: the DNS names of devices, by reverse lookup (PTR) confirmed by a forward lookup.

Request: ``ip_addresses`` (or the record's ``source``), ``forward_confirm`` (default true) plus the
resolver parameters. Result: ``<result><host ip=".." status="ok" name=".." hostName=".."
domainName=".." confirmed="true"><name>..</name></host>...</result>``; a name is confirmed
when one of the address's PTR names resolves (A for IPv4, AAAA for IPv6) back to the address.
"""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import dns.name

from midprobe.probes.base import ProbeContext
from midprobe.probes.dns import wire
from midprobe.probes.dns.common import batch_deadline, prepare_resolver
from midprobe.probes.dns.name_resolver import AddressName, reverse_lookup
from midprobe.probes.dns.params import (
    ResolverParams,
    parse_addresses,
    parse_resolver_params,
    targets_text,
)
from midprobe.probes.dns.resolver import Answer, Question, ResolverConfig, Status, resolve_batch
from midprobe.probes.params import parse_bool
from midprobe.probes.xml_encode import sub_element


@dataclass(frozen=True)
class DnsParams:
    ip_addresses: tuple[str, ...]
    forward_confirm: bool = True
    resolver: ResolverParams = field(default_factory=ResolverParams)


@dataclass(frozen=True)
class HostName:
    """The DNS name of one device."""

    address: str
    status: Status  # of the reverse lookup
    names: tuple[str, ...] = ()
    #: ``None`` when not checked (no name, or ``forward_confirm`` off).
    confirmed: bool | None = None
    #: The forward lookup of the primary name, when it was made and did not confirm.
    forward_status: Status | None = None
    server: str | None = None
    detail: str = ""

    @property
    def name(self) -> str | None:
        return self.names[0] if self.names else None

    @property
    def host_name(self) -> str | None:
        return split_name(self.name)[0] if self.name else None

    @property
    def domain_name(self) -> str | None:
        return split_name(self.name)[1] if self.name else None


@dataclass(frozen=True)
class DnsResult:
    hosts: tuple[HostName, ...]


def split_name(name: str) -> tuple[str, str]:
    """``linux1.sandiego.lab.example.test`` -> (``linux1``, ``sandiego.lab.example.test``)."""
    parsed = dns.name.from_text(name)
    if len(parsed.labels) <= 2:  # one label and the root
        return name, ""
    host, domain = parsed.split(len(parsed.labels) - 1)
    return host.to_text(), wire.name_text(domain)


async def host_names(
    addresses: Sequence[str], forward_confirm: bool, config: ResolverConfig, deadline: float | None
) -> list[HostName]:
    reverse = await reverse_lookup(addresses, config, deadline)
    if not forward_confirm:
        return [HostName(e.address, e.status, e.names, None, None, e.server, e.detail) for e in reverse]
    questions: dict[Question, int] = {}
    for entry in reverse:
        rdtype = _forward_type(entry.address)
        for name in entry.names:
            questions.setdefault(Question.of_text(name, rdtype), len(questions))
    answers = await resolve_batch(list(questions), config, deadline=deadline)
    return [_confirm(entry, questions, answers) for entry in reverse]


def _confirm(entry: AddressName, questions: Mapping[Question, int], answers: Sequence[Answer]) -> HostName:
    if not entry.names:
        return HostName(entry.address, entry.status, (), None, None, entry.server, entry.detail)
    rdtype = _forward_type(entry.address)
    forward = [answers[questions[Question.of_text(name, rdtype)]] for name in entry.names]
    confirmed = any(entry.address in answer.values for answer in forward)
    forward_status = None if confirmed else forward[0].status
    return HostName(
        entry.address, entry.status, entry.names, confirmed, forward_status, entry.server, entry.detail
    )


def _forward_type(address: str) -> int:
    return wire.AAAA if ipaddress.ip_address(address).version == 6 else wire.A


class DNSProbe:
    topic = "DNS"
    required_capabilities: tuple[str, ...] = ()

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> DnsParams:
        addresses = parse_addresses(targets_text(source, parameters, "ip_addresses"), "ip_addresses")
        return DnsParams(
            addresses, parse_bool(parameters, "forward_confirm", True), parse_resolver_params(parameters)
        )

    async def run(self, params: DnsParams, context: ProbeContext) -> DnsResult:
        config = prepare_resolver(params.resolver, context, params.ip_addresses)
        hosts = await host_names(params.ip_addresses, params.forward_confirm, config, batch_deadline(context))
        return DnsResult(tuple(hosts))

    def encode_results(self, result: DnsResult) -> Sequence[ET.Element]:
        element = ET.Element("result")
        for host in result.hosts:
            entry = sub_element(
                element,
                "host",
                ip=host.address,
                status=str(host.status),
                name=host.name,
                hostName=host.host_name,
                domainName=host.domain_name,
                confirmed=None if host.confirmed is None else str(host.confirmed).lower(),
                forward_status=None if host.forward_status is None else str(host.forward_status),
                server=host.server,
                detail=host.detail or None,
            )
            for name in host.names:
                sub_element(entry, "name", name)
        return [element]


PROBE = DNSProbe()

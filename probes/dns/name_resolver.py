"""``DNSNameResolver``: the DNS name of each IP address (PTR), answered per address.

Request: ``ip_addresses`` (or the record's ``source``) plus the resolver parameters.
Result: ``<result><reverse address=".." status="ok" name=".."><name>..</name></reverse>...</result>``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from midprobe.probes.base import ProbeContext
from midprobe.probes.dns.common import batch_deadline, prepare_resolver
from midprobe.probes.dns.params import ResolverParams, parse_addresses, parse_resolver_params, targets_text
from midprobe.probes.dns.resolver import Answer, Question, ResolverConfig, Status, resolve_batch


@dataclass(frozen=True)
class NameResolverParams:
    ip_addresses: tuple[str, ...]
    resolver: ResolverParams = field(default_factory=ResolverParams)


class AddressName(NamedTuple):
    """The names one address maps back to (a named tuple: a request makes one per address, and a
    frozen dataclass costs several times more to build)."""

    address: str
    status: Status
    names: tuple[str, ...] = ()  # PTR targets without the final dot, the first is the primary
    server: str | None = None
    detail: str = ""

    @property
    def name(self) -> str | None:
        return self.names[0] if self.names else None


@dataclass(frozen=True)
class NameResolverResult:
    addresses: tuple[AddressName, ...]


async def reverse_lookup(
    addresses: Sequence[str], config: ResolverConfig, deadline: float | None
) -> list[AddressName]:
    """PTR lookups for ``addresses`` (canonical text), in order."""
    questions = [Question.of_address(address) for address in addresses]
    answers = await resolve_batch(questions, config, deadline=deadline)
    return [_address_name(address, answer) for address, answer in zip(addresses, answers, strict=True)]


def _address_name(address: str, answer: Answer) -> AddressName:
    return AddressName(address, answer.status, answer.values, answer.server, answer.detail)


def encode_address_name(parent: ET.Element, tag: str, entry: AddressName) -> ET.Element:
    """One address's element; its attribute dict is written out (see ``DNSLookupProbe.encode_results``)."""
    attributes = {"address": entry.address, "status": str(entry.status)}
    if entry.names:
        attributes["name"] = entry.names[0]
    if entry.server is not None:
        attributes["server"] = entry.server
    if entry.detail:
        attributes["detail"] = entry.detail
    element = ET.SubElement(parent, tag, attributes)
    for name in entry.names:
        ET.SubElement(element, "name").text = name
    return element


class DNSNameResolverProbe:
    topic = "DNSNameResolver"
    required_capabilities: tuple[str, ...] = ()

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> NameResolverParams:
        text = targets_text(source, parameters, "ip_addresses")
        return NameResolverParams(parse_addresses(text, "ip_addresses"), parse_resolver_params(parameters))

    async def run(self, params: NameResolverParams, context: ProbeContext) -> NameResolverResult:
        config = prepare_resolver(params.resolver, context, params.ip_addresses)
        entries = await reverse_lookup(params.ip_addresses, config, batch_deadline(context))
        return NameResolverResult(tuple(entries))

    def encode_results(self, result: NameResolverResult) -> Sequence[ET.Element]:
        element = ET.Element("result")
        for entry in result.addresses:
            encode_address_name(element, "reverse", entry)
        return [element]


PROBE = DNSNameResolverProbe()

"""``DNSLookupProbe``: the addresses of each host name (A and AAAA), answered per name.

Request: ``names`` (or the record's ``source``), ``record_types`` (default ``A,AAAA``) plus the
resolver parameters. Result: ``<result><lookup name=".." status="ok"><address type="A">..</address>
</lookup>...</result>``. An address literal given as a name is answered with itself, unasked.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from midprobe.probes.base import ProbeContext
from midprobe.probes.dns.common import batch_deadline, prepare_resolver
from midprobe.probes.dns.params import (
    RECORD_TYPES,
    ResolverParams,
    is_address,
    parse_names,
    parse_record_types,
    parse_resolver_params,
    targets_text,
)
from midprobe.probes.dns.resolver import Answer, Question, ResolverConfig, Status, resolve_batch

#: When no type has an address, the status that explains it best comes first.
_FAILURE_ORDER = (
    Status.NXDOMAIN,
    Status.TIMEOUT,
    Status.SERVFAIL,
    Status.REFUSED,
    Status.ERROR,
    Status.NOANSWER,
)


@dataclass(frozen=True)
class LookupParams:
    names: tuple[str, ...]
    record_types: tuple[str, ...] = ("A", "AAAA")
    resolver: ResolverParams = field(default_factory=ResolverParams)


class NameLookup(NamedTuple):
    """The addresses one name resolves to (a named tuple: a request makes one per name, and a
    frozen dataclass costs several times more to build)."""

    name: str
    status: Status
    addresses: tuple[str, ...] = ()  # A first, then AAAA, in answer order
    canonical_name: str | None = None  # after CNAMEs, when it differs from the name
    server: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class LookupResult:
    lookups: tuple[NameLookup, ...]


async def lookup_addresses(
    names: Sequence[str], record_types: Sequence[str], config: ResolverConfig, deadline: float | None
) -> list[NameLookup]:
    """A/AAAA lookups for ``names`` (as ``parse_names`` returns them), in order."""
    literal = [is_address(name) for name in names]
    questions = [
        Question.of_text(name, RECORD_TYPES[kind])
        for name, is_literal in zip(names, literal, strict=True)
        if not is_literal
        for kind in record_types
    ]
    answers = await resolve_batch(questions, config, deadline=deadline)
    if len(record_types) == 1 and not any(literal):  # one answer per name, in order
        return [_single(name, answer) for name, answer in zip(names, answers, strict=True)]
    remaining = iter(answers)
    lookups = []
    for name, is_literal in zip(names, literal, strict=True):
        if is_literal:
            lookups.append(NameLookup(name, Status.OK, (name,), detail="an address literal"))
        else:
            lookups.append(combine(name, [next(remaining) for _ in record_types]))
    return lookups


def combine(name: str, answers: Sequence[Answer]) -> NameLookup:
    """One verdict from the answers for each record type of ``name``."""
    if len(answers) == 1:
        return _single(name, answers[0])
    addresses = tuple(value for answer in answers for value in answer.values)
    canonical = next((answer.canonical_name for answer in answers if answer.canonical_name), None)
    if addresses:
        deciding = next(answer for answer in answers if answer.values)
        problems = [
            f"{_type_name(answer)}: {answer.status}"
            for answer in answers
            if answer.status not in (Status.OK, Status.NOANSWER)
        ]
        return NameLookup(name, Status.OK, addresses, canonical, deciding.server, "; ".join(problems))
    by_status = {answer.status: answer for answer in reversed(answers)}
    status = next(status for status in _FAILURE_ORDER if status in by_status)
    deciding = by_status[status]
    return NameLookup(name, status, (), canonical, deciding.server, deciding.detail)


def _single(name: str, answer: Answer) -> NameLookup:
    """The verdict when one record type was asked: its answer."""
    detail = "" if answer.values else answer.detail
    return NameLookup(name, answer.status, answer.values, answer.canonical_name, answer.server, detail)


def _type_name(answer: Answer) -> str:
    return next(kind for kind, rdtype in RECORD_TYPES.items() if rdtype == answer.question.rdtype)


def requested_names(source: str, parameters: Mapping[str, str]) -> tuple[str, ...]:
    """The names a ``DNSLookupProbe`` request resolves: ``names``, else ``source`` (pure).

    Address literals are left out (they are answered without DNS). Resolve DNS routing must
    check exactly these names, so the agent's routing check should call this.
    """
    names = parse_names(targets_text(source, parameters, "names"), "names")
    return tuple(name for name in names if not is_address(name))


class DNSLookupProbe:
    topic = "DNSLookupProbe"
    required_capabilities: tuple[str, ...] = ()

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> LookupParams:
        names = parse_names(targets_text(source, parameters, "names"), "names")
        types_text = parameters.get("record_types", "")
        record_types = parse_record_types(types_text) if types_text.strip() else ("A", "AAAA")
        return LookupParams(names, record_types, parse_resolver_params(parameters))

    async def run(self, params: LookupParams, context: ProbeContext) -> LookupResult:
        config = prepare_resolver(params.resolver, context)
        lookups = await lookup_addresses(params.names, params.record_types, config, batch_deadline(context))
        return LookupResult(tuple(lookups))

    def encode_results(self, result: LookupResult) -> Sequence[ET.Element]:
        # The attributes are written out rather than passed to ``sub_element``: a request
        # holds up to 100,000 names, and keyword arguments and their filtering cost more per
        # name than the rest of the encoding.
        element = ET.Element("result")
        subelement = ET.SubElement
        for lookup in result.lookups:
            attributes = {"name": lookup.name, "status": _STATUS_TEXT[lookup.status]}
            if lookup.canonical_name is not None:
                attributes["canonical_name"] = lookup.canonical_name
            if lookup.server is not None:
                attributes["server"] = lookup.server
            if lookup.detail:
                attributes["detail"] = lookup.detail
            entry = subelement(element, "lookup", attributes)
            for address in lookup.addresses:
                subelement(entry, "address", {"type": "AAAA" if ":" in address else "A"}).text = address
        return [element]


#: Each status as the payload writes it.
_STATUS_TEXT = {status: str(status) for status in Status}


PROBE = DNSLookupProbe()

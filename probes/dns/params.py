"""ECC parameters of the DNS probes, validated into typed values without I/O.

Every bad value raises ``ProbeParameterError`` naming the parameter and the item.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

import dns.exception
import dns.name

from midprobe.capabilities.errors import ProbeParameterError
from midprobe.probes.dns import wire
from midprobe.probes.params import parse_int

DEFAULT_TIMEOUT_MS = 2000
DEFAULT_RETRIES = 2
#: A Linux server's UDP socket queues at most 256 small datagrams with the default receive
#: buffer (212,992 bytes, about 830 bytes of accounting each): a window that size overflows
#: it whenever the server waits for a processor, and each lost query then costs a whole
#: time-out. Half of it leaves room and still keeps a loopback server busy.
DEFAULT_CONCURRENCY = 128
DEFAULT_PORT = 53
#: More names or addresses than this in one request is a mistake, not a batch.
MAX_ITEMS = 100_000
MAX_SERVERS = 16
RECORD_TYPES = {"A": wire.A, "AAAA": wire.AAAA}

_SEPARATORS = re.compile(r"[\s,;]+")
#: A host name that needs no escaping, IDNA or other care: letters, digits, ``-`` and ``_`` in
#: labels of 1-63 characters, an optional final dot. ``dns.name.from_text`` would take it as
#: it is, so it is taken without asking it (it costs several times more than the rest of a lookup).
_PLAIN_NAME = re.compile(r"(?:[A-Za-z0-9_-]{1,63}\.)*[A-Za-z0-9_-]{1,63}\.?")
#: An IPv4 address already in canonical text (no leading zeros), as ``ipaddress`` would write it.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
#: The longest plain name, without the final dot, whose wire form fits in 255 octets.
_PLAIN_NAME_MAX = 253


@dataclass(frozen=True)
class ResolverParams:
    """How to ask: which servers (none = the system resolver), how long, how often, how many at once."""

    dns_servers: tuple[str, ...] = ()
    port: int = DEFAULT_PORT
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    retries: int = DEFAULT_RETRIES
    concurrency: int = DEFAULT_CONCURRENCY


def split_list(text: str) -> list[str]:
    """Items separated by commas, semicolons or white space."""
    return [item for item in _SEPARATORS.split(text.strip()) if item]


def parse_addresses(text: str, parameter: str) -> tuple[str, ...]:
    """IPv4/IPv6 addresses in canonical text, duplicates dropped, order kept."""
    addresses: dict[str, None] = {}
    for item in _items(text, parameter, "addresses"):
        if _CANONICAL_IPV4.fullmatch(item):  # the usual case, without building an address object
            addresses[item] = None
            continue
        try:
            addresses[str(ipaddress.ip_address(item))] = None
        except ValueError:
            raise ProbeParameterError(f"{item!r} is not an IP address", parameter=parameter) from None
    return _bounded(tuple(addresses), parameter, "addresses")


def parse_names(text: str, parameter: str) -> tuple[str, ...]:
    """Host names (a final dot is optional), duplicates (ignoring case) dropped, order kept.

    An IP address literal is kept as it is: a lookup of an address answers with the address.
    """
    names: dict[str, str] = {}
    for item in _items(text, parameter, "names"):
        if not is_address(item):
            item = host_name_text(item, parameter)
        names.setdefault(item.lower(), item)
    return _bounded(tuple(names.values()), parameter, "names")


def host_name_text(item: str, parameter: str) -> str:
    """``item`` as a host name written without the final dot, or ``ProbeParameterError``."""
    if len(item) <= _PLAIN_NAME_MAX + 1 and _PLAIN_NAME.fullmatch(item):
        plain = item[:-1] if item.endswith(".") else item
        if len(plain) <= _PLAIN_NAME_MAX:
            return plain
    try:
        name = dns.name.from_text(item)
    except dns.exception.DNSException as error:
        reason = str(error).rstrip(".") or type(error).__name__
        raise ProbeParameterError(f"{item!r} is not a DNS name: {reason}", parameter=parameter) from None
    if name == dns.name.root:
        raise ProbeParameterError("the root name '.' is not a host name", parameter=parameter)
    return wire.name_text(name)


def parse_record_types(text: str, parameter: str = "record_types") -> tuple[str, ...]:
    types: dict[str, None] = {}
    for item in split_list(text.upper()):
        if item not in RECORD_TYPES:
            allowed = ", ".join(RECORD_TYPES)
            raise ProbeParameterError(f"record type {item!r} is not one of {allowed}", parameter=parameter)
        types[item] = None
    if not types:
        raise ProbeParameterError("no record type given", parameter=parameter)
    return tuple(types)


def parse_resolver_params(parameters: Mapping[str, str]) -> ResolverParams:
    """``dns_servers``, ``dns_port``, ``timeout`` (ms per attempt), ``retries``, ``concurrency``."""
    servers_text = parameters.get("dns_servers", "")
    servers = parse_addresses(servers_text, "dns_servers") if servers_text.strip() else ()
    if len(servers) > MAX_SERVERS:
        raise ProbeParameterError(f"{len(servers)} servers, at most {MAX_SERVERS}", parameter="dns_servers")
    return ResolverParams(
        dns_servers=servers,
        port=parse_int(parameters, "dns_port", DEFAULT_PORT, 1, 65535),
        timeout_ms=parse_int(parameters, "timeout", DEFAULT_TIMEOUT_MS, 1, 60_000),
        retries=parse_int(parameters, "retries", DEFAULT_RETRIES, 0, 10),
        concurrency=parse_int(parameters, "concurrency", DEFAULT_CONCURRENCY, 1, 4096),
    )


def targets_text(source: str, parameters: Mapping[str, str], parameter: str) -> str:
    """The list parameter, or the record's ``source`` when the parameter is absent or blank."""
    text = parameters.get(parameter, "")
    if text.strip():
        return text
    if source.strip():
        return source
    raise ProbeParameterError(
        "nothing to resolve (neither the parameter nor source is set)", parameter=parameter
    )


def is_address(item: str) -> bool:
    """Whether ``item`` is an IPv4 or IPv6 address literal (cheap for host names)."""
    # An IPv4 address ends with a digit, an IPv6 one has a colon: most host names are out at once.
    if ":" not in item and not (item[-1:].isdigit() and item.replace(".", "").isdigit()):
        return False
    try:
        ipaddress.ip_address(item)
    except ValueError:
        return False
    return True


def _items(text: str, parameter: str, what: str) -> list[str]:
    items = split_list(text)
    if len(items) > MAX_ITEMS:
        raise ProbeParameterError(
            f"{len(items)} {what}, at most {MAX_ITEMS} per request", parameter=parameter
        )
    return items


def _bounded(items: tuple[str, ...], parameter: str, what: str) -> tuple[str, ...]:
    if not items:
        raise ProbeParameterError(f"no {what} given", parameter=parameter)
    return items

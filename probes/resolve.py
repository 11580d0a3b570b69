"""Host names to addresses (and addresses back to names) for the probes: under the target policy,
never blocking the event loop.

Every probe that takes host names (BannerSniff, HostSweep, Shazzam, SNMP) resolves them here, then
checks the addresses against the policy, before a packet leaves; Shazzam's reverse lookups
(``resolve_names``) come from here too. When the policy names a DNS server
(``TargetPolicy.name_server``, itself checked against the policy) only that server is asked.
Otherwise, outside lab mode, the system resolver answers, on a worker thread (born in the loop
thread's network namespace). In lab mode without a name server a name is refused with
``TargetNotAllowed``, and no reverse lookup is allowed: the system resolver could send the question
anywhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from midprobe.capabilities.errors import TargetNotAllowed, TargetSpecError
from midprobe.probes.safety import IPAddress, TargetPolicy
from midprobe.probes.targets import TargetSpec

if TYPE_CHECKING:  # typing only: dnspython is imported when a name is asked
    from midprobe.probes.dns.resolver import ResolverConfig

#: A host name to its address; raises ``TargetSpecError`` (or ``TargetNotAllowed``) when it cannot.
AsyncResolver = Callable[[str], Awaitable[IPAddress]]
#: An address (text) to its DNS name, ``None`` when it has none.
AsyncReverseResolver = Callable[[str], Awaitable[str | None]]

#: Seconds per question to the policy's DNS server (the lab's), and the retries after the first.
DNS_SERVER_TIMEOUT = 2.0
DNS_SERVER_RETRIES = 1


def _preferred(name: str, addresses: list[IPAddress]) -> IPAddress:
    """IPv4 first, as nmap does without ``-6``."""
    if not addresses:
        raise TargetSpecError(f"cannot resolve host name {name!r}: no address")
    return min(addresses, key=lambda address: address.version)


async def system_lookup(name: str) -> IPAddress:
    """``name`` through the system resolver, on a worker thread (``loop.getaddrinfo``)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as error:
        raise TargetSpecError(f"cannot resolve host name {name!r}: {error}") from None
    return _preferred(name, [ipaddress.ip_address(info[4][0]) for info in infos])


def _server_config(server: str, port: int) -> ResolverConfig:
    from midprobe.probes.dns.resolver import ResolverConfig  # lazy: dnspython only when a name is asked

    return ResolverConfig(
        servers=(server,),
        port=port,
        timeout=DNS_SERVER_TIMEOUT,
        retries=DNS_SERVER_RETRIES,
        concurrency=2,
        sockets=1,
    )


def dns_server_lookup(server: str, *, port: int = 53, deadline: float | None = None) -> AsyncResolver:
    """A resolver asking only ``server`` (A, then AAAA), on the event loop's own sockets."""
    from midprobe.probes.dns import wire  # lazy: dnspython is only needed when a name is given
    from midprobe.probes.dns.resolver import Question, Status, resolve_batch

    config = _server_config(server, port)

    async def lookup(name: str) -> IPAddress:
        try:
            question = wire.absolute_name(name)
        except ValueError as error:
            raise TargetSpecError(f"cannot resolve host name {name!r}: {error}") from None
        answers = await resolve_batch(
            [Question(question, wire.A), Question(question, wire.AAAA)], config, deadline=deadline
        )
        found = [
            ipaddress.ip_address(value)
            for answer in answers
            if answer.status == Status.OK
            for value in answer.values
        ]
        if not found:
            why = ", ".join(sorted({str(answer.status) for answer in answers}))
            raise TargetSpecError(f"cannot resolve host name {name!r} through DNS server {server}: {why}")
        return _preferred(name, found)

    return lookup


def dns_server_reverse_lookup(
    server: str, *, port: int = 53, deadline: float | None = None
) -> AsyncReverseResolver:
    """A reverse resolver asking only ``server`` for the PTR name of an address."""
    from midprobe.probes.dns.name_resolver import reverse_lookup  # lazy, as above

    config = _server_config(server, port)

    async def lookup(address: str) -> str | None:
        (entry,) = await reverse_lookup([address], config, deadline)
        return entry.name

    return lookup


async def system_reverse_lookup(address: str) -> str | None:
    """The PTR name of ``address`` from the system resolver (on a worker thread), or ``None``."""

    def ask() -> str | None:
        try:
            return socket.gethostbyaddr(address)[0]
        except OSError:
            return None

    return await asyncio.get_running_loop().run_in_executor(None, ask)


async def _refuse(name: str) -> IPAddress:
    raise TargetNotAllowed(
        name, "lab mode resolves host names only through the lab's DNS server, and none is known"
    )


def _name_server(policy: TargetPolicy) -> str | None:
    """The DNS server ``policy`` sends names to, checked against it; ``None``: it names none."""
    if policy.name_server is None:
        return None
    try:
        policy.check(policy.name_server)
    except TargetNotAllowed as error:
        raise TargetNotAllowed(f"DNS server {policy.name_server}", error.allowed) from None
    return policy.name_server


def resolver_for(policy: TargetPolicy, *, deadline: float | None = None) -> AsyncResolver:
    """The resolver ``policy`` allows: its DNS server, the system one, or (lab mode) one that refuses."""
    server = _name_server(policy)
    if server is not None:
        return dns_server_lookup(server, deadline=deadline)
    return _refuse if policy.lab_mode else system_lookup


def reverse_resolver_for(
    policy: TargetPolicy, *, deadline: float | None = None
) -> AsyncReverseResolver | None:
    """The reverse resolver ``policy`` allows: its DNS server or the system one; ``None`` in lab mode
    without a DNS server (no reverse lookup may go out then)."""
    server = _name_server(policy)
    if server is not None:
        return dns_server_reverse_lookup(server, deadline=deadline)
    return None if policy.lab_mode else system_reverse_lookup


async def resolve_host(
    source: str, policy: TargetPolicy, *, resolver: AsyncResolver | None = None, deadline: float | None = None
) -> IPAddress:
    """The address of ``source`` (an address or a host name), checked against ``policy``.

    ``resolver`` replaces the one the policy picks (tests, callers with their own DNS).
    """
    text = source.strip()
    try:
        address: IPAddress = ipaddress.ip_address(text)
    except ValueError:
        address = await (resolver or resolver_for(policy, deadline=deadline))(text)
    policy.check(address)
    return address


def check_spec(spec: TargetSpec, policy: TargetPolicy) -> None:
    """Refuse the whole spec when any address it yields is outside the policy (box arithmetic)."""
    if policy.allowed is None:
        return
    outside = spec.first_outside(policy.allowed)
    if outside is not None:
        policy.check(outside)


async def resolve_spec(
    spec: TargetSpec,
    policy: TargetPolicy,
    *,
    resolver: AsyncResolver | None = None,
    deadline: float | None = None,
) -> TargetSpec:
    """``spec`` with its host names resolved, every address checked against ``policy``."""
    if spec.host_names:
        lookup = resolver or resolver_for(policy, deadline=deadline)
        found: dict[str, IPAddress] = {}
        for name in dict.fromkeys(spec.host_names):
            found[name] = await lookup(name)
        spec = spec.resolved(found.__getitem__)
    check_spec(spec, policy)
    return spec

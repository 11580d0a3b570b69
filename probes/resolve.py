"""Host names to addresses for the probes: under the target policy, never blocking the event loop.

Every probe that takes host names (BannerSniff, HostSweep, Shazzam, SNMP) resolves them here, then
checks the addresses against the policy, before a packet leaves. Outside lab mode the system
resolver answers, through ``loop.getaddrinfo`` (a worker thread, born in the loop thread's network
namespace). In lab mode a name is resolved only through the lab's DNS server
(``TargetPolicy.name_server``, itself checked against the policy); when none is known the name is
refused with ``TargetNotAllowed``: the system resolver could send the question anywhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable

from midprobe.capabilities.errors import TargetNotAllowed, TargetSpecError
from midprobe.probes.safety import IPAddress, TargetPolicy
from midprobe.probes.targets import TargetSpec

#: A host name to its address; raises ``TargetSpecError`` (or ``TargetNotAllowed``) when it cannot.
AsyncResolver = Callable[[str], Awaitable[IPAddress]]

#: Seconds per question to the lab's DNS server, and the retries after the first.
LAB_DNS_TIMEOUT = 2.0
LAB_DNS_RETRIES = 1


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


def dns_server_lookup(server: str, *, port: int = 53, deadline: float | None = None) -> AsyncResolver:
    """A resolver asking only ``server`` (A, then AAAA), on the event loop's own sockets."""
    from midprobe.probes.dns import wire  # lazy: dnspython is only needed when a name is given
    from midprobe.probes.dns.resolver import Question, ResolverConfig, Status, resolve_batch

    config = ResolverConfig(
        servers=(server,),
        port=port,
        timeout=LAB_DNS_TIMEOUT,
        retries=LAB_DNS_RETRIES,
        concurrency=2,
        sockets=1,
    )

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


async def _refuse(name: str) -> IPAddress:
    raise TargetNotAllowed(
        name, "lab mode resolves host names only through the lab's DNS server, and none is known"
    )


def resolver_for(policy: TargetPolicy, *, deadline: float | None = None) -> AsyncResolver:
    """The resolver ``policy`` allows: the system one, the lab's DNS server, or one that refuses."""
    if not policy.lab_mode:
        return system_lookup
    if policy.name_server is None:
        return _refuse
    try:
        policy.check(policy.name_server)
    except TargetNotAllowed as error:
        raise TargetNotAllowed(f"DNS server {policy.name_server}", error.allowed) from None
    return dns_server_lookup(policy.name_server, deadline=deadline)


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

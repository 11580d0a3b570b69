"""What the three DNS probes share: the resolver set-up under the safety policy and the batch deadline."""

from __future__ import annotations

from collections.abc import Iterable

from midprobe.capabilities.errors import TargetNotAllowed
from midprobe.probes.base import ProbeContext
from midprobe.probes.dns.params import ResolverParams
from midprobe.probes.dns.resolver import ResolverConfig, system_nameservers


def prepare_resolver(
    params: ResolverParams, context: ProbeContext, targets: Iterable[str] = ()
) -> ResolverConfig:
    """The resolver settings to use, after checking every server and target address against the policy.

    Raises ``TargetNotAllowed`` before anything is sent when one is outside the allowed networks.
    """
    servers = params.dns_servers or system_nameservers()
    for server in servers:
        try:
            context.policy.check(server)
        except TargetNotAllowed as error:
            origin = "" if params.dns_servers else " (the system resolver, from /etc/resolv.conf)"
            raise TargetNotAllowed(f"DNS server {server}{origin}", error.allowed) from None
    for target in targets:
        context.policy.check(target)
    return ResolverConfig(
        servers=servers,
        port=params.port,
        timeout=params.timeout_ms / 1000.0,
        retries=params.retries,
        concurrency=params.concurrency,
    )


#: The batch stops this share of the remaining time before the probe deadline (at most
#: ``DEADLINE_MARGIN_MAX`` seconds), so that the per-name results, timeouts for the rest, are
#: built and returned before the runner's own time-out cancels the probe and loses them all.
DEADLINE_MARGIN_FRACTION = 0.1
DEADLINE_MARGIN_MAX = 1.0


def batch_deadline(context: ProbeContext) -> float:
    """The ``time.monotonic()`` value at which the resolver stops asking."""
    return context.deadline - min(DEADLINE_MARGIN_MAX, context.remaining() * DEADLINE_MARGIN_FRACTION)

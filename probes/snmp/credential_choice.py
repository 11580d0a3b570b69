"""Opening an authenticated SNMP client: which credential works on this agent.

Candidates come from the credential store in the order of docs/credentials.md (affinity, then
``order``, scoped by ``ip_ranges``, ``public`` last for v1/v2c). A candidate is proven by a
GET of sysObjectID.0: any answer, even an error-status, means the agent accepted it.
Consecutive community candidates are tried side by side (a wrong community costs a whole
timeout, and agents do not lock communities out); the best-ranked one that answers wins.
SNMPv3 users are tried one at a time, as their failures count against a budget.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from midprobe.capabilities.errors import (
    AuthenticationFailed,
    ProbeError,
    ProbeParameterError,
    TargetSpecError,
)
from midprobe.probes.credentials import (
    PROTOCOL_SNMP,
    CredentialStore,
    SNMPCommunityCredential,
    SNMPv3Credential,
)
from midprobe.probes.resolve import resolve_host
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.snmp.auth import CommunityAuth, SnmpAuth, SnmpVersion, auth_from_credential
from midprobe.probes.snmp.client import BulkSizeMemory, ClientOptions, SessionOpener, SnmpClient
from midprobe.probes.snmp.errors import (
    SnmpAuthenticationFailed,
    SnmpDeadlineExceeded,
    SnmpErrorStatus,
    SnmpTimeout,
    SnmpUnreachable,
)

if TYPE_CHECKING:
    from midprobe.probes.snmp.pysnmp_backend import PysnmpEngines

SYS_OBJECT_ID = (1, 3, 6, 1, 2, 1, 1, 2, 0)


class SnmpNoCredentialWorked(AuthenticationFailed):
    """Every candidate failed on the agent; ``failures`` says how, per credential id."""

    def __init__(self, address: str, failures: Sequence[tuple[str, ProbeError]]) -> None:
        self.address = address
        self.failures = tuple(failures)
        detail = "; ".join(f"{credential_id!r}: {_short(error)}" for credential_id, error in failures)
        super().__init__(f"no SNMP credential worked on {address} ({detail})")


def _short(error: ProbeError) -> str:
    if isinstance(error, SnmpTimeout):
        return "no answer"
    if isinstance(error, SnmpAuthenticationFailed):
        return f"{error.explanation} ({error.counter})"
    return str(error)


@dataclass(frozen=True)
class SessionRequest:
    """Where and how to connect; which credentials the request allows."""

    address: str
    port: int = 161
    version: SnmpVersion | None = None
    credential_id: str | None = None
    credential_tag: str | None = None
    community_index: str = "0"
    options: ClientOptions = field(default_factory=ClientOptions)


async def resolve_address(source: str, policy: TargetPolicy, *, deadline: float | None = None) -> str:
    """The IP address of ``source`` (an address or a host name), checked against ``policy``."""
    try:
        return str(await resolve_host(source, policy, deadline=deadline))
    except TargetSpecError as error:
        raise ProbeParameterError(error.message, parameter="source") from None


def store_of(credentials: object) -> CredentialStore:
    """The store from ``context.credentials`` (none given: only the ``public`` community)."""
    if credentials is None:
        return CredentialStore()
    if isinstance(credentials, CredentialStore):
        return credentials
    raise ProbeParameterError(f"context.credentials is a {type(credentials).__name__}, not a CredentialStore")


def candidate_auths(store: CredentialStore, request: SessionRequest) -> list[SnmpAuth]:
    found: list[SnmpAuth] = []
    for credential in store.candidates(
        request.address, PROTOCOL_SNMP, restrict_id=request.credential_id, restrict_tag=request.credential_tag
    ):
        if not isinstance(credential, SNMPCommunityCredential | SNMPv3Credential):
            continue
        auth = auth_from_credential(credential)
        if request.version is not None and auth.version != request.version:
            continue
        if isinstance(auth, CommunityAuth):
            auth = auth.with_index(request.community_index)
        found.append(auth)
    return found


@contextlib.asynccontextmanager
async def authenticated_client(
    request: SessionRequest,
    store: CredentialStore,
    *,
    policy: TargetPolicy,
    deadline: float,
    memory: BulkSizeMemory,
    opener: SessionOpener | None = None,
) -> AsyncIterator[SnmpClient]:
    """An open client whose credential the agent accepted (recorded as the device's affinity)."""
    policy.check(request.address)
    skipped = store.skip_remaining(request.address, PROTOCOL_SNMP)
    if skipped > 0:
        raise AuthenticationFailed(
            f"{request.address}: every SNMP credential failed recently; skipped for another {skipped:.0f} s"
        )
    candidates = candidate_auths(store, request)
    if not candidates:
        wanted = ", ".join(
            f"{key}={value!r}"
            for key, value in (
                ("version", request.version),
                ("credential_id", request.credential_id),
                ("credential_tag", request.credential_tag),
            )
            if value
        )
        raise AuthenticationFailed(
            f"{request.address}: no SNMP credential applies" + (f" ({wanted})" if wanted else "")
        )
    engines: PysnmpEngines | None = None
    if opener is None and any(not isinstance(auth, CommunityAuth) for auth in candidates):
        from midprobe.probes.snmp.pysnmp_backend import PysnmpEngines  # lazy: pysnmp takes 0.2 s to import

        engines = PysnmpEngines()
    try:
        client = await _first_that_works(
            request, candidates, store, policy, deadline, memory, engines, opener
        )
        try:
            yield client
        finally:
            await client.close()
    finally:
        if engines is not None:
            engines.close()


async def _first_that_works(
    request: SessionRequest,
    candidates: list[SnmpAuth],
    store: CredentialStore,
    policy: TargetPolicy,
    deadline: float,
    memory: BulkSizeMemory,
    engines: PysnmpEngines | None,
    opener: SessionOpener | None,
) -> SnmpClient:
    failures: list[tuple[str, ProbeError]] = []
    position = 0
    while position < len(candidates):
        batch = [candidates[position]]
        if isinstance(batch[0], CommunityAuth):
            while position + len(batch) < len(candidates) and isinstance(
                candidates[position + len(batch)], CommunityAuth
            ):
                batch.append(candidates[position + len(batch)])
        position += len(batch)
        clients = [
            SnmpClient(
                request.address,
                auth,
                port=request.port,
                options=request.options,
                policy=policy,
                deadline=deadline,
                memory=memory,
                engines=engines,
                opener=opener,
            )
            for auth in batch
        ]
        tasks = [asyncio.ensure_future(_prove(client)) for client in clients]
        try:
            for client, task in zip(clients, tasks, strict=True):
                error = await task
                credential_id = client.auth.credential_id or "-"
                if error is None:
                    _record(store, request.address, client, failures)
                    clients.remove(client)
                    return client
                if isinstance(error, SnmpUnreachable | SnmpDeadlineExceeded):
                    raise error
                failures.append((credential_id, error))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for other in clients:
                await other.close()
    store.record_exhausted(request.address, PROTOCOL_SNMP)
    for credential_id, error in failures:
        if isinstance(error, SnmpAuthenticationFailed):
            store.record_failure(request.address, PROTOCOL_SNMP, credential_id)
    if len(failures) == 1:
        raise failures[0][1]
    if all(isinstance(error, SnmpTimeout) for _, error in failures):
        first = failures[0][1]
        assert isinstance(first, SnmpTimeout)
        ids = ", ".join(repr(credential_id) for credential_id, _ in failures)
        raise SnmpTimeout(
            f"{first.target} with any of {len(failures)} credentials ({ids})",
            first.timeout,
            first.attempts,
            community_based=all(isinstance(auth, CommunityAuth) for auth in candidates),
        )
    raise SnmpNoCredentialWorked(request.address, failures)


async def _prove(client: SnmpClient) -> ProbeError | None:
    """``None`` when the agent accepted the client's credential, else why not."""
    try:
        await client.get([SYS_OBJECT_ID])
    except SnmpErrorStatus:
        return None  # an authenticated answer, if not the one hoped for
    except ProbeError as error:
        await client.close()
        return error
    return None


def _record(
    store: CredentialStore, address: str, client: SnmpClient, failures: list[tuple[str, ProbeError]]
) -> None:
    """The agent is alive and took this credential: the ones before it were really wrong."""
    for credential_id, _ in failures:
        store.record_failure(address, PROTOCOL_SNMP, credential_id)
    if client.auth.credential_id:
        store.record_success(address, PROTOCOL_SNMP, client.auth.credential_id)

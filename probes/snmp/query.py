"""``SNMP``: walk the ``oid_spec_list`` of an ECC request and answer with typed XML.

Parameters (docs/ecc-reference.md section 4, defaults in brackets): ``oid_spec_list`` (required),
``timeout`` [1500] ms per request, ``retries`` [2], ``use_getbulk`` [true], ``port`` [161],
``version`` [any: 1, 2c or 3], ``credential_id``, ``credential_tag``, ``index`` [0]
(Cisco community indexing). A failing spec (an error-status from the agent) is reported
in the result and the others still run; a timeout or a rejected credential fails the probe.
"""

from __future__ import annotations

import contextlib
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from midprobe.capabilities.errors import ProbeParameterError
from midprobe.probes.base import ProbeContext
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.snmp.auth import SNMP_VERSIONS, SnmpVersion
from midprobe.probes.snmp.client import BulkSizeMemory, ClientOptions, SessionOpener, SnmpClient
from midprobe.probes.snmp.credential_choice import (
    SessionRequest,
    authenticated_client,
    resolve_address,
    store_of,
)
from midprobe.probes.snmp.encode import encode_varbinds
from midprobe.probes.snmp.errors import SnmpErrorStatus
from midprobe.probes.snmp.oidspec import OidSpec, TableSpec, WalkSpec, parse_oid_spec_list
from midprobe.probes.snmp.values import Oid, SnmpValue, VarBind

TOPIC = "SNMP"
DEFAULT_TIMEOUT_MS = 1500
DEFAULT_RETRIES = 2

_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off"})


# --- parameters ------------------------------------------------------------------------------


def parse_bool(parameters: Mapping[str, str], name: str, default: bool) -> bool:
    raw = parameters.get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ProbeParameterError(f"{raw!r} is not true or false", parameter=name)


def parse_int(parameters: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = parameters.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ProbeParameterError(f"{raw!r} is not a whole number", parameter=name) from None
    if not low <= value <= high:
        raise ProbeParameterError(f"{value} is outside {low}..{high}", parameter=name)
    return value


def parse_version(parameters: Mapping[str, str]) -> SnmpVersion | None:
    raw = (parameters.get("version") or "").strip().lower().removeprefix("v")
    if not raw:
        return None
    for version in SNMP_VERSIONS:
        if raw == version:
            return version
    raise ProbeParameterError(f"{raw!r} is not one of 1, 2c, 3", parameter="version")


@dataclass(frozen=True)
class ConnectionParams:
    """What both SNMP probes share: where, which credentials, how long to wait."""

    source: str
    port: int = 161
    version: SnmpVersion | None = None
    credential_id: str | None = None
    credential_tag: str | None = None
    community_index: str = "0"
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    retries: int = DEFAULT_RETRIES
    use_getbulk: bool = True

    @classmethod
    def parse(cls, source: str, parameters: Mapping[str, str]) -> ConnectionParams:
        if not source or not source.strip():
            raise ProbeParameterError(
                "the SNMP probe needs a source (an address or a host name)", parameter="source"
            )
        index = (parameters.get("index") or "0").strip()
        if not index.isalnum():
            raise ProbeParameterError(f"{index!r} is not a community index", parameter="index")
        return cls(
            source=source.strip(),
            port=parse_int(parameters, "port", 161, 1, 65535),
            version=parse_version(parameters),
            credential_id=(parameters.get("credential_id") or "").strip() or None,
            credential_tag=(parameters.get("credential_tag") or "").strip() or None,
            community_index=index,
            timeout_ms=parse_int(parameters, "timeout", DEFAULT_TIMEOUT_MS, 1, 600_000),
            retries=parse_int(parameters, "retries", DEFAULT_RETRIES, 0, 20),
            use_getbulk=parse_bool(parameters, "use_getbulk", True),
        )

    def session_request(self, address: str) -> SessionRequest:
        return SessionRequest(
            address=address,
            port=self.port,
            version=self.version,
            credential_id=self.credential_id,
            credential_tag=self.credential_tag,
            community_index=self.community_index,
            options=ClientOptions(
                timeout=self.timeout_ms / 1000.0, retries=self.retries, use_bulk=self.use_getbulk
            ),
        )


@contextlib.asynccontextmanager
async def open_client(
    connection: ConnectionParams,
    credentials: object,
    *,
    policy: TargetPolicy,
    deadline: float,
    memory: BulkSizeMemory,
    opener: SessionOpener | None = None,
) -> AsyncIterator[tuple[str, SnmpClient]]:
    """``connection``'s source resolved under ``policy``, and a client to it whose credential the
    agent accepted: what every SNMP probe does before it asks anything."""
    address = await resolve_address(connection.source, policy, deadline=deadline)
    async with authenticated_client(
        connection.session_request(address),
        store_of(credentials),
        policy=policy,
        deadline=deadline,
        memory=memory,
        opener=opener,
    ) as client:
        yield address, client


@dataclass(frozen=True)
class SnmpParams:
    connection: ConnectionParams
    specs: tuple[OidSpec, ...]


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpecOutcome:
    """What one spec line gave: its varbinds, why it stopped early, or its error."""

    spec: OidSpec
    varbinds: tuple[VarBind, ...] = ()
    stopped: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class SnmpResult:
    source: str
    address: str
    port: int
    version: str
    credential_id: str | None
    outcomes: tuple[SpecOutcome, ...]
    requests: int = 0
    elapsed_ms: int = 0
    bulk_size: int | None = None

    @property
    def varbinds(self) -> tuple[VarBind, ...]:
        merged: dict[Oid, SnmpValue] = {}
        for outcome in self.outcomes:
            merged.update(outcome.varbinds)
        return tuple(sorted(merged.items()))


class WalkedAgent(Protocol):
    """What an ``<snmp>`` element says: which agent answered, how, and the varbinds read."""

    @property
    def source(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def version(self) -> str: ...
    @property
    def credential_id(self) -> str | None: ...
    @property
    def varbinds(self) -> tuple[VarBind, ...]: ...


def snmp_element(result: WalkedAgent) -> ET.Element:
    """``<snmp source=.. version=.. credential_id=..>`` holding the typed elements (SNMP and SNMPClassify)."""
    attributes = {
        "source": result.source,
        "address": result.address,
        "port": str(result.port),
        "version": result.version,
    }
    if result.credential_id:
        attributes["credential_id"] = result.credential_id
    element = ET.Element("snmp", attributes)
    element.extend(encode_varbinds(result.varbinds))
    return element


def encode_snmp_result(result: SnmpResult) -> ET.Element:
    """The ``<result>`` element of an ``SNMP`` answer (pure)."""
    element = ET.Element("result")
    element.append(snmp_element(result))
    for outcome in result.outcomes:
        where = {"spec": outcome.spec.source, "line": str(outcome.spec.line)}
        if outcome.error:
            ET.SubElement(element, "error", where).text = outcome.error
        elif outcome.stopped:
            ET.SubElement(element, "warning", where).text = outcome.stopped
    return element


# --- running specs ---------------------------------------------------------------------------


def rows_of(spec: TableSpec, columns: Sequence[Sequence[VarBind]]) -> tuple[VarBind, ...]:
    """The table's varbinds, only for the rows the child filters keep (pure).

    ``columns`` holds each child's walked varbinds, in ``spec.children`` order. With no
    filter every row is kept; with filters, a row is kept when any of them matches.
    """
    by_instance: dict[Oid, dict[int, VarBind]] = {}
    for position, (child, varbinds) in enumerate(zip(spec.children, columns, strict=True)):
        for oid, value in varbinds:
            by_instance.setdefault(oid[len(child.oid) :], {})[position] = (oid, value)
    filtered = [
        (position, child.filter) for position, child in enumerate(spec.children) if child.filter is not None
    ]
    kept: list[VarBind] = []
    for instance in sorted(by_instance):
        cells = by_instance[instance]
        if filtered and not any(
            position in cells and check.matches(cells[position][1]) for position, check in filtered
        ):
            continue
        kept.extend(cells[position] for position in sorted(cells))
    return tuple(kept)


async def run_spec(client: SnmpClient, spec: OidSpec) -> SpecOutcome:
    try:
        if isinstance(spec, WalkSpec):
            walked = await client.walk(spec.oid)
            return SpecOutcome(spec, walked.varbinds, walked.stopped)
        results = await client.walk_many([child.oid for child in spec.children])
    except SnmpErrorStatus as error:
        return SpecOutcome(spec, error=str(error))
    stopped = "; ".join(result.stopped for result in results if result.stopped) or None
    return SpecOutcome(spec, rows_of(spec, [result.varbinds for result in results]), stopped)


@dataclass
class SnmpProbe:
    """The ``SNMP`` topic. Keeps the learnt bulk sizes per agent across runs."""

    memory: BulkSizeMemory = field(default_factory=BulkSizeMemory)
    #: The sessions' opener; ``None``: the real backends (tests replay recorded walks).
    opener: SessionOpener | None = None
    topic: str = TOPIC
    required_capabilities: tuple[str, ...] = ()

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> SnmpParams:
        raw = parameters.get("oid_spec_list")
        if raw is None or not raw.strip():
            raise ProbeParameterError("is required", parameter="oid_spec_list")
        return SnmpParams(ConnectionParams.parse(source, parameters), parse_oid_spec_list(raw))

    async def run(self, params: SnmpParams, context: ProbeContext) -> SnmpResult:
        started = time.monotonic()
        connection = params.connection
        async with open_client(
            connection,
            context.credentials,
            policy=context.policy,
            deadline=context.deadline,
            memory=self.memory,
            opener=self.opener,
        ) as (address, client):
            outcomes = [await run_spec(client, spec) for spec in params.specs]
            return SnmpResult(
                source=connection.source,
                address=address,
                port=connection.port,
                version=client.auth.version,
                credential_id=client.auth.credential_id,
                outcomes=tuple(outcomes),
                requests=client.stats.requests,
                elapsed_ms=round((time.monotonic() - started) * 1000),
                bulk_size=client.learnt_bulk_size,
            )

    def encode_results(self, result: SnmpResult) -> Sequence[ET.Element]:
        return [encode_snmp_result(result)]


PROBE = SnmpProbe()

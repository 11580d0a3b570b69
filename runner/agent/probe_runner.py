"""Turns one ECC output record into one ECC input record by running its probe.

The runner never raises for a bad request or a failed probe: a malformed payload,
an unknown topic, bad parameters, fields a result cannot echo, a missing capability,
a refused target, a time-out or a probe error all become an input record whose
payload carries ``error=".."`` and whose ``error_string`` says the same. Only
cancellation escapes. Payloads over a few kilobytes are decoded in a small thread pool of
their own, so a large one never holds the event loop (lease renewal, heartbeats) or the
queue's threads; smaller ones cost less to decode than a hand-off to a thread.
"""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from midprobe.capabilities.errors import (
    MidprobeError,
    MissingCapability,
    PayloadError,
    ProbeError,
    ProbeParameterError,
    ProbeTimeout,
)
from midprobe.probes.base import ProbeContext, SharedResources
from midprobe.probes.credentials.store import CredentialStore
from midprobe.probes.registry import ProbeRegistry
from midprobe.probes.safety import TargetPolicy
from midprobe.runner.agent.limits import ConcurrencyLimits
from midprobe.runner.agent.logs import get_logger
from midprobe.runner.ecc.builders import new_input_record
from midprobe.runner.ecc.payload import MultiProbePayload, ParametersPayload, decode_output_payload
from midprobe.runner.ecc.record import (
    ALL_AGENTS,
    QUEUE_PROCESSING_TOPIC,
    EccRecord,
    check_request_text,
    normalize_agent_name,
)

log = get_logger("midprobe.runner")

#: A request may shorten its own deadline with this parameter (milliseconds).
TIMEOUT_PARAMETER = "probe_timeout_ms"
#: Parameters the runner itself reads; probes never see them (they are still echoed back).
RUNNER_PARAMETERS = frozenset({TIMEOUT_PARAMETER})


def probe_parameters(name: str, parameters: Mapping[str, str]) -> dict[str, str]:
    """What a probe's parser gets: the request's parameters without the runner's own, plus its name.

    docs/ecc-reference.md: the record's name is the probe name (for SSHCommand, the command itself);
    a ``name`` parameter carries it when it is too long for the field.
    """
    given = {key: value for key, value in parameters.items() if key not in RUNNER_PARAMETERS}
    if name:
        given.setdefault("name", name)
    return given


#: Several probes in one request (payload root ``<probes>``), as ServiceNow's identification does.
MULTIPROBE_TOPIC = "MultiProbe"

#: Checks a request against the agent's capability values (e.g. Resolve DNS routing);
#: returns why the agent may not run it, or None when it may.
RoutingCheck = Callable[[str, str, Mapping[str, str]], str | None]

#: Threads that decode payloads: few, so hostile payloads cost bounded memory and CPU at once.
DECODE_THREADS = 2
#: Payloads up to this many characters are decoded on the event loop: at most a few hundred
#: elements, well under a millisecond, less than handing them to a thread costs.
INLINE_DECODE_CHARS = 4096
_DECODE_POOL = ThreadPoolExecutor(max_workers=DECODE_THREADS, thread_name_prefix="midprobe-decode")


@dataclass(frozen=True)
class AgentIdentity:
    """Who is running probes: the MID name and what it can do."""

    name: str
    capabilities: frozenset[str] = frozenset()
    routing_check: RoutingCheck | None = None

    @property
    def agent(self) -> str:
        return normalize_agent_name(self.name)


@dataclass
class ProbeRunner:
    """Runs probe requests for one agent, within its concurrency limits and deadlines."""

    registry: ProbeRegistry
    identity: AgentIdentity
    policy: TargetPolicy = field(default_factory=TargetPolicy.unrestricted)
    limits: ConcurrencyLimits = field(default_factory=ConcurrencyLimits)
    probe_timeout_seconds: float = 600.0
    credentials: CredentialStore | None = None
    #: Deadlines and probe_time are read on this clock (tests give a fake one).
    clock: Callable[[], float] = time.monotonic
    #: What probes keep between requests (SSH connections); closed by ``close``.
    shared: SharedResources = field(default_factory=SharedResources)

    async def close(self) -> None:
        """Close what the probes kept open (the agent is stopping)."""
        await self.shared.close()

    async def answer(
        self, output: EccRecord, payload: str | None = None, *, credentials: CredentialStore | None = None
    ) -> EccRecord:
        """The input record answering ``output`` (``payload``: the full payload text when stored aside).

        ``credentials``: what its probes log in with instead of the runner's own (the credentials
        of the discovery the output belongs to).
        """
        started = self.clock()
        parameters: Mapping[str, str] = {}
        elements: Sequence[ET.Element]
        error: str | None = None
        try:
            self._check_answerable(output)
            text = output.payload if payload is None else payload
            if len(text) <= INLINE_DECODE_CHARS:
                decoded = self._decode(output, text)
            else:
                loop = asyncio.get_running_loop()
                decoded = await loop.run_in_executor(_DECODE_POOL, self._decode, output, text)
            parameters = decoded.as_dict() if isinstance(decoded, ParametersPayload) else _shared(decoded)
            self._check_addressed_to_me(output)
            deadline = self.clock() + self._timeout(parameters)
            async with self.limits.slot(output.priority, output.topic, output.source):
                store = credentials or self.credentials
                if isinstance(decoded, MultiProbePayload):
                    elements, error = await self._run_multiprobe(output, decoded, deadline, store)
                else:
                    elements = await self._run_one(
                        output.topic, output.name, output.source, parameters, deadline, store
                    )
            return new_input_record(
                output,
                agent=self.identity.agent,
                results=elements,
                probe_time_ms=_elapsed_ms(self.clock, started),
                output_parameters=parameters,
                error=error,
            )
        except MidprobeError as failure:
            return self._error_record(output, parameters, started, failure)
        except Exception as failure:  # a bug in a probe must not stop the agent
            log.error("probe crashed", topic=output.topic, sys_id=output.sys_id, error=repr(failure))
            return self._error_record(output, parameters, started, failure)

    def refusal(self, output: EccRecord, reason: Exception) -> EccRecord:
        """The error input answering ``output`` when no other answer can be written (echoes its fields only)."""
        return new_input_record(
            output,
            agent=self.identity.agent,
            results=[],
            probe_time_ms=0,
            error=_one_line(reason),
            output_parameters=(),
        )

    async def _run_one(
        self,
        topic: str,
        name: str,
        source: str,
        parameters: Mapping[str, str],
        deadline: float,
        credentials: CredentialStore | None,
    ) -> Sequence[ET.Element]:
        """Check, validate and run one probe; its ``<result>`` elements (raises ``MidprobeError``)."""
        probe = self.registry.get(topic)
        for capability in probe.required_capabilities:
            if capability not in self.identity.capabilities:
                raise MissingCapability(topic, capability)
        if self.identity.routing_check is not None:
            refusal = self.identity.routing_check(topic, source, parameters)
            if refusal:
                raise ProbeParameterError(refusal)
        typed = probe.parse_params(source, probe_parameters(name, parameters))
        context = ProbeContext(
            agent_name=self.identity.name,
            deadline=deadline,
            policy=self.policy,
            capabilities=self.identity.capabilities,
            credentials=credentials,
            clock=self.clock,
            shared=self.shared,
        )
        try:
            async with asyncio.timeout(context.remaining()):
                result = await probe.run(typed, context)
        except TimeoutError:
            raise ProbeTimeout(f"probe {topic} on {source or '-'}", self._timeout(parameters)) from None
        return probe.encode_results(result)

    async def _run_multiprobe(
        self,
        output: EccRecord,
        request: MultiProbePayload,
        deadline: float,
        credentials: CredentialStore | None,
    ) -> tuple[list[ET.Element], str | None]:
        """Run each probe of a MultiProbe in order within one deadline; one failing does not stop the rest.

        Each probe's ``<result>`` elements carry ``probe="TOPIC"`` (and ``name``); a probe that
        failed gives ``<result probe=".." error=".."/>``. The record is an error only when every
        probe failed.
        """
        shared = {parameter.name: parameter.value for parameter in request.parameters}
        elements: list[ET.Element] = []
        failures: list[str] = []
        for sub in request.probes:
            parameters = {**shared, **sub.as_dict()}
            tags = {"probe": sub.topic, **({"name": sub.name} if sub.name else {})}
            try:
                produced = await self._run_one(
                    sub.topic, sub.name, output.source, parameters, deadline, credentials
                )
            except MidprobeError as failure:
                message = _one_line(failure)
                failures.append(f"{sub.topic}: {message}")
                elements.append(ET.Element("result", {**tags, "error": message}))
                continue
            for element in produced:
                element.attrib.update(tags)
                elements.append(element)
        if failures and len(failures) == len(request.probes):
            return elements, "every probe of the MultiProbe failed: " + "; ".join(failures)
        return elements, None

    def _decode(self, output: EccRecord, payload: str) -> ParametersPayload | MultiProbePayload:
        if not payload.strip():
            return ParametersPayload()
        decoded = decode_output_payload(payload)
        if isinstance(decoded, MultiProbePayload):
            if output.topic != MULTIPROBE_TOPIC:
                raise PayloadError(f"a <probes> payload needs topic {MULTIPROBE_TOPIC}, not {output.topic}")
            return decoded
        if not isinstance(decoded, ParametersPayload):
            raise PayloadError(f"topic {output.topic} takes a <parameters> payload")
        if output.topic == MULTIPROBE_TOPIC:
            raise PayloadError(f"topic {MULTIPROBE_TOPIC} takes a <probes> payload")
        return decoded

    def _check_answerable(self, output: EccRecord) -> None:
        """Refuse a request whose fields its result could not echo (it would run again after every lease)."""
        if output.topic == QUEUE_PROCESSING_TOPIC:
            raise PayloadError(f"{QUEUE_PROCESSING_TOPIC} is the claim topic, not a probe")
        for field_name in ("topic", "name", "source", "agent_correlator"):
            try:
                check_request_text(getattr(output, field_name), field_name=field_name)
            except MidprobeError as refused:
                raise PayloadError(f"request not run: {refused}") from None

    def _check_addressed_to_me(self, output: EccRecord) -> None:
        if output.agent not in (self.identity.agent, ALL_AGENTS):
            raise ProbeParameterError(f"record is addressed to {output.agent}, not to {self.identity.agent}")

    def _timeout(self, parameters: Mapping[str, str]) -> float:
        raw = parameters.get(TIMEOUT_PARAMETER)
        if raw is None:
            return self.probe_timeout_seconds
        try:
            requested = int(raw) / 1000
        except ValueError:
            raise ProbeParameterError(
                f"not a whole number of milliseconds: {raw!r}", parameter=TIMEOUT_PARAMETER
            ) from None
        if requested <= 0:
            raise ProbeParameterError("must be positive", parameter=TIMEOUT_PARAMETER)
        return min(requested, self.probe_timeout_seconds)

    def _error_record(
        self, output: EccRecord, parameters: Mapping[str, str], started: float, error: Exception
    ) -> EccRecord:
        return new_input_record(
            output,
            agent=self.identity.agent,
            results=[],
            probe_time_ms=_elapsed_ms(self.clock, started),
            error=_one_line(error),
            output_parameters=parameters,
        )


def _shared(request: MultiProbePayload) -> dict[str, str]:
    return {parameter.name: parameter.value for parameter in request.parameters}


def _one_line(error: Exception) -> str:
    """What an error record says: the message, prefixed by the kind when it is not a probe error."""
    kind = type(error).__name__
    message = str(error) if isinstance(error, MidprobeError) else f"internal error: {kind}: {error}"
    if not isinstance(error, ProbeError | PayloadError) and isinstance(error, MidprobeError):
        message = f"{kind}: {message}"
    return message.splitlines()[0] if message else kind


def _elapsed_ms(clock: Callable[[], float], started: float) -> int:
    return max(0, round((clock() - started) * 1000))

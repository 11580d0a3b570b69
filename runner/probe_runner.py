"""Turns one ECC output record into one ECC input record by running its probe.

The runner never raises for a bad request or a failed probe: a malformed payload,
an unknown topic, bad parameters, a missing capability, a refused target, a
time-out or a probe error all become an input record whose payload carries
``error=".."`` and whose ``error_string`` says the same. Only cancellation escapes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from midprobe.capabilities.errors import (
    MidprobeError,
    MissingCapability,
    PayloadError,
    ProbeError,
    ProbeParameterError,
    ProbeTimeout,
)
from midprobe.probes.base import ProbeContext
from midprobe.probes.registry import ProbeRegistry
from midprobe.probes.safety import TargetPolicy
from midprobe.runner.ecc.builders import new_input_record
from midprobe.runner.ecc.payload import ParametersPayload, decode_output_payload
from midprobe.runner.ecc.record import ALL_AGENTS, EccRecord, normalize_agent_name
from midprobe.runner.limits import ConcurrencyLimits
from midprobe.runner.logs import get_logger

log = get_logger("midprobe.runner")

#: A request may shorten its own deadline with this parameter (milliseconds).
TIMEOUT_PARAMETER = "probe_timeout_ms"
#: Parameters the runner itself reads; probes never see them (they are still echoed back).
RUNNER_PARAMETERS = frozenset({TIMEOUT_PARAMETER})

#: Checks a request against the agent's capability values (e.g. Resolve DNS routing);
#: returns why the agent may not run it, or None when it may.
RoutingCheck = Callable[[str, str, Mapping[str, str]], str | None]


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
    credentials: object = None

    async def answer(self, output: EccRecord, payload: str | None = None) -> EccRecord:
        """The input record answering ``output`` (``payload``: the full payload text when stored aside)."""
        started = time.monotonic()
        parameters: Mapping[str, str] = {}
        try:
            parameters = self._parameters(output, output.payload if payload is None else payload)
            self._check_addressed_to_me(output)
            probe = self.registry.get(output.topic)
            for capability in probe.required_capabilities:
                if capability not in self.identity.capabilities:
                    raise MissingCapability(output.topic, capability)
            if self.identity.routing_check is not None:
                refusal = self.identity.routing_check(output.topic, output.source, parameters)
                if refusal:
                    raise ProbeParameterError(refusal)
            probe_parameters = {k: v for k, v in parameters.items() if k not in RUNNER_PARAMETERS}
            # ECC.md: the record's name is the probe name (for SSHCommand, the command itself);
            # a `name` parameter carries it when it is too long for the field.
            if output.name:
                probe_parameters.setdefault("name", output.name)
            typed = probe.parse_params(output.source, probe_parameters)
            timeout = self._timeout(parameters)
            context = ProbeContext(
                agent_name=self.identity.name,
                deadline=time.monotonic() + timeout,
                policy=self.policy,
                capabilities=self.identity.capabilities,
                credentials=self.credentials,
            )
            async with self.limits.slot(output.priority, output.topic, output.source):
                try:
                    result = await asyncio.wait_for(probe.run(typed, context), timeout=context.remaining())
                except TimeoutError:
                    raise ProbeTimeout(f"probe {output.topic} on {output.source or '-'}", timeout) from None
            elements = probe.encode_results(result)
        except MidprobeError as error:
            return self._error_record(output, parameters, started, error)
        except Exception as error:  # a bug in a probe must not stop the agent
            log.error("probe crashed", topic=output.topic, sys_id=output.sys_id, error=repr(error))
            return self._error_record(output, parameters, started, error)
        return new_input_record(
            output,
            agent=self.identity.agent,
            results=elements,
            probe_time_ms=_elapsed_ms(started),
            output_parameters=parameters,
        )

    def _parameters(self, output: EccRecord, payload: str) -> Mapping[str, str]:
        if not payload.strip():
            return {}
        decoded = decode_output_payload(payload)
        if not isinstance(decoded, ParametersPayload):
            raise PayloadError(f"topic {output.topic} takes a <parameters> payload")
        return decoded.as_dict()

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
        kind = type(error).__name__
        message = str(error) if isinstance(error, MidprobeError) else f"internal error: {kind}: {error}"
        if not isinstance(error, ProbeError | PayloadError) and isinstance(error, MidprobeError):
            message = f"{kind}: {message}"
        return new_input_record(
            output,
            agent=self.identity.agent,
            results=[],
            probe_time_ms=_elapsed_ms(started),
            error=message.splitlines()[0] if message else kind,
            output_parameters=parameters,
        )


def _elapsed_ms(started: float) -> int:
    return max(0, round((time.monotonic() - started) * 1000))

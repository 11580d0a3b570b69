"""Build the records the CLI and the agent write: a request (output) and its answer (input)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from midprobe.capabilities.errors import ConfigError, PayloadError
from midprobe.runner.ecc.payload import (
    Parameter,
    ParameterInput,
    ParametersPayload,
    decode_output_payload,
    echo_parameters,
    encode_input_payload,
    encode_output_payload,
)
from midprobe.runner.ecc.record import (
    PRIORITY_STANDARD,
    QUEUE_PROCESSING_TOPIC,
    EccRecord,
    check_request_text,
)

#: A request may shorten its own deadline with this parameter (milliseconds): the agent's probe
#: runner reads it, the probe never sees it.
TIMEOUT_PARAMETER = "probe_timeout_ms"

#: The topic of the error answering an output that (wrongly) has the claim topic ``queue.processing``,
#: which no result may carry.
REFUSED_CLAIM_TOPIC = "queue.processing.refused"


def new_output_record(
    *,
    agent: str,
    topic: str,
    source: str = "",
    name: str | None = None,
    parameters: ParameterInput = (),
    priority: int = PRIORITY_STANDARD,
    agent_correlator: str = "",
) -> EccRecord:
    """A ``ready`` output (a probe request); ``name`` defaults to the topic, ``agent`` takes NAME too.

    Fields an agent could not echo back in its result are refused here (``ConfigError``
    naming the field): control characters, surrogates, and the claim topic ``queue.processing``.
    """
    for field_name, value in (
        ("topic", topic),
        ("name", "" if name is None else name),
        ("source", source),
        ("agent_correlator", agent_correlator),
    ):
        if isinstance(value, str):
            check_request_text(value, field_name=field_name)
    if topic == QUEUE_PROCESSING_TOPIC:
        raise ConfigError(f"{QUEUE_PROCESSING_TOPIC} is the claim topic, not a probe", field="topic")
    return EccRecord(
        agent=agent,
        topic=topic,
        queue="output",
        name=topic if name is None else name,
        source=source,
        state="ready",
        payload=encode_output_payload(parameters),
        priority=priority,
        agent_correlator=agent_correlator,
    )


def new_input_record(
    output: EccRecord,
    *,
    agent: str,
    results: Sequence[ET.Element],
    probe_time_ms: int,
    error: str | None = None,
    result_code: int | None = None,
    output_parameters: ParameterInput | None = None,
    page: tuple[int, bool] | None = None,
) -> EccRecord:
    """The input answering ``output``: same topic, name, source, priority and correlator.

    ``page`` = (number, last) makes it one page of a multi-page result (docs/ecc.md).

    The payload echoes every field of the output and its parameters (docs/ecc-reference.md section 2).
    ``output_parameters`` defaults to the parameters decoded from ``output.payload``
    (pass them when the payload was stored aside or is not a ``<parameters>`` payload;
    an undecodable payload echoes the fields only). With ``error`` the record's
    ``error_string`` says the same as the payload's ``error`` attribute.
    """
    if output_parameters is None:
        try:
            decoded = decode_output_payload(output.payload) if output.payload.strip() else None
        except PayloadError:
            decoded = None
        output_parameters = decoded.parameters if isinstance(decoded, ParametersPayload) else ()
    payload = encode_input_payload(
        results,
        echoed=echo_parameters(output, output_parameters),
        probe_time_ms=probe_time_ms,
        error=error,
        result_code=result_code,
        page=page,
    )
    return EccRecord(
        agent=agent,
        topic=REFUSED_CLAIM_TOPIC if output.topic == QUEUE_PROCESSING_TOPIC else output.topic,
        queue="input",
        name=output.name,
        source=output.source,
        state="ready",
        payload=payload,
        response_to=output.sys_id,
        error_string=error or "",
        priority=output.priority,
        agent_correlator=output.agent_correlator,
    )


QUEUE_STATS_TOPIC = "queue.stats"
"""Topic of the input an agent sends periodically about its own queues (the MID's ``queue.stats``)."""


def new_queue_stats_record(
    agent: str,
    *,
    pools: Sequence[tuple[str, int, int, int]],
    in_flight: int,
    results_waiting: int,
) -> EccRecord:
    """The ``queue.stats`` input (our layout: ServiceNow's is not public).

    ``pools`` holds (name, priority, threads, running) per priority pool; the payload is
    ``<results probe_time="0" result_code="0"><result in_flight=".." results_waiting="..">
    <pool name="interactive" priority="0" threads="10" running="3"/>...</result><parameters>
    (the agent, name, source)</parameters></results>``.
    """
    element = ET.Element("result", in_flight=str(in_flight), results_waiting=str(results_waiting))
    for name, priority, threads, running in pools:
        ET.SubElement(
            element, "pool", name=name, priority=str(priority), threads=str(threads), running=str(running)
        )
    record = EccRecord(agent=agent, topic=QUEUE_STATS_TOPIC, queue="input", name=QUEUE_STATS_TOPIC)
    echoed = [
        Parameter("topic", QUEUE_STATS_TOPIC),
        Parameter("agent", record.agent),
        Parameter("source", record.agent),
    ]
    payload = encode_input_payload([element], echoed=echoed, probe_time_ms=0)
    return record.with_changes(source=record.agent, payload=payload)


__all__ = [
    "QUEUE_STATS_TOPIC",
    "REFUSED_CLAIM_TOPIC",
    "new_input_record",
    "new_output_record",
    "new_queue_stats_record",
]

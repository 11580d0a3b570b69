"""ECC records and payloads: the messages between users, the queue and agents (docs/ecc-reference.md section 1-2)."""

from midprobe.runner.ecc.builders import new_input_record, new_output_record
from midprobe.runner.ecc.payload import (
    MultiProbePayload,
    Parameter,
    ParametersPayload,
    ProbeRequest,
    ResultsPayload,
    decode_input_payload,
    decode_output_payload,
    decode_parameters,
    encode_input_payload,
    encode_output_payload,
    pretty_payload,
)
from midprobe.runner.ecc.record import (
    ALL_AGENTS,
    ECC_PAYLOAD_CAP,
    QUEUE_PROCESSING_TOPIC,
    SEE_ATTACHMENT,
    EccRecord,
    EccState,
    QueueSide,
    new_sys_id,
    normalize_agent_name,
)

__all__ = [
    "ALL_AGENTS",
    "ECC_PAYLOAD_CAP",
    "QUEUE_PROCESSING_TOPIC",
    "SEE_ATTACHMENT",
    "EccRecord",
    "EccState",
    "MultiProbePayload",
    "Parameter",
    "ParametersPayload",
    "ProbeRequest",
    "QueueSide",
    "ResultsPayload",
    "decode_input_payload",
    "decode_output_payload",
    "decode_parameters",
    "encode_input_payload",
    "encode_output_payload",
    "new_input_record",
    "new_output_record",
    "new_sys_id",
    "normalize_agent_name",
    "pretty_payload",
]

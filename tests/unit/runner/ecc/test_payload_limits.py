"""Hostile payloads and request fields: refused with ``PayloadError``/``ConfigError``, never a foreign exception."""

from __future__ import annotations

import time

import pytest

from midprobe.capabilities.errors import ConfigError, PayloadError
from midprobe.runner.ecc.builders import REFUSED_CLAIM_TOPIC, new_input_record, new_output_record
from midprobe.runner.ecc.payload import (
    MAX_PAYLOAD_DEPTH,
    decode_input_payload,
    decode_output_payload,
    decode_parameters,
    decode_queue_processing,
    encode_queue_processing,
    parse_xml,
)
from midprobe.runner.ecc.record import EccRecord

DECODERS = (decode_output_payload, decode_input_payload, decode_parameters, decode_queue_processing)


@pytest.mark.parametrize("decode", DECODERS)
def test_bytes_declaring_an_unknown_encoding_are_a_payload_error(decode: object) -> None:
    payload = b'<?xml version="1.0" encoding="no-such-codec"?><parameters/>'
    with pytest.raises(PayloadError, match="encoding"):
        decode(payload)  # type: ignore[operator]


@pytest.mark.parametrize("decode", DECODERS)
def test_a_lone_surrogate_is_a_payload_error(decode: object) -> None:
    with pytest.raises(PayloadError):
        decode('<parameters><parameter name="a" value="\ud800"/></parameters>')  # type: ignore[operator]


def test_deep_nesting_is_refused_while_parsing_before_the_tree_grows() -> None:
    hostile = "<results>" + "<a>" * 2_000_000 + "</a>" * 2_000_000 + "</results>"  # 14 MB
    started = time.process_time()
    with pytest.raises(PayloadError, match=f"over {MAX_PAYLOAD_DEPTH} deep"):
        decode_input_payload(hostile)
    # Refused after MAX_PAYLOAD_DEPTH elements, not after parsing 2 million of them.
    assert time.process_time() - started < 1.0


def test_a_payload_of_too_many_elements_is_refused() -> None:
    with pytest.raises(PayloadError, match="over 100 elements"):
        parse_xml("<results>" + "<result/>" * 101 + "</results>", max_elements=100)
    assert len(parse_xml("<results>" + "<result/>" * 99 + "</results>", max_elements=100)) == 99


def test_nesting_at_the_limit_is_read() -> None:
    depth = MAX_PAYLOAD_DEPTH
    assert parse_xml("<a>" * depth + "</a>" * depth).tag == "a"


def test_a_parameter_with_an_empty_name_is_refused() -> None:
    with pytest.raises(PayloadError, match="no name"):
        decode_parameters('<parameters><parameter name="" value="x"/></parameters>')
    with pytest.raises(PayloadError, match="no name"):
        decode_input_payload(
            '<results probe_time="1"><parameters><parameter name=""/></parameters></results>'
        )


def test_a_second_parameters_block_is_refused() -> None:
    with pytest.raises(PayloadError, match="more than one <parameters>"):
        decode_input_payload('<results probe_time="1"><parameters/><parameters/></results>')
    with pytest.raises(PayloadError, match="more than one shared"):
        decode_output_payload('<probes><parameters/><parameters/><probe topic="SNMP"/></probes>')
    with pytest.raises(PayloadError, match="only hold one <parameters>"):
        decode_output_payload('<probes><probe topic="SNMP"><parameters/><parameters/></probe></probes>')


@pytest.mark.parametrize("count", [0, 1, 3])
def test_an_output_message_count_other_than_the_real_one_is_refused(count: int) -> None:
    ids = ["a" * 32, "b" * 32]
    payload = encode_queue_processing(ids).replace(
        'output_message_count="2"', f'output_message_count="{count}"'
    )
    with pytest.raises(PayloadError, match=f"output_message_count={count} but 2"):
        decode_queue_processing(payload)
    assert decode_queue_processing(encode_queue_processing(ids)) == tuple(ids)


@pytest.mark.parametrize(
    ("field", "changes"),
    [
        ("source", {"source": "\x01"}),
        ("name", {"name": "uname \x1b[2J"}),
        ("name", {"name": "echo \x9b31m"}),
        ("topic", {"topic": "SSH\x07"}),
        ("agent_correlator", {"agent_correlator": "job\n1"}),
        ("source", {"source": "host\udcff"}),
    ],
)
def test_enqueue_refuses_fields_a_result_could_not_echo(field: str, changes: dict[str, str]) -> None:
    request: dict[str, str] = {"topic": "HeartbeatProbe", **changes}
    with pytest.raises(ConfigError, match=f"^{field}: holds character U\\+"):
        new_output_record(
            agent="a1",
            topic=request["topic"],
            name=request.get("name"),
            source=request.get("source", ""),
            agent_correlator=request.get("agent_correlator", ""),
        )


def test_enqueue_refuses_the_claim_topic() -> None:
    with pytest.raises(ConfigError, match=r"^topic: queue\.processing is the claim topic"):
        new_output_record(agent="a1", topic="queue.processing")


def test_a_record_refuses_a_lone_surrogate_in_any_text_field() -> None:
    for field in ("topic", "name", "source", "payload", "error_string", "agent_correlator"):
        with pytest.raises(ConfigError, match=f"^{field}: holds lone surrogate U\\+D800"):
            EccRecord(**{"agent": "a1", "topic": "T", "queue": "output", field: "x\ud800"})  # type: ignore[arg-type]


def test_the_answer_to_a_poison_output_is_writable_and_names_the_request() -> None:
    """An output already in the queue with fields no builder accepts still gets an answer the queue can store."""
    output = EccRecord(agent="a1", topic="queue.processing", queue="output", name="x\x1b[0m", source="\x01")
    answer = new_input_record(output, agent="a1", results=[], probe_time_ms=0, error="refused")
    assert answer.topic == REFUSED_CLAIM_TOPIC
    assert answer.response_to == output.sys_id
    echoed = decode_input_payload(answer.payload)
    assert echoed.echoed("source") == "\ufffd"
    assert echoed.echoed("name") == "x\ufffd[0m"
    assert echoed.error == "refused"


def test_the_size_cap_counts_bytes_not_characters() -> None:
    from midprobe.runner.ecc.payload import parse_xml

    text = "<parameters>" + "é" * 20 + "</parameters>"  # 45 characters, 65 bytes in UTF-8
    assert len(text) < 50 < len(text.encode("utf-8"))
    with pytest.raises(PayloadError, match="over the 50-byte limit"):
        parse_xml(text, max_bytes=50)
    assert parse_xml(text, max_bytes=100).tag == "parameters"


@pytest.mark.parametrize("label", ["topic", "name"])
def test_a_multiprobe_refuses_characters_xml_cannot_carry(label: str) -> None:
    from midprobe.runner.ecc.payload import ProbeRequest, encode_multiprobe_payload

    fields = {"topic": "SSHCommand", "name": "uname"}
    fields[label] = fields[label] + "\x01"
    with pytest.raises(PayloadError, match=f"probe {label} .* holds a character XML cannot carry"):
        encode_multiprobe_payload([ProbeRequest(topic=fields["topic"], name=fields["name"])])

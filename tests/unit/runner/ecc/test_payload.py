"""The ECC payload codec: ServiceNow-shaped fixtures, round-trip properties, hostile input."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from midprobe.capabilities.errors import PayloadError
from midprobe.runner.ecc.builders import new_input_record, new_output_record
from midprobe.runner.ecc.payload import (
    ECHOED_FIELDS,
    MultiProbePayload,
    Parameter,
    ParametersPayload,
    ProbeRequest,
    ResultsPayload,
    decode_input_payload,
    decode_output_payload,
    decode_parameters,
    decode_queue_processing,
    echo_parameters,
    encode_input_payload,
    encode_multiprobe_payload,
    encode_output_payload,
    encode_queue_processing,
    parse_xml,
    pretty_payload,
)
from midprobe.runner.ecc.record import ECC_PAYLOAD_CAP, SEE_ATTACHMENT, new_sys_id

FIXTURES = Path(__file__).resolve().parents[4] / "fixtures" / "ecc"
HOSTILE = sorted((FIXTURES / "hostile").glob("*.xml"))

_INVALID_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Any character XML can carry, with the ones that need escaping made likely.
xml_char = st.one_of(
    st.characters(codec="utf-8").filter(lambda c: _INVALID_XML.match(c) is None),
    st.sampled_from(
        ["<", ">", "&", '"', "'", "\n", "\r", "\t", " ", "]]>", "&amp;", "é", "中", "\U0001f600"]
    ),
)
xml_text = st.lists(xml_char, max_size=30).map("".join)
names = st.lists(xml_char, min_size=1, max_size=20).map("".join)
parameter_dicts = st.dictionaries(names, xml_text, max_size=8)
xml_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,10}", fullmatch=True)


# -- fixtures in ServiceNow shape ------------------------------------------------------------------


def test_shazzam_output_fixture() -> None:
    decoded = decode_output_payload((FIXTURES / "output_shazzam.xml").read_text())
    assert isinstance(decoded, ParametersPayload)
    assert decoded.as_dict() == {
        "ports": "22,80,443,1000-2000",
        "scanners": "GenericTCP",
        "connect_wait_ms": "1000",
    }
    assert decoded.get("ports") == "22,80,443,1000-2000"
    assert decoded.get("missing", "x") == "x"


def test_shazzam_input_fixture() -> None:
    decoded = decode_input_payload((FIXTURES / "input_shazzam.xml").read_bytes())
    assert (decoded.probe_time_ms, decoded.result_code, decoded.error) == (1843, 0, None)
    (result,) = decoded.results
    hosts = result.findall("host")
    assert [host.get("ip") for host in hosts] == ["198.18.0.10", "198.18.0.11"]
    open_ports = [s.get("port") for s in hosts[0].findall("scanner") if s.get("result") == "open"]
    assert open_ports == ["22"]
    assert decoded.echoed("topic") == "Shazzam"
    assert decoded.echoed("source") == "198.18.0.0/28"
    assert decoded.echoed("ports") == "22,80"
    assert [p.name for p in decoded.parameters[: len(ECHOED_FIELDS)]] == list(ECHOED_FIELDS)


def test_sshcommand_fixtures() -> None:
    assert (
        decode_parameters((FIXTURES / "output_sshcommand.xml").read_text())["command_timeout_ms"] == "300000"
    )
    decoded = decode_input_payload((FIXTURES / "input_sshcommand.xml").read_text())
    (result,) = decoded.results
    assert result.get("command") == "uname -a"
    assert (result.findtext("stdout") or "").startswith("Linux ssh1 ")
    assert result.findtext("stderr") == ""
    assert decoded.echoed("name") == "uname -a"
    failed = decode_input_payload((FIXTURES / "input_sshcommand_timeout.xml").read_text())
    assert failed.result_code == 1
    assert failed.error == "command timed out after 300 s"


def test_multiprobe_fixture_and_heartbeat_fixture() -> None:
    decoded = decode_output_payload((FIXTURES / "output_multiprobe.xml").read_text())
    assert isinstance(decoded, MultiProbePayload)
    assert decoded.parameters == (Parameter("port", "22"),)
    assert [(p.topic, p.name) for p in decoded.probes] == [
        ("SSHCommand", "uname -a"),
        ("SSHCommand", "cat /etc/os-release"),
    ]
    assert decoded.probes[1].as_dict() == {"must_sudo": "false"}
    heartbeat = decode_output_payload((FIXTURES / "input_heartbeat.xml").read_text())
    assert isinstance(heartbeat, ResultsPayload)
    assert heartbeat.result_code == 0
    assert heartbeat.results[0].find("heartbeat/capability") is not None


def test_queue_processing_fixture_and_encoder() -> None:
    ids = decode_queue_processing((FIXTURES / "queue_processing.xml").read_text())
    assert ids == ("6f1c2a9e0b7d4e3f8a5b1c2d3e4f5a6b", "0a1b2c3d4e5f60718293a4b5c6d7e8f9")
    encoded = encode_queue_processing(ids)
    assert encoded.startswith('<queue.processing output_message_count="2"><sys_id state="processing">')
    assert decode_queue_processing(encoded) == ids
    with pytest.raises(PayloadError, match=r"output_message_count=3 but 1"):
        decode_queue_processing(
            '<queue.processing output_message_count="3"><sys_id>a</sys_id></queue.processing>'
        )


# -- round trips -----------------------------------------------------------------------------------


@given(parameter_dicts)
def test_output_parameters_round_trip(parameters: dict[str, str]) -> None:
    encoded = encode_output_payload(parameters)
    decoded = decode_output_payload(encoded)
    assert isinstance(decoded, ParametersPayload)
    assert decoded.as_dict() == parameters
    assert [p.name for p in decoded.parameters] == list(parameters)  # order kept
    assert decode_parameters(encoded) == parameters


@settings(max_examples=40)
@given(st.lists(st.tuples(names, names, parameter_dicts), min_size=1, max_size=4), parameter_dicts)
def test_multiprobe_round_trip(probes: list[tuple[str, str, dict[str, str]]], shared: dict[str, str]) -> None:
    requests = tuple(
        ProbeRequest(topic, name, tuple(Parameter(*kv) for kv in p.items())) for topic, name, p in probes
    )
    decoded = decode_output_payload(encode_multiprobe_payload(requests, shared))
    assert decoded == MultiProbePayload(
        probes=requests, parameters=tuple(Parameter(*kv) for kv in shared.items())
    )


@st.composite
def elements(draw: st.DrawFn, depth: int = 0) -> ET.Element:
    element = ET.Element(draw(xml_names), draw(st.dictionaries(xml_names, xml_text, max_size=3)))
    element.text = draw(st.none() | xml_text)
    if depth < 2:
        for child in draw(st.lists(elements(depth + 1), max_size=3)):
            child.tail = draw(st.none() | xml_text)
            element.append(child)
    return element


def _canonical(element: ET.Element) -> tuple[object, ...]:
    return (
        element.tag,
        sorted(element.attrib.items()),
        element.text or "",
        [(_canonical(child), child.tail or "") for child in element],
    )


@settings(max_examples=60)
@given(
    st.lists(elements(), max_size=3),
    st.lists(st.tuples(names, xml_text), max_size=10),
    st.integers(min_value=0, max_value=10**9),
    st.none() | xml_text.filter(bool),
)
def test_input_payload_round_trip(
    results: list[ET.Element], echoed: list[tuple[str, str]], probe_time: int, error: str | None
) -> None:
    parameters = [Parameter(*pair) for pair in echoed]
    encoded = encode_input_payload(results, echoed=parameters, probe_time_ms=probe_time, error=error)
    decoded = decode_input_payload(encoded)
    assert decoded.probe_time_ms == probe_time
    assert decoded.error == error
    assert decoded.result_code == (1 if error else 0)
    assert decoded.parameters == tuple(parameters)  # duplicates and order kept
    assert [_canonical(e) for e in decoded.results] == [_canonical(e) for e in results]


@settings(max_examples=60)
@given(st.lists(elements(), max_size=3), st.lists(st.tuples(names, xml_text), max_size=5))
def test_input_payload_is_what_elementtree_writes_with_short_empty_tags_and_cr_kept(
    results: list[ET.Element], echoed: list[tuple[str, str]]
) -> None:
    root = ET.Element("results", probe_time="3", result_code="0")
    root.extend(results)
    block = ET.SubElement(root, "parameters")
    for name, value in echoed:
        ET.SubElement(block, "parameter", name=name, value=value)
    expected = ET.tostring(root, encoding="unicode").replace(" />", "/>").replace("\r", "&#13;")

    encoded = encode_input_payload(results, echoed=[Parameter(*pair) for pair in echoed], probe_time_ms=3)

    assert encoded == expected


def test_result_code_can_be_given() -> None:
    decoded = decode_input_payload(encode_input_payload([], probe_time_ms=5, error="refused", result_code=7))
    assert (decoded.result_code, decoded.error) == (7, "refused")


# -- what a probe may hand the encoder ----------------------------------------------------------


def test_control_characters_in_results_become_replacement_characters() -> None:
    result = ET.Element("result", command="ls\x1b[0m")
    ET.SubElement(result, "stdout").text = "\x1b[31mred\x1b[0m\x00"
    encoded = encode_input_payload([result], probe_time_ms=1, error="bad\x07bell")
    decoded = decode_input_payload(encoded)
    assert decoded.results[0].get("command") == "ls\ufffd[0m"
    assert decoded.results[0].findtext("stdout") == "\ufffd[31mred\ufffd[0m\ufffd"
    assert decoded.error == "bad\ufffdbell"
    assert result.findtext("stdout") == "\x1b[31mred\x1b[0m\x00"  # the probe's element is untouched


@pytest.mark.parametrize("tag", ["1.3.6.1", "has space", "", "a<b"])
def test_results_with_names_xml_cannot_carry_raise(tag: str) -> None:
    with pytest.raises(PayloadError, match=r"is not an XML name"):
        encode_input_payload([ET.Element(tag)], probe_time_ms=1)
    bad_attribute = ET.Element("result", {tag or " ": "x"})
    with pytest.raises(PayloadError, match=r"attribute name"):
        encode_input_payload([bad_attribute], probe_time_ms=1)


def test_bad_probe_time_and_non_elements_raise() -> None:
    with pytest.raises(PayloadError, match=r"probe_time"):
        encode_input_payload([], probe_time_ms=-1)
    with pytest.raises(PayloadError, match=r"must be an XML element"):
        encode_input_payload(["<result/>"], probe_time_ms=1)  # type: ignore[list-item]
    comment = ET.Element("result")
    comment.append(ET.Comment("hi"))
    with pytest.raises(PayloadError, match=r"comments"):
        encode_input_payload([comment], probe_time_ms=1)


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"x": "a\x01b"}, r"parameter 'x': value holds character U\+0001"),
        ({"a\x0b": "v"}, r"name holds character U\+000B"),
        ({"": "v"}, "empty name"),
        ([("x", "1"), ("x", "2")], "'x' is given twice"),
    ],
)
def test_output_parameters_xml_cannot_carry_raise(parameters: object, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        encode_output_payload(parameters)  # type: ignore[arg-type]


# -- hostile and malformed payloads ----------------------------------------------------------------


@pytest.mark.parametrize("path", HOSTILE, ids=[p.stem for p in HOSTILE])
def test_hostile_fixtures_raise_one_line_payload_errors(path: Path) -> None:
    with pytest.raises(PayloadError) as caught:
        decode_output_payload(path.read_bytes())
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("payload ")
    assert "root:" not in message  # the external entity was never read


def test_hostile_fixture_messages_name_the_problem() -> None:
    messages = {}
    for path in HOSTILE:
        with pytest.raises(PayloadError) as caught:
            decode_output_payload(path.read_text())
        messages[path.stem] = str(caught.value)
    assert messages["billion_laughs"] == "payload declares a DTD, which is not allowed"
    assert messages["doctype_only"] == "payload declares a DTD, which is not allowed"
    assert messages["external_entity"] == "payload declares a DTD, which is not allowed"
    assert messages["undefined_entity"].startswith("payload is not well-formed XML: undefined entity")
    assert messages["unclosed"].startswith("payload is not well-formed XML: mismatched tag")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "payload is empty"),
        ("   ", "payload is empty"),
        ("not xml", "not well-formed"),
        ("<parameters><parameter value='x'/></parameters>", "has no name"),
        ("<parameters><param name='x'/></parameters>", "unexpected element <param>"),
        ("<parameters><parameter name='x'/><parameter name='x'/></parameters>", "given twice"),
        ("<something/>", "unexpected payload root <something>"),
        ("<probes/>", "holds no <probe>"),
        ("<probes><probe/></probes>", "has no topic"),
        ("<probes><probe topic='A'><x/></probe></probes>", "one <parameters> block"),
        ("<results probe_time='soon'/>", "probe_time='soon' is not an integer"),
        ("<results><parameters/><parameters/></results>", "more than one <parameters>"),
        ("<a>\ud800</a>", "cannot be read as XML"),
    ],
)
def test_malformed_payloads_raise_one_line(text: str, message: str) -> None:
    with pytest.raises(PayloadError, match=re.escape(message)) as caught:
        decode_output_payload(text)
    assert "\n" not in str(caught.value)


def test_size_limit_default_is_the_ecc_cap_and_checked_before_parsing() -> None:
    just_over = (
        "<parameters>" + " " * (ECC_PAYLOAD_CAP - len("<parameters></parameters>") + 1) + "</parameters>"
    )
    assert len(just_over) == ECC_PAYLOAD_CAP + 1
    with pytest.raises(PayloadError, match=r"20,000,001 bytes, over the 20,000,000-byte limit"):
        decode_output_payload(just_over)
    assert decode_output_payload(just_over[:-1].replace(" ", "", 1) + ">") == ParametersPayload()
    # Multi-byte characters count as their UTF-8 size.
    with pytest.raises(PayloadError, match=r"over the 10-byte limit"):
        parse_xml("<a>éééé</a>", max_bytes=10)


def test_input_decoder_wants_results_and_parameters_decoder_wants_parameters() -> None:
    with pytest.raises(PayloadError, match=r"expected results"):
        decode_input_payload("<parameters/>")
    with pytest.raises(PayloadError, match=r"expected a <parameters> payload, got <results>"):
        decode_parameters("<results/>")
    assert decode_parameters("") == {}


# -- display ----------------------------------------------------------------------------------------


def test_pretty_payload_indents_and_leaves_non_xml_alone() -> None:
    pretty = pretty_payload(encode_output_payload({"a": "1", "b": "2"}))
    assert pretty.splitlines() == [
        "<parameters>",
        '  <parameter name="a" value="1"/>',
        '  <parameter name="b" value="2"/>',
        "</parameters>",
    ]
    assert pretty_payload("processed") == "processed"
    assert pretty_payload(SEE_ATTACHMENT) == SEE_ATTACHMENT
    hostile = HOSTILE[0].read_text()
    assert pretty_payload(hostile) == hostile


# -- builders ----------------------------------------------------------------------------------------


def test_new_output_and_input_records_echo_every_field() -> None:
    output = new_output_record(
        agent="lab1",
        topic="SSHCommand",
        source="198.18.0.10",
        name="uname -a",
        parameters={"port": "22", "source": "shadowed"},
        priority=1,
        agent_correlator="job-1",
    )
    assert (output.agent, output.queue, output.state) == ("mid.server.lab1", "output", "ready")
    assert decode_parameters(output.payload) == {"port": "22", "source": "shadowed"}
    stdout = ET.Element("result", command="uname -a")
    answer = new_input_record(output, agent="mid.server.lab1", results=[stdout], probe_time_ms=2165)
    assert (answer.queue, answer.state, answer.response_to) == ("input", "ready", output.sys_id)
    assert (answer.topic, answer.name, answer.source, answer.priority) == (
        "SSHCommand",
        "uname -a",
        "198.18.0.10",
        1,
    )
    assert answer.agent_correlator == "job-1"
    assert answer.error_string == ""
    decoded = decode_input_payload(answer.payload)
    assert decoded.result_code == 0
    assert decoded.probe_time_ms == 2165
    assert decoded.parameters == echo_parameters(output, {"port": "22", "source": "shadowed"})
    assert decoded.echoed("source") == "198.18.0.10"  # the field wins over a parameter of that name
    assert decoded.echoed("sys_id") == output.sys_id
    assert decoded.echoed("priority") == "1"


def test_new_input_record_for_a_failure_and_for_an_attachment_payload() -> None:
    output = new_output_record(agent="lab1", topic="Shazzam", source="198.18.0.0/24")
    failed = new_input_record(output, agent="lab1", results=[], probe_time_ms=9, error="timed out")
    assert failed.error_string == "timed out"
    decoded = decode_input_payload(failed.payload)
    assert (decoded.error, decoded.result_code) == ("timed out", 1)
    aside = output.with_changes(payload=SEE_ATTACHMENT, sys_id=new_sys_id())
    answer = new_input_record(
        aside, agent="lab1", results=[], probe_time_ms=1, output_parameters={"ports": "22"}
    )
    assert decode_input_payload(answer.payload).echoed("ports") == "22"
    fields_only = new_input_record(aside, agent="lab1", results=[], probe_time_ms=1)
    assert [p.name for p in decode_input_payload(fields_only.payload).parameters] == list(ECHOED_FIELDS)

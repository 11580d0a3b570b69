"""The probe runner: every request gets exactly one answer, errors become data."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pytest

from midprobe.capabilities.errors import ProtocolError
from midprobe.probes.base import ProbeContext
from midprobe.probes.registry import ProbeRegistry, default_registry
from midprobe.probes.safety import TargetPolicy
from midprobe.runner.agent.probe_runner import AgentIdentity, ProbeRunner
from midprobe.runner.ecc.builders import new_output_record
from midprobe.runner.ecc.payload import (
    Parameter,
    ProbeRequest,
    decode_input_payload,
    encode_multiprobe_payload,
)
from midprobe.runner.ecc.record import EccRecord


@dataclass(frozen=True)
class EchoParams:
    source: str
    delay: float


class EchoProbe:
    """Answers with its source after ``delay`` seconds; checks the target policy like real probes."""

    topic = "Echo"
    required_capabilities: tuple[str, ...] = ()

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> EchoParams:
        return EchoParams(source, float(parameters.get("delay", "0")))

    async def run(self, params: EchoParams, context: ProbeContext) -> str:
        context.policy.check(params.source)
        await asyncio.sleep(params.delay)
        return params.source

    def encode_results(self, result: str) -> Sequence[ET.Element]:
        element = ET.Element("result")
        ET.SubElement(element, "echo").text = result
        return [element]


class NeedsNmapProbe(EchoProbe):
    topic = "NeedsNmap"
    required_capabilities = ("Nmap",)


class BrokenProbe(EchoProbe):
    topic = "Broken"

    async def run(self, params: EchoParams, context: ProbeContext) -> str:
        raise ProtocolError("device spoke nonsense")


class FakeClock:
    """A monotonic clock that moves only when a test probe says time passed."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TimedEchoProbe(EchoProbe):
    """Echo that takes ``delay`` seconds of the fake clock; one that does not fit its deadline hangs."""

    topic = "TimedEcho"

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    async def run(self, params: EchoParams, context: ProbeContext) -> str:
        if params.delay > context.remaining():
            await asyncio.Event().wait()  # the runner's deadline must end this
        self.clock.now += params.delay
        return params.source


class CrashingProbe(EchoProbe):
    topic = "Crashing"

    async def run(self, params: EchoParams, context: ProbeContext) -> str:
        raise ZeroDivisionError("bug")


def _runner(**identity: object) -> ProbeRunner:
    registry = ProbeRegistry()
    for probe in (EchoProbe(), NeedsNmapProbe(), BrokenProbe(), CrashingProbe()):
        registry.register(probe)
    registry.register(default_registry().get("HeartbeatProbe"))
    return ProbeRunner(
        registry=registry,
        identity=AgentIdentity(name="lab1", **identity),  # type: ignore[arg-type]
        policy=TargetPolicy.lab(),
        probe_timeout_seconds=5.0,
    )


def _answer(runner: ProbeRunner, record: EccRecord, payload: str | None = None) -> EccRecord:
    return asyncio.run(runner.answer(record, payload))


def test_success_echoes_the_request_and_answers_it() -> None:
    output = new_output_record(agent="lab1", topic="Echo", source="198.18.0.10", parameters={"delay": "0"})
    answer = _answer(_runner(), output)
    assert answer.queue == "input"
    assert answer.response_to == output.sys_id
    assert answer.agent == "mid.server.lab1"
    assert answer.error_string == ""
    decoded = decode_input_payload(answer.payload)
    assert decoded.result_code == 0
    assert decoded.error is None
    assert decoded.results[0].findtext("echo") == "198.18.0.10"
    assert decoded.echoed("sys_id") == output.sys_id
    assert decoded.echoed("delay") == "0"
    assert decoded.probe_time_ms is not None


def test_heartbeat_answers_with_result_code_zero() -> None:
    output = new_output_record(agent="lab1", topic="HeartbeatProbe")
    decoded = decode_input_payload(_answer(_runner(), output).payload)
    assert decoded.result_code == 0
    heartbeat = decoded.results[0].find("heartbeat")
    assert heartbeat is not None
    assert heartbeat.get("agent") == "lab1"


@pytest.mark.parametrize(
    ("topic", "source", "parameters", "expected"),
    [
        ("Nope", "198.18.0.10", {}, "no probe handles topic 'Nope'"),
        ("NeedsNmap", "198.18.0.10", {}, "needs the Nmap capability"),
        ("Broken", "198.18.0.10", {}, "device spoke nonsense"),
        ("Crashing", "198.18.0.10", {}, "internal error: ZeroDivisionError"),
        ("Echo", "10.1.2.3", {}, "target 10.1.2.3 is outside the allowed networks"),
        ("Echo", "198.18.0.10", {"probe_timeout_ms": "abc"}, "parameter 'probe_timeout_ms'"),
        ("Echo", "198.18.0.10", {"delay": "2", "probe_timeout_ms": "100"}, "timed out after 0.1 s"),
    ],
)
def test_failures_become_error_records(
    topic: str, source: str, parameters: dict[str, str], expected: str
) -> None:
    output = new_output_record(agent="lab1", topic=topic, source=source, parameters=parameters)
    answer = _answer(_runner(), output)
    assert expected in answer.error_string
    decoded = decode_input_payload(answer.payload)
    assert decoded.error == answer.error_string
    assert decoded.result_code not in (None, 0)
    assert decoded.echoed("sys_id") == output.sys_id
    assert "\n" not in answer.error_string


def test_malformed_payload_becomes_an_error_record() -> None:
    output = new_output_record(agent="lab1", topic="Echo", source="198.18.0.10")
    answer = _answer(_runner(), output, "<parameters><parameter name='x'")
    assert "payload" in answer.error_string.lower() or "xml" in answer.error_string.lower()
    assert answer.response_to == output.sys_id


def test_entity_payload_is_refused_not_expanded() -> None:
    bomb = '<!DOCTYPE p [<!ENTITY a "aaaaaaaaaa">]><parameters><parameter name="x" value="&a;"/></parameters>'
    output = new_output_record(agent="lab1", topic="Echo", source="198.18.0.10")
    answer = _answer(_runner(), output, bomb)
    assert answer.error_string
    assert "aaaaaaaaaa" not in answer.payload


def test_nmap_capability_lets_the_probe_run() -> None:
    output = new_output_record(agent="lab1", topic="NeedsNmap", source="198.18.0.10")
    answer = _answer(_runner(capabilities=frozenset({"Nmap"})), output)
    assert answer.error_string == ""


def test_record_for_another_agent_is_refused() -> None:
    output = new_output_record(agent="other", topic="Echo", source="198.18.0.10")
    assert "addressed to mid.server.other" in _answer(_runner(), output).error_string


def test_record_for_every_agent_is_accepted() -> None:
    output = new_output_record(agent="*", topic="Echo", source="198.18.0.10")
    assert _answer(_runner(), output).error_string == ""


def test_routing_check_refusal_is_reported() -> None:
    def refuse(topic: str, source: str, parameters: Mapping[str, str]) -> str | None:
        return f"not my zone: {source}"

    output = new_output_record(agent="lab1", topic="Echo", source="198.18.0.10")
    assert "not my zone: 198.18.0.10" in _answer(_runner(routing_check=refuse), output).error_string


def test_runner_parameters_are_echoed_but_not_given_to_the_probe() -> None:
    seen: list[Mapping[str, str]] = []

    class Strict(EchoProbe):
        topic = "Strict"

        def parse_params(self, source: str, parameters: Mapping[str, str]) -> EchoParams:
            seen.append(dict(parameters))
            return super().parse_params(source, parameters)

    runner = _runner()
    runner.registry.register(Strict())
    output = new_output_record(
        agent="lab1",
        topic="Strict",
        source="198.18.0.10",
        parameters={"probe_timeout_ms": "5000", "delay": "0"},
    )
    answer = _answer(runner, output)
    assert answer.error_string == ""
    assert seen == [{"delay": "0", "name": "Strict"}]
    assert decode_input_payload(answer.payload).echoed("probe_timeout_ms") == "5000"


def test_record_name_reaches_the_probe_unless_a_name_parameter_overrides_it() -> None:
    seen: list[str | None] = []

    class Named(EchoProbe):
        topic = "Named"

        def parse_params(self, source: str, parameters: Mapping[str, str]) -> EchoParams:
            seen.append(parameters.get("name"))
            return super().parse_params(source, parameters)

    runner = _runner()
    runner.registry.register(Named())
    short = new_output_record(agent="lab1", topic="Named", name="uname -a", source="198.18.0.10")
    long = new_output_record(
        agent="lab1", topic="Named", name="(long)", source="198.18.0.10", parameters={"name": "x" * 200}
    )
    _answer(runner, short)
    _answer(runner, long)
    assert seen == ["uname -a", "x" * 200]


def _multiprobe(
    *probes: ProbeRequest, shared: dict[str, str] | None = None, topic: str = "MultiProbe"
) -> EccRecord:
    record = new_output_record(agent="lab1", topic=topic, source="198.18.0.10")
    return record.with_changes(payload=encode_multiprobe_payload(probes, shared or {}))


def test_multiprobe_runs_each_probe_and_tags_its_results() -> None:
    output = _multiprobe(
        ProbeRequest("Echo", "first", (Parameter("delay", "0"),)),
        ProbeRequest("HeartbeatProbe"),
        shared={"delay": "0.01"},
    )
    answer = _answer(_runner(), output)
    assert answer.error_string == ""
    decoded = decode_input_payload(answer.payload)
    assert [(r.get("probe"), r.get("name")) for r in decoded.results] == [
        ("Echo", "first"),
        ("HeartbeatProbe", None),
    ]
    assert decoded.results[0].findtext("echo") == "198.18.0.10"
    assert decoded.echoed("delay") == "0.01", "the shared parameters are echoed"


def test_one_failing_probe_does_not_stop_the_others() -> None:
    output = _multiprobe(ProbeRequest("Broken"), ProbeRequest("NeedsNmap"), ProbeRequest("Echo"))
    answer = _answer(_runner(), output)
    assert answer.error_string == ""
    results = decode_input_payload(answer.payload).results
    assert results[0].get("error") == "device spoke nonsense"
    assert "needs the Nmap capability" in (results[1].get("error") or "")
    assert results[2].findtext("echo") == "198.18.0.10"


def test_multiprobe_is_an_error_only_when_every_probe_failed() -> None:
    answer = _answer(_runner(), _multiprobe(ProbeRequest("Broken"), ProbeRequest("Nope")))
    assert answer.error_string.startswith(
        "every probe of the MultiProbe failed: Broken: device spoke nonsense;"
    )
    assert decode_input_payload(answer.payload).result_code == 1


def test_multiprobe_shares_one_deadline() -> None:
    # 0.3 s each against 0.45 s for both: the first fits, the second finds 0.15 s left and times out
    clock = FakeClock()
    runner = _runner()
    runner.clock = clock
    runner.registry.register(TimedEchoProbe(clock))
    output = _multiprobe(
        ProbeRequest("TimedEcho", "", (Parameter("delay", "0.3"),)),
        ProbeRequest("TimedEcho", "", (Parameter("delay", "0.3"),)),
        shared={"probe_timeout_ms": "450"},
    )
    answer = _answer(runner, output)
    results = decode_input_payload(answer.payload).results
    assert results[0].findtext("echo") == "198.18.0.10"
    assert "timed out" in (results[1].get("error") or "")
    assert decode_input_payload(answer.payload).probe_time_ms == 300  # read on the same clock


@pytest.mark.parametrize("topic", ["Echo", "MultiProbe"])
def test_payload_root_and_topic_must_agree(topic: str) -> None:
    if topic == "Echo":
        output = _multiprobe(ProbeRequest("Echo"), topic="Echo")
        expected = "a <probes> payload needs topic MultiProbe"
    else:
        output = new_output_record(
            agent="lab1", topic="MultiProbe", source="198.18.0.10", parameters={"a": "b"}
        )
        expected = "topic MultiProbe takes a <probes> payload"
    assert expected in _answer(_runner(), output).error_string

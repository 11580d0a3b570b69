"""The batch resolver's pure parts: questions made from text without dnspython names (equal to those
made with them), and what an error on send means for the attempt."""

from __future__ import annotations

import ipaddress
import socket
from typing import cast

import dns.name
import dns.reversename
from hypothesis import given
from hypothesis import strategies as st

from midprobe.probes.dns import wire
from midprobe.probes.dns.resolver import Question, _send_error

label = st.text(alphabet="abcXYZ019-_", min_size=1, max_size=20)


@given(st.lists(label, min_size=1, max_size=5), st.booleans(), st.sampled_from([wire.A, wire.AAAA]))
def test_a_question_from_text_equals_one_from_a_name(labels: list[str], final_dot: bool, rdtype: int) -> None:
    text = ".".join(labels) + ("." if final_dot else "")
    from_text = Question.of_text(text, rdtype)
    from_name = Question(dns.name.from_text(text), rdtype)
    assert from_text == from_name
    assert hash(from_text) == hash(from_name)
    assert from_text.encoded == from_name.encoded
    assert from_text.name == from_name.name
    assert from_text.name.labels == from_name.name.labels


def test_questions_compare_names_ignoring_case_and_types_exactly() -> None:
    lower = Question.of_text("linux1.lab.example.test", wire.A)
    assert lower == Question.of_text("LINUX1.Lab.example.test.", wire.A)
    assert hash(lower) == hash(Question.of_text("LINUX1.Lab.example.test.", wire.A))
    assert lower != Question.of_text("linux1.lab.example.test", wire.AAAA)
    assert lower != Question.of_text("linux2.lab.example.test", wire.A)


def test_names_that_need_dnspython_still_make_questions() -> None:
    question = Question.of_text("bücher.example", wire.A)
    assert question.name == dns.name.from_text("xn--bcher-kva.example")
    assert question.encoded == wire.name_wire(question.name)


@given(st.ip_addresses())
def test_a_reverse_question_asks_the_reverse_name(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    question = Question.of_address(str(address))
    assert question.rdtype == wire.PTR
    assert question.name == dns.reversename.from_address(str(address))
    assert question == Question(dns.reversename.from_address(str(address)), wire.PTR)


class _ScriptedSocket:
    """A connected UDP socket whose sends end as scripted (an exception, or None for sent)."""

    def __init__(self, *outcomes: OSError | None) -> None:
        self.outcomes = list(outcomes)
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> int:
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome
        self.sent.append(data)
        return len(data)


def test_a_stray_refusal_is_sent_again_once_and_other_errors_end_the_attempt() -> None:
    refused = ConnectionRefusedError(111, "refused")
    unreachable = OSError(101, "unreachable")

    def after(error: OSError, *outcomes: OSError | None) -> tuple[OSError | None, list[bytes]]:
        sock = _ScriptedSocket(*outcomes)
        return _send_error(cast(socket.socket, sock), b"query", error), sock.sent

    assert after(unreachable) == (unreachable, [])  # no second try
    assert after(refused, None) == (None, [b"query"])
    assert after(refused, BlockingIOError()) == (None, [])  # a full buffer: a lost packet
    again = ConnectionRefusedError(111, "refused again")
    assert after(refused, again) == (again, [])

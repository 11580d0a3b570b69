"""The batch resolver's questions: made from text without dnspython names, equal to those made with them."""

from __future__ import annotations

import ipaddress

import dns.name
import dns.reversename
from hypothesis import given
from hypothesis import strategies as st

from midprobe.probes.dns import wire
from midprobe.probes.dns.resolver import Question

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

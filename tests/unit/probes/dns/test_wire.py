"""The DNS wire codec of the batch resolver, checked against messages dnspython builds and parses."""

from __future__ import annotations

import contextlib
import ipaddress
import struct

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset
import pytest
from hypothesis import given
from hypothesis import strategies as st

from midprobe.capabilities.errors import ProtocolError
from midprobe.probes.dns import wire

NAME = dns.name.from_text("linux1.sandiego.lab.example.test")


def response_to(
    name: dns.name.Name,
    rdtype: str,
    records: list[tuple[str, str, str]],
    rcode: dns.rcode.Rcode = dns.rcode.NOERROR,
) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, id=4711)
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    for owner, kind, value in records:
        response.answer.append(dns.rrset.from_text(owner, 300, "IN", kind, value))
    return response


def test_query_is_what_dnspython_reads() -> None:
    query = dns.message.from_wire(wire.build_query(NAME, wire.AAAA, 0x1234))
    assert query.id == 0x1234
    assert query.flags == dns.flags.RD
    (question,) = query.question
    assert (question.name, question.rdtype, question.rdclass) == (NAME, dns.rdatatype.AAAA, dns.rdataclass.IN)
    assert (query.edns, query.payload) == (0, wire.EDNS_PAYLOAD)


def test_query_id_is_patched_without_touching_the_rest() -> None:
    query = wire.build_query(NAME, wire.A)
    patched = wire.with_query_id(query, 0xBEEF)
    assert wire.query_id_of(patched) == 0xBEEF
    assert patched[2:] == query[2:]
    assert wire.query_id_of(b"\x00" * 11) is None


def test_query_name_must_be_absolute() -> None:
    with pytest.raises(ValueError, match="not absolute"):
        wire.build_query(dns.name.from_text("linux1", origin=None), wire.A)


def test_response_with_every_record_kind() -> None:
    response = response_to(
        NAME,
        "A",
        [
            ("linux1.sandiego.lab.example.test.", "CNAME", "real.sanjose.lab.example.test."),
            ("real.sanjose.lab.example.test.", "A", "198.18.0.10"),
            ("real.sanjose.lab.example.test.", "AAAA", "2001:db8:0::10"),
            ("real.sanjose.lab.example.test.", "MX", "10 mail.lab.example.test."),
            ("10.0.18.198.in-addr.arpa.", "PTR", "real.sanjose.lab.example.test."),
        ],
    )
    parsed = wire.parse_response(response.to_wire())
    real = dns.name.from_text("real.sanjose.lab.example.test")
    assert parsed.query_id == 4711
    assert parsed.is_response
    assert not parsed.truncated
    assert parsed.rcode == wire.RCODE_NOERROR
    assert parsed.question == (NAME, wire.A, wire.IN)
    assert [(r.owner, r.rdtype, r.ttl, r.value) for r in parsed.answers] == [
        (NAME, wire.CNAME, 300, real),
        (real, wire.A, 300, "198.18.0.10"),
        (real, wire.AAAA, 300, "2001:db8::10"),
        (dns.name.from_text("10.0.18.198.in-addr.arpa"), wire.PTR, 300, real),
    ]
    assert wire.answer_values(parsed, NAME, wire.A) == (real, ("198.18.0.10",))
    assert wire.answer_values(parsed, NAME, wire.AAAA) == (real, ("2001:db8::10",))


def test_rcode_and_truncation_flags() -> None:
    nxdomain = wire.parse_response(response_to(NAME, "A", [], dns.rcode.NXDOMAIN).to_wire())
    assert nxdomain.rcode == wire.RCODE_NXDOMAIN
    assert nxdomain.answers == ()
    truncated = response_to(NAME, "A", [])
    truncated.flags |= dns.flags.TC
    assert wire.parse_response(truncated.to_wire()).truncated


def test_the_question_must_match_in_name_type_and_direction() -> None:
    parsed = wire.parse_response(response_to(NAME, "A", []).to_wire())
    assert parsed.answers_question(dns.name.from_text("LINUX1.SanDiego.lab.example.test"), wire.A)
    assert not parsed.answers_question(NAME, wire.AAAA)
    assert not parsed.answers_question(dns.name.from_text("linux2.sandiego.lab.example.test"), wire.A)
    query = wire.parse_response(wire.build_query(NAME, wire.A))  # a query is not a response
    assert not query.answers_question(NAME, wire.A)


def test_cname_loops_end_and_duplicates_are_dropped() -> None:
    loop = response_to(
        NAME,
        "A",
        [
            ("linux1.sandiego.lab.example.test.", "CNAME", "b.lab.example.test."),
            ("b.lab.example.test.", "CNAME", "linux1.sandiego.lab.example.test."),
        ],
    )
    canonical, values = wire.answer_values(wire.parse_response(loop.to_wire()), NAME, wire.A)
    assert (canonical, values) == (dns.name.from_text("b.lab.example.test"), ())
    twice = wire.Response(
        1,
        wire.FLAG_QR,
        0,
        (NAME, wire.A, wire.IN),
        (wire.Record(NAME, wire.A, 5, "198.18.0.1"), wire.Record(NAME, wire.A, 9, "198.18.0.1")),
    )
    assert wire.answer_values(twice, NAME, wire.A) == (NAME, ("198.18.0.1",))


def test_names_read_back_without_the_final_dot() -> None:
    assert wire.name_text(NAME) == "linux1.sandiego.lab.example.test"
    assert wire.name_text(dns.name.root) == "."


def test_malformed_messages_raise_protocol_error() -> None:
    good = response_to(NAME, "A", [("linux1.sandiego.lab.example.test.", "A", "198.18.0.10")]).to_wire()
    for cut in range(len(good)):
        with pytest.raises(ProtocolError, match="malformed DNS message"):
            wire.parse_response(good[:cut])
    header = struct.pack("!HHHHHH", 1, wire.FLAG_QR, 1, 0, 0, 0)
    pointer_to_itself = header + b"\xc0\x0c" + b"\x00\x01\x00\x01"
    with pytest.raises(ProtocolError):
        wire.parse_response(pointer_to_itself)
    short_a = (
        header[:6]
        + b"\x00\x01"
        + header[8:]
        + b"\x00\x00\x01\x00\x01"
        + b"\x00\x00\x01\x00\x01\x00\x00\x00\x05\x00\x03abc"
    )
    with pytest.raises(ProtocolError, match="A record of 3 bytes"):
        wire.parse_response(short_a)


@given(st.binary(max_size=600))
def test_any_bytes_parse_or_raise_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        wire.parse_response(data)


OWNERS = [
    "linux1.sandiego.lab.example.test.",
    "LINUX1.sandiego.lab.example.test.",
    "db.sanjose.lab.example.test.",
]
record = st.one_of(
    st.tuples(st.sampled_from(OWNERS), st.just("A"), st.ip_addresses(v=4).map(str)),
    st.tuples(st.sampled_from(OWNERS), st.just("AAAA"), st.ip_addresses(v=6).map(str)),
    st.tuples(st.sampled_from(OWNERS), st.just("PTR"), st.sampled_from(OWNERS)),
    st.tuples(st.sampled_from(OWNERS), st.just("TXT"), st.just('"hello"')),
)


@given(st.lists(record, max_size=12), st.sampled_from(["A", "AAAA", "PTR"]))
def test_answers_round_trip_through_dnspython(records: list[tuple[str, str, str]], asked: str) -> None:
    data = response_to(NAME, asked, records).to_wire()  # compressed, as servers send it
    parsed = wire.parse_response(data)
    assert wire.parse_response(data, wire.KnownName.of(NAME)) == parsed
    reference = dns.message.from_wire(data, one_rr_per_rrset=True)
    expected = [
        (rrset.name, int(rrset.rdtype), _value(rdata))
        for rrset in reference.answer
        for rdata in rrset
        if rrset.rdtype in (wire.A, wire.AAAA, wire.PTR)
    ]
    assert [(r.owner, r.rdtype, r.value) for r in parsed.answers] == expected
    rdtype = dns.rdatatype.from_text(asked)
    _, values = wire.answer_values(parsed, NAME, rdtype)
    wanted = [_text(value) for owner, kind, value in expected if kind == rdtype and owner == NAME]
    assert list(values) == list(dict.fromkeys(wanted))


def _value(rdata: object) -> str | dns.name.Name:
    target = getattr(rdata, "target", None)
    if isinstance(target, dns.name.Name):
        return target
    return ipaddress.ip_address(getattr(rdata, "address")).compressed  # noqa: B009


def _text(value: str | dns.name.Name) -> str:
    return value if isinstance(value, str) else wire.name_text(value)


label = st.text(alphabet="abcXYZ019-_*@\\. ü", min_size=1, max_size=12)


@given(st.lists(label, min_size=1, max_size=5), st.booleans())
def test_fast_names_equal_dnspython_names(labels: list[str], final_dot: bool) -> None:
    text = ".".join(labels) + ("." if final_dot else "")
    try:
        expected = dns.name.from_text(text)
    except dns.exception.DNSException:
        with pytest.raises(dns.exception.DNSException):
            wire.absolute_name(text)
        return
    name = wire.absolute_name(text)
    assert name == expected
    assert name.labels == expected.labels


def test_a_known_question_name_is_recognised_not_reparsed() -> None:
    data = response_to(NAME, "A", [("linux1.sandiego.lab.example.test.", "A", "198.18.0.10")]).to_wire()
    plain = wire.parse_response(data)
    asked = dns.name.from_text("Linux1.SANDIEGO.lab.example.test")
    known = wire.parse_response(data, wire.KnownName.of(asked))
    assert known == plain  # names compare case-insensitively
    assert known.question is not None
    assert known.question[0] is asked
    assert known.answers[0].owner is asked  # the owner points at the question
    other = wire.parse_response(data, wire.KnownName.of(dns.name.from_text("linux1.sandiego.lab")))
    assert other == plain
    assert not other.answers_question(dns.name.from_text("linux1.sandiego.lab"), wire.A)


# -- the plain-reply fast path: it must say what the full parser says, or leave the reply to it --


def full_reading(data: bytes, name: dns.name.Name, rdtype: int) -> wire.PlainReply | None:
    """What the resolver concludes through ``parse_response``: ``None`` when the reply is ignored."""
    try:
        parsed = wire.parse_response(data, wire.KnownName.of(name))
    except ProtocolError:
        return None
    if parsed.truncated or not parsed.answers_question(name, rdtype):
        return None
    canonical, values = wire.answer_values(parsed, name, rdtype)
    return wire.PlainReply(parsed.rcode, values if wire.same_name(canonical, name) else ("<alias>",))


def test_a_plain_reply_is_read_without_the_full_parser() -> None:
    records = [
        ("linux1.sandiego.lab.example.test.", "A", "198.18.0.10"),
        ("linux1.sandiego.lab.example.test.", "A", "198.18.0.11"),
    ]
    data = response_to(NAME, "A", records).to_wire()
    plain = wire.read_plain_reply(data, wire.KnownName.of(NAME), wire.A)
    assert plain == wire.PlainReply(wire.RCODE_NOERROR, ("198.18.0.10", "198.18.0.11"))
    nxdomain = response_to(NAME, "A", [], dns.rcode.NXDOMAIN).to_wire()
    assert wire.read_plain_reply(nxdomain, wire.KnownName.of(NAME), wire.A) == (wire.RCODE_NXDOMAIN, ())
    reverse = dns.name.from_text("10.0.18.198.in-addr.arpa")
    ptr = response_to(reverse, "PTR", [("10.0.18.198.in-addr.arpa.", "PTR", "linux1.lab.example.test.")])
    assert wire.read_plain_reply(ptr.to_wire(), wire.KnownName.of(reverse), wire.PTR) == (
        wire.RCODE_NOERROR,
        ("linux1.lab.example.test",),
    )


def test_what_is_not_plain_is_left_to_the_full_parser() -> None:
    known = wire.KnownName.of(NAME)
    alias = [
        ("linux1.sandiego.lab.example.test.", "CNAME", "db.sanjose.lab.example.test."),
        ("db.sanjose.lab.example.test.", "A", "198.18.0.12"),
    ]
    assert wire.read_plain_reply(response_to(NAME, "A", alias).to_wire(), known, wire.A) is None
    truncated = response_to(NAME, "A", [])
    truncated.flags |= dns.flags.TC
    assert wire.read_plain_reply(truncated.to_wire(), known, wire.A) is None
    query = wire.build_query(NAME, wire.A)  # no QR bit: a query, not a reply
    assert wire.read_plain_reply(query, known, wire.A) is None
    other_type = response_to(NAME, "AAAA", []).to_wire()
    assert wire.read_plain_reply(other_type, known, wire.A) is None
    other_name = response_to(dns.name.from_text("db.sanjose.lab.example.test"), "A", []).to_wire()
    assert wire.read_plain_reply(other_name, known, wire.A) is None


@given(st.lists(record, max_size=12), st.sampled_from(["A", "AAAA", "PTR"]), st.booleans())
def test_plain_replies_read_as_the_full_parser_reads_them(
    records: list[tuple[str, str, str]], asked: str, upper: bool
) -> None:
    rdtype = dns.rdatatype.from_text(asked)
    data = response_to(NAME, asked, records).to_wire()
    asked_name = dns.name.from_text(NAME.to_text().upper()) if upper else NAME
    plain = wire.read_plain_reply(data, wire.KnownName.of(asked_name), rdtype)
    if plain is not None:
        assert plain == full_reading(data, asked_name, rdtype)
    if all(kind == asked for _, kind, _ in records):  # only records of the asked type, none CNAME
        owned_by_question = all(owner.lower() == OWNERS[0] for owner, _, _ in records)
        assert (plain is not None) == owned_by_question


def _plain_reply(name: dns.name.Name, rdtype: str, value: str) -> bytes:
    return response_to(name, rdtype, [(name.to_text(), rdtype, value)]).to_wire()


PLAIN_REPLIES = [
    (NAME, wire.A, _plain_reply(NAME, "A", "198.18.0.10")),
    (NAME, wire.AAAA, _plain_reply(NAME, "AAAA", "2001:db8::10")),
    (NAME, wire.PTR, _plain_reply(NAME, "PTR", "db.sanjose.lab.example.test.")),
]


@given(st.sampled_from(PLAIN_REPLIES), st.data())
def test_hostile_changes_to_a_plain_reply_never_fool_the_fast_path(
    reply: tuple[dns.name.Name, int, bytes], data: st.DataObject
) -> None:
    """Flipped, cut or appended bytes: the fast path agrees with the full parser or stands aside."""
    name, rdtype, message = reply
    changed = bytearray(message)
    for _ in range(data.draw(st.integers(0, 4))):
        position = data.draw(st.integers(0, len(changed) - 1))
        changed[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(changed)))
    hostile = bytes(changed[:cut]) + data.draw(st.binary(max_size=8))
    plain = wire.read_plain_reply(hostile, wire.KnownName.of(name), rdtype)
    if plain is not None:
        assert plain == full_reading(hostile, name, rdtype)


@given(st.sampled_from(PLAIN_REPLIES), st.binary(max_size=300))
def test_any_answer_bytes_are_read_by_the_fast_path_or_left(
    reply: tuple[dns.name.Name, int, bytes], data: bytes
) -> None:
    name, rdtype, message = reply
    question_end = 12 + len(wire.name_wire(name)) + 4
    hostile = message[:question_end] + data  # the header says one answer: what follows is anything
    plain = wire.read_plain_reply(hostile, wire.KnownName.of(name), rdtype)
    if plain is not None:
        assert plain == full_reading(hostile, name, rdtype)


#: Pieces of a PTR target: labels, pointers into the question (and beyond it), ends, garbage.
target_piece = st.one_of(
    st.binary(max_size=3),
    st.sampled_from(
        [b"\x05host1", b"\x03a-b", b"\x01_", b"\x02a.", b"\xc0\x11", b"\xc0\x0c", b"\xc0\x30", b"\x00"]
    ),
)


@given(st.lists(target_piece, max_size=6).map(b"".join))
def test_ptr_targets_with_any_pointers_read_as_dnspython_reads_them(target: bytes) -> None:
    """A PTR record whose data is any mix of labels, pointers and bytes."""
    reverse = dns.name.from_text("10.0.18.198.in-addr.arpa")
    question = wire.name_wire(reverse) + struct.pack("!HH", wire.PTR, wire.IN)
    head = struct.pack("!HHHHHH", 7, 0x8180, 1, 1, 0, 0) + question
    record = b"\xc0\x0c" + struct.pack("!HHIH", wire.PTR, wire.IN, 60, len(target)) + target
    message = head + record
    plain = wire.read_plain_reply(message, wire.KnownName.of(reverse), wire.PTR)
    if plain is not None:
        assert plain == full_reading(message, reverse, wire.PTR)


def test_ptr_targets_compressed_against_the_question_are_read() -> None:
    reverse = dns.name.from_text("10.0.18.198.in-addr.arpa")
    target = b"\x05host1\xc0\x11"  # host1 + a pointer to "18.198.in-addr.arpa" at offset 17
    question = wire.name_wire(reverse) + struct.pack("!HH", wire.PTR, wire.IN)
    record = b"\xc0\x0c" + struct.pack("!HHIH", wire.PTR, wire.IN, 60, len(target)) + target
    message = struct.pack("!HHHHHH", 7, 0x8180, 1, 1, 0, 0) + question + record
    expected = wire.PlainReply(wire.RCODE_NOERROR, ("host1.18.198.in-addr.arpa",))
    assert wire.read_plain_reply(message, wire.KnownName.of(reverse), wire.PTR) == expected
    assert full_reading(message, reverse, wire.PTR) == expected
    escaped = message[: -len(target)] + b"\x05ho.t1\xc0\x11"  # needs an escape: left to dnspython
    assert wire.read_plain_reply(escaped, wire.KnownName.of(reverse), wire.PTR) is None
    assert full_reading(escaped, reverse, wire.PTR) == (wire.RCODE_NOERROR, ("ho\\.t1.18.198.in-addr.arpa",))


@given(st.ip_addresses())
def test_reverse_names_are_dnspython_reverse_names(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    expected = dns.reversename.from_address(str(address))
    name = wire.reverse_name(str(address))
    assert name == expected
    assert name.labels == expected.labels


@given(st.lists(label, min_size=1, max_size=5), st.booleans())
def test_plain_name_wire_is_dnspython_wire_or_stands_aside(labels: list[str], final_dot: bool) -> None:
    text = ".".join(labels) + ("." if final_dot else "")
    encoded = wire.plain_name_wire(text)
    try:
        expected = dns.name.from_text(text).to_wire()
    except dns.exception.DNSException:
        assert encoded is None  # dnspython refuses it: absolute_name says why
        return
    assert encoded is None or encoded == expected


@given(st.lists(st.text(alphabet="abcXYZ019-_", min_size=1, max_size=63), min_size=1, max_size=8))
def test_plain_names_are_encoded_by_plain_name_wire_up_to_255_octets(labels: list[str]) -> None:
    text = ".".join(labels)
    encoded = wire.plain_name_wire(text)
    if sum(len(label) + 1 for label in labels) + 1 > 255:
        assert encoded is None
        with pytest.raises(dns.name.NameTooLong):
            dns.name.from_text(text)
    else:
        assert encoded == dns.name.from_text(text).to_wire()


def test_plain_name_wire_stands_aside_for_what_needs_dnspython() -> None:
    for text in ("", ".", "@", "a..b", "ü.example", "a\\.b.example", "x" * 64 + ".example", "a b.example"):
        assert wire.plain_name_wire(text) is None


@given(st.ip_addresses())
def test_reverse_wire_is_the_wire_of_the_reverse_name(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    encoded = wire.reverse_wire(str(address))
    if address.version == 6:
        assert encoded is None
    else:
        assert encoded == wire.name_wire(dns.reversename.from_address(str(address)))


def test_a_known_name_made_from_wire_has_its_name() -> None:
    known = wire.KnownName(wire.name_wire(dns.name.from_text("Linux1.SANDIEGO.lab")))
    assert known.name == dns.name.from_text("linux1.sandiego.lab")
    assert known.name.to_text() == "Linux1.SANDIEGO.lab."  # in the case asked
    assert known.wire == wire.name_wire(dns.name.from_text("linux1.sandiego.lab"))


def test_a_kept_suffix_never_lets_a_bad_first_label_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "_SUFFIXES", {})
    monkeypatch.setattr(wire, "_SUFFIXES_MAX", 2)
    texts = ["a.example.test", "b c.example.test", "x" * 64 + ".example.test", "é.example.test"]
    texts += ["a.other.test.", "a..example.test", ".example.test", "a.b.example.test", "a."]
    for text in texts * 2:  # the second round finds the suffixes kept, some after the store was emptied
        encoded = wire.plain_name_wire(text)
        try:
            expected = dns.name.from_text(text).to_wire()
        except dns.exception.DNSException:
            assert encoded is None
            continue
        assert encoded is None or encoded == expected
        assert (encoded is None) == (text in ("b c.example.test", "é.example.test"))
    assert len(wire._SUFFIXES) <= 2

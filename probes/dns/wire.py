"""DNS messages on the wire, without I/O: build a query, parse a response, read its answer.

The hot path of batch resolution; built on dnspython's name codec and wire parser
but without its full ``Message`` objects, which cost several times more per packet.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import struct
from dataclasses import dataclass
from typing import NamedTuple

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.wire

from midprobe.capabilities.errors import ProtocolError

HEADER = struct.Struct("!HHHHHH")
QUESTION_TAIL = struct.Struct("!HH")
RECORD_HEAD = struct.Struct("!HHIH")

FLAG_QR = 0x8000
FLAG_TC = 0x0200
FLAG_RD = 0x0100

RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4
RCODE_REFUSED = 5

#: UDP payload size we advertise with EDNS(0): the DNS Flag Day 2020 value.
EDNS_PAYLOAD = 1232
#: More CNAME hops than this is a loop or an abuse, not an answer.
MAX_CNAME_HOPS = 16

A = int(dns.rdatatype.A)
AAAA = int(dns.rdatatype.AAAA)
PTR = int(dns.rdatatype.PTR)
CNAME = int(dns.rdatatype.CNAME)
IN = int(dns.rdataclass.IN)

#: A compression pointer to offset 12, where the question name starts.
_POINTER_TO_QUESTION = b"\xc0\x0c"
#: A label ``name_text`` writes as it is (no escapes).
_PLAIN_LABEL = re.compile(rb"[A-Za-z0-9_-]+")
_IN_ADDR_ARPA = (b"in-addr", b"arpa", b"")
_IN_ADDR_ARPA_WIRE = b"\x07in-addr\x04arpa\x00"
#: A host name ``plain_name_wire`` encodes itself: labels of 1-63 plain characters.
_PLAIN_NAME = re.compile(r"(?:[A-Za-z0-9_-]{1,63}\.)*[A-Za-z0-9_-]{1,63}\.?")
#: One label of such a name.
_PLAIN_LABEL_TEXT = re.compile(r"[A-Za-z0-9_-]{1,63}")
#: Wire forms of name suffixes (``plain_name_wire``), by text; emptied when this many are kept.
_SUFFIXES: dict[str, bytes] = {}
_SUFFIXES_MAX = 4096
#: Longer text cannot be a name of at most 255 octets (254 characters with the final dot).
_PLAIN_TEXT_MAX = 254
_LENGTH_OCTET = tuple(bytes((length,)) for length in range(64))
#: The first bytes of a plain answer record of each type: a pointer to the question, type, class IN.
_PLAIN_RECORD_PREFIXES = {
    kind: _POINTER_TO_QUESTION + QUESTION_TAIL.pack(kind, IN) for kind in (A, AAAA, PTR)
}
_OPT_RECORD = b"\x00" + RECORD_HEAD.pack(int(dns.rdatatype.OPT), EDNS_PAYLOAD, 0, 0)


def build_query(name: dns.name.Name, rdtype: int, query_id: int = 0) -> bytes:
    """A recursive query for ``name``/``rdtype`` (class IN) with an EDNS(0) OPT record.

    The batch resolver builds each question once with id 0 and patches the id into
    the first two bytes per attempt.
    """
    return query_for(name_wire(name), rdtype, query_id)


def name_wire(name: dns.name.Name) -> bytes:
    """The uncompressed wire form of an absolute name."""
    if not name.is_absolute():
        raise ValueError(f"query name {name} is not absolute")
    encoded = name.to_wire()
    assert encoded is not None  # None only when writing to a file
    return encoded


def query_for(encoded_name: bytes, rdtype: int, query_id: int = 0) -> bytes:
    """``build_query`` for a name already in wire form (``name_wire``)."""
    header = HEADER.pack(query_id & 0xFFFF, FLAG_RD, 1, 0, 0, 1)
    return header + encoded_name + QUESTION_TAIL.pack(rdtype, IN) + _OPT_RECORD


def with_query_id(query: bytes, query_id: int) -> bytes:
    """The same query with another message id."""
    return query_id.to_bytes(2, "big") + query[2:]


def query_id_of(message: bytes) -> int | None:
    """The message id, or ``None`` when the datagram is too short to be DNS."""
    if len(message) < HEADER.size:
        return None
    return int.from_bytes(message[:2], "big")


@dataclass(frozen=True)
class Record:
    """One answer record we understand: an address (A/AAAA) or a name (PTR/CNAME)."""

    owner: dns.name.Name
    rdtype: int
    ttl: int
    #: The address in canonical text form for A/AAAA, the target name for PTR/CNAME.
    value: str | dns.name.Name


@dataclass(frozen=True)
class Response:
    """The parts of a DNS response a resolver needs."""

    query_id: int
    flags: int
    rcode: int
    question: tuple[dns.name.Name, int, int] | None
    answers: tuple[Record, ...]

    @property
    def truncated(self) -> bool:
        return bool(self.flags & FLAG_TC)

    @property
    def is_response(self) -> bool:
        return bool(self.flags & FLAG_QR)

    def answers_question(self, name: dns.name.Name, rdtype: int) -> bool:
        """Whether this is a response to ``name``/``rdtype`` in class IN (names compare case-insensitively)."""
        if not self.is_response or self.question is None:
            return False
        asked, asked_type, asked_class = self.question
        return asked_type == rdtype and asked_class == IN and same_name(asked, name)


class KnownName:
    """A name with its lower-cased uncompressed wire form, to recognise it in a reply cheaply.

    The ``dns.name.Name`` is made from the wire form on first use when none was given: a plain
    reply is read (``read_plain_reply``) without it.
    """

    __slots__ = ("_name", "encoded", "wire")

    def __init__(self, encoded: bytes, name: dns.name.Name | None = None) -> None:
        self.encoded = encoded  # as asked, in its own case
        self.wire = encoded.lower()
        self._name = name

    @classmethod
    def of(cls, name: dns.name.Name, encoded: bytes | None = None) -> KnownName:
        """``encoded``: the name's wire form when the caller has it already (``name_wire``)."""
        return cls(encoded or name_wire(name), name)

    @property
    def name(self) -> dns.name.Name:
        if self._name is None:
            self._name = dns.name.from_wire(self.encoded, 0)[0]
        return self._name


def parse_response(message: bytes, known: KnownName | None = None) -> Response:
    """Parse the header, the question and the answer section of a DNS message.

    Records of types other than A, AAAA, PTR and CNAME are skipped; the authority
    and additional sections are not read. Raises ``ProtocolError`` on a malformed message.
    When the question name equals ``known`` (ignoring case), it is not parsed again:
    ``known.name`` stands for it (the name a resolver asked, so the common case).
    """
    try:
        return _parse(message, known)
    except (dns.exception.DNSException, ValueError, struct.error) as error:
        reason = str(error) or type(error).__name__
        raise ProtocolError(f"malformed DNS message: {reason}") from None


def _parse(message: bytes, known: KnownName | None) -> Response:
    if len(message) < HEADER.size:
        raise ValueError("shorter than a DNS header")
    query_id, flags, question_count, answer_count, _, _ = HEADER.unpack_from(message)
    parser = dns.wire.Parser(message, HEADER.size)
    question: tuple[dns.name.Name, int, int] | None = None
    for index in range(question_count):
        start = parser.current
        if (
            index == 0
            and known is not None
            and message[start : start + len(known.wire)].lower() == known.wire
        ):
            name = known.name  # length octets are below 64, so lower() changes only letters
            parser.seek(start + len(known.wire))
        else:
            name = dns.name.from_wire_parser(parser)
        rdtype, rdclass = parser.get_struct(QUESTION_TAIL.format)
        if index == 0:
            question = (name, rdtype, rdclass)
    answers: list[Record] = []
    for _ in range(answer_count):
        start = parser.current
        if question is not None and message[start : start + 2] == _POINTER_TO_QUESTION:
            owner = question[0]  # the usual case, and the name already parsed
            parser.seek(start + 2)
        else:
            owner = dns.name.from_wire_parser(parser)
        rdtype, rdclass, ttl, length = parser.get_struct(RECORD_HEAD.format)
        with parser.restrict_to(length):
            if rdclass != IN:
                parser.get_bytes(length)
                continue
            if rdtype == A:
                if length != 4:
                    raise ValueError(f"A record of {length} bytes")
                value: str | dns.name.Name = socket.inet_ntop(socket.AF_INET, parser.get_bytes(4))
            elif rdtype == AAAA:
                if length != 16:
                    raise ValueError(f"AAAA record of {length} bytes")
                value = ipaddress.IPv6Address(parser.get_bytes(16)).compressed
            elif rdtype in (PTR, CNAME):
                value = dns.name.from_wire_parser(parser)
            else:
                parser.get_bytes(length)
                continue
        answers.append(Record(owner, rdtype, ttl, value))
    return Response(query_id, flags, flags & 0x000F, question, tuple(answers))


class PlainReply(NamedTuple):
    """What a reply of the plain shape says (see ``read_plain_reply``)."""

    rcode: int
    values: tuple[str, ...]


def read_plain_reply(message: bytes, known: KnownName, rdtype: int) -> PlainReply | None:
    """The rcode and values of a reply of the plain shape, or ``None``: then ``parse_response`` decides.

    Plain: a response (QR set, TC clear) with one question, ``known`` (ignoring case) of type
    ``rdtype`` and class IN, whose answer records are all of that type and class and owned by
    the question name through a pointer to it (what a server sends for a name without CNAMEs).
    For such a reply this says exactly what ``parse_response``, ``answers_question`` and
    ``answer_values`` together would, at a fraction of their cost; anything else (CNAMEs, other
    owners or types, a malformed message) is left to them.
    """
    return read_plain_answer(message, known.encoded, rdtype)


def read_plain_answer(message: bytes, encoded: bytes, rdtype: int) -> PlainReply | None:
    """``read_plain_reply`` for the question name in its wire form (``encoded``, in the case asked)."""
    size = len(message)
    end = HEADER.size + len(encoded)
    position = end + QUESTION_TAIL.size
    # Byte 2 holds QR (0x80) and TC (0x02); bytes 4-5 the question count.
    if size < position or message[2] & 0x82 != 0x80 or message[4:6] != b"\x00\x01":
        return None
    asked = message[HEADER.size : end]
    if asked != encoded and asked.lower() != encoded.lower():
        return None  # length octets are below 64, so lower() changes only letters
    prefix = _PLAIN_RECORD_PREFIXES.get(rdtype) or _POINTER_TO_QUESTION + QUESTION_TAIL.pack(rdtype, IN)
    if message[end:position] != prefix[2:]:
        return None
    values: list[str] = []
    for _ in range(message[6] << 8 | message[7]):  # the answer count
        start = position + 2 + RECORD_HEAD.size
        # Owned by the question through a pointer, of the type asked and class IN; then the TTL.
        if start > size or message[position : position + 6] != prefix:
            return None
        length = message[start - 2] << 8 | message[start - 1]
        position = start + length
        if position > size:
            return None
        if rdtype == A and length == 4:  # the common case, without a call
            text = socket.inet_ntop(socket.AF_INET, message[start:position])
        else:
            value = _plain_value(message, rdtype, start, length)
            if value is None:
                return None
            text = value
        if text not in values:
            values.append(text)
    return PlainReply(message[3] & 0x0F, tuple(values))


def _plain_value(message: bytes, kind: int, start: int, length: int) -> str | None:
    if kind == A:
        return socket.inet_ntop(socket.AF_INET, message[start : start + 4]) if length == 4 else None
    if kind == AAAA:
        return ipaddress.IPv6Address(message[start : start + 16]).compressed if length == 16 else None
    if kind != PTR:
        return None
    return _plain_target(message, start, start + length)


def _plain_target(message: bytes, start: int, end: int) -> str | None:
    """The PTR target at ``start`` (its record data ends at ``end``) as ``name_text`` writes it.

    Read as ``dns.name.from_wire_parser`` reads it (pointers only backwards, every label and
    pointer within the record, the name ending where the record does, 255 octets at most);
    ``None`` for anything it would refuse and for labels that would need escaping.
    """
    labels: list[bytes] = []
    position = furthest = earliest_pointer = start
    while True:
        if position >= end:
            return None
        count = message[position]
        if count == 0:
            furthest = max(furthest, position + 1)
            break
        if count < 64:
            label = message[position + 1 : position + 1 + count]
            position += 1 + count
            if position > end or not _PLAIN_LABEL.fullmatch(label):
                return None
            labels.append(label)
        elif count >= 192:
            if position + 2 > end:
                return None
            target = (count & 0x3F) << 8 | message[position + 1]
            furthest = max(furthest, position + 2)
            if target >= earliest_pointer:
                return None
            earliest_pointer = position = target
        else:
            return None
        furthest = max(furthest, position)
    if furthest != end or not labels or sum(len(label) + 1 for label in labels) + 1 > 255:
        return None
    return b".".join(labels).decode("ascii")


def answer_values(
    response: Response, name: dns.name.Name, rdtype: int
) -> tuple[dns.name.Name, tuple[str, ...]]:
    """The canonical name (after CNAMEs) and the values of type ``rdtype`` owned by it.

    Addresses come back as text; PTR targets as names without the final dot. The
    order of the answer section is kept and duplicates are dropped.
    """
    canonical = name
    aliases = {record.owner: record.value for record in response.answers if record.rdtype == CNAME}
    if aliases:
        seen = {canonical}
        for _ in range(MAX_CNAME_HOPS):
            target = aliases.get(canonical)
            if not isinstance(target, dns.name.Name) or target in seen:
                break
            canonical = target
            seen.add(canonical)
    values: list[str] = []
    for record in response.answers:
        if record.rdtype == rdtype and same_name(record.owner, canonical):
            text = record.value if isinstance(record.value, str) else name_text(record.value)
            if text not in values:
                values.append(text)
    return canonical, tuple(values)


def plain_name_wire(text: str) -> bytes | None:
    """The wire form of a plain host name (letters, digits, ``-``, ``_``; a final dot optional),
    or ``None`` for any other text: then ``absolute_name`` decides (IDNA, escapes, its errors).

    Equal to ``name_wire(absolute_name(text))`` for every name it takes, without making a ``Name``.
    The names of a batch mostly share their domain: the wire form of the part after the first
    label is kept (``_SUFFIXES``), so a name costs the check and encoding of its first label.
    """
    if len(text) > _PLAIN_TEXT_MAX:
        return None
    label, _, rest = text.partition(".")
    suffix = _SUFFIXES.get(rest)
    if suffix is None:
        suffix = _plain_suffix_wire(rest)
        if suffix is None:
            return None
        if len(_SUFFIXES) >= _SUFFIXES_MAX:
            _SUFFIXES.clear()
        _SUFFIXES[rest] = suffix
    if not _PLAIN_LABEL_TEXT.fullmatch(label):
        return None
    encoded = _LENGTH_OCTET[len(label)] + label.encode() + suffix
    return encoded if len(encoded) <= 255 else None


def _plain_suffix_wire(text: str) -> bytes | None:
    """The wire form of what follows a name's first label ("" for the root), or ``None`` when not plain."""
    if not text:
        return b"\x00"
    if not _PLAIN_NAME.fullmatch(text):
        return None
    labels = (text[:-1] if text.endswith(".") else text).encode().split(b".")
    return b"".join([_LENGTH_OCTET[len(label)] + label for label in labels]) + b"\x00"


def reverse_wire(address: str) -> bytes | None:
    """The wire form of the PTR name of an IPv4 address in canonical text, or ``None`` for any
    other text (then ``reverse_name`` decides). Equal to ``name_wire(reverse_name(address))``."""
    octets = address.split(".")
    if not address.isascii() or len(octets) != 4 or not all(o.isdigit() and len(o) <= 3 for o in octets):
        return None
    labels = [octet.encode() for octet in reversed(octets)]
    return b"".join([_LENGTH_OCTET[len(label)] + label for label in labels]) + _IN_ADDR_ARPA_WIRE


def absolute_name(text: str) -> dns.name.Name:
    """The absolute name for ``text`` (a final dot is optional); a fast path for plain ASCII names."""
    if text.isascii() and "\\" not in text and text not in ("", ".", "@"):
        labels = text[:-1] if text.endswith(".") else text
        return dns.name.Name([*(label.encode() for label in labels.split(".")), b""])
    return dns.name.from_text(text)


def reverse_name(address: str) -> dns.name.Name:
    """The PTR name of an address in canonical text: ``198.18.0.10`` -> ``10.0.18.198.in-addr.arpa.``.

    IPv4 is built from the text at once; IPv6 (and anything else) goes to ``dns.reversename``.
    """
    octets = address.split(".")
    if len(octets) == 4 and all(octet.isdigit() for octet in octets):
        return dns.name.Name([*(octet.encode() for octet in reversed(octets)), *_IN_ADDR_ARPA])
    return dns.reversename.from_address(address)


def same_name(first: dns.name.Name, second: dns.name.Name) -> bool:
    """DNS name equality (case-insensitive), with the cheap exact cases first."""
    return first is second or first.labels == second.labels or first == second


def name_text(name: dns.name.Name) -> str:
    """A name as people write it: no final dot (the root stays ``.``)."""
    return name.to_text(omit_final_dot=True) if name != dns.name.root else "."

"""The SNMP v1/v2c message codec (BER), pure and fast: requests out, responses in.

pysnmp decodes through pyasn1, which costs about 100 us per varbind; a full walk of a
real agent then runs at a sixth of net-snmp's speed. Community-based messages are simple
enough to encode and decode directly, so the v1/v2c hot path uses this module; the SNMPv3
message layer (``v3_message.py``) builds on its BER primitives and PDU coding. Malformed
input raises ``SnmpDecodeError`` and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from midprobe.probes.snmp.values import Oid, SnmpType, SnmpValue, VarBind

# PDU tags (context-specific, constructed).
GET_REQUEST = 0xA0
GET_NEXT_REQUEST = 0xA1
RESPONSE = 0xA2
GET_BULK_REQUEST = 0xA5
REPORT = 0xA8

# Every PDU laid out as request-id, two INTEGERs and varbinds (RFC 3416); 0xA4, the v1
# Trap-PDU, has another layout.
_PDU_TAGS = frozenset({0xA0, 0xA1, 0xA2, 0xA3, GET_BULK_REQUEST, 0xA6, 0xA7, REPORT})

VERSION_1 = 0
VERSION_2C = 1

#: errorStatus values (RFC 3416 section 3) by number.
ERROR_STATUS_NAMES: dict[int, str] = {
    0: "noError",
    1: "tooBig",
    2: "noSuchName",
    3: "badValue",
    4: "readOnly",
    5: "genErr",
    6: "noAccess",
    7: "wrongType",
    8: "wrongLength",
    9: "wrongEncoding",
    10: "wrongValue",
    11: "noCreation",
    12: "inconsistentValue",
    13: "resourceUnavailable",
    14: "commitFailed",
    15: "undoFailed",
    16: "authorizationError",
    17: "notWritable",
    18: "inconsistentName",
}
TOO_BIG = 1
NO_SUCH_NAME = 2

_TAG_INTEGER = 0x02
_TAG_OCTET_STRING = 0x04
_TAG_NULL = 0x05
_TAG_OID = 0x06
_TAG_SEQUENCE = 0x30

_VALUE_TYPES: dict[int, SnmpType] = {
    0x02: SnmpType.INTEGER,
    0x04: SnmpType.OCTET_STRING,
    0x05: SnmpType.NULL,
    0x06: SnmpType.OBJECT_ID,
    0x40: SnmpType.IP_ADDRESS,
    0x41: SnmpType.COUNTER32,
    0x42: SnmpType.GAUGE32,
    0x43: SnmpType.TIME_TICKS,
    0x44: SnmpType.OPAQUE,
    0x46: SnmpType.COUNTER64,
    0x80: SnmpType.NO_SUCH_OBJECT,
    0x81: SnmpType.NO_SUCH_INSTANCE,
    0x82: SnmpType.END_OF_MIB_VIEW,
}
_TYPE_TAGS: dict[SnmpType, int] = {kind: tag for tag, kind in _VALUE_TYPES.items()}
_UNSIGNED_TAGS = frozenset({0x41, 0x42, 0x43, 0x46})
_BYTES_TAGS = frozenset({0x04, 0x40, 0x44})
_EMPTY_TAGS = frozenset({0x05, 0x80, 0x81, 0x82})
# Interned singletons for the value-less types (most walks end in one of these).
_EMPTY_VALUES: dict[int, SnmpValue] = {tag: SnmpValue(_VALUE_TYPES[tag], None) for tag in _EMPTY_TAGS}
_INTEGER = SnmpType.INTEGER
_OBJECT_ID = SnmpType.OBJECT_ID
# The first octet of an OID body holds two arcs (X * 40 + Y).
_FIRST_ARCS: tuple[tuple[int, int], ...] = tuple(
    (octet // 40, octet % 40) if octet < 80 else (2, octet - 80) for octet in range(0x80)
)


class SnmpDecodeError(ValueError):
    """A datagram that is not a well-formed SNMP message."""


@dataclass(frozen=True, slots=True)
class Response:
    """A decoded Response-PDU (or any other PDU a v1/v2c agent sent back)."""

    version: int
    pdu_type: int
    request_id: int
    error_status: int
    error_index: int
    varbinds: tuple[VarBind, ...]

    def count(self) -> int:
        return len(self.varbinds)

    def last_row(self, width: int) -> tuple[VarBind, ...] | None:
        """The last ``width`` varbinds when the count is a non-zero multiple of ``width``."""
        count = len(self.varbinds)
        return self.varbinds[-width:] if count and not count % width else None


# --- encoding ---------------------------------------------------------------------------------


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + _length(len(body)) + body


def _integer(value: int, tag: int = _TAG_INTEGER) -> bytes:
    # Minimal two's complement: -128 is one octet (0x80), as X.690 8.3.2 requires.
    magnitude = value if value >= 0 else ~value
    return _tlv(tag, value.to_bytes(magnitude.bit_length() // 8 + 1, "big", signed=True))


def _unsigned(value: int, tag: int) -> bytes:
    # Unsigned SMI types are still BER INTEGERs: a set top bit needs a leading zero octet.
    return _tlv(tag, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def encode_oid_body(oid: Oid) -> bytes:
    """The content octets of an OBJECT IDENTIFIER (``ValueError`` when not encodable)."""
    if len(oid) < 2 or oid[0] > 2 or (oid[0] < 2 and oid[1] >= 40) or min(oid) < 0:
        raise ValueError(f"{'.'.join(map(str, oid))} is not an encodable OID")
    out = bytearray()
    for arc in (oid[0] * 40 + oid[1], *oid[2:]):
        if arc < 0x80:
            out.append(arc)
            continue
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return bytes(out)


def encode_value(value: SnmpValue) -> bytes:
    """One value in BER (requests carry NULLs; tests build agent responses with the rest)."""
    tag = _TYPE_TAGS[value.type]
    raw = value.value
    if tag in _EMPTY_TAGS:
        return bytes((tag, 0))
    if tag == _TAG_OID:
        assert isinstance(raw, tuple)
        return _tlv(tag, encode_oid_body(raw))
    if tag in _BYTES_TAGS:
        assert isinstance(raw, bytes)
        return _tlv(tag, raw)
    assert isinstance(raw, int)
    return _unsigned(raw, tag) if tag in _UNSIGNED_TAGS else _integer(raw, tag)


def encode_message(
    version: int,
    community: bytes,
    pdu_type: int,
    request_id: int,
    varbinds: Sequence[VarBind],
    *,
    error_status: int = 0,
    error_index: int = 0,
) -> bytes:
    """A whole v1/v2c message. For GETBULK, ``error_status``/``error_index`` carry
    non-repeaters and max-repetitions, as RFC 3416 lays the PDU out."""
    pdu = encode_pdu_with_values(pdu_type, request_id, varbinds, error_status, error_index)
    return _tlv(_TAG_SEQUENCE, _integer(version) + _tlv(_TAG_OCTET_STRING, community) + pdu)


def encode_pdu_with_values(
    pdu_type: int, request_id: int, varbinds: Sequence[VarBind], status: int = 0, index: int = 0
) -> bytes:
    """A PDU with values and an error-status/index (tests build agent answers and v3 reports with it)."""
    body = b"".join(
        _tlv(_TAG_SEQUENCE, _tlv(_TAG_OID, encode_oid_body(oid)) + encode_value(value))
        for oid, value in varbinds
    )
    return _tlv(
        pdu_type, _integer(request_id) + _integer(status) + _integer(index) + _tlv(_TAG_SEQUENCE, body)
    )


_NULL_BER = b"\x05\x00"


def encode_pdu(
    pdu_type: int, request_id: int, oids: Sequence[Oid], *, non_repeaters: int = 0, max_repetitions: int = 0
) -> bytes:
    """A GET / GETNEXT / GETBULK PDU for ``oids`` (values NULL): what a v1/v2c message or a
    v3 scopedPDU carries."""
    body = b"".join(_tlv(_TAG_SEQUENCE, _tlv(_TAG_OID, encode_oid_body(oid)) + _NULL_BER) for oid in oids)
    if pdu_type == GET_BULK_REQUEST:
        second, third = non_repeaters, max_repetitions
    else:
        second = third = 0
    return _tlv(
        pdu_type, _integer(request_id) + _integer(second) + _integer(third) + _tlv(_TAG_SEQUENCE, body)
    )


def encode_request(
    version: int,
    community: bytes,
    pdu_type: int,
    request_id: int,
    oids: Sequence[Oid],
    *,
    non_repeaters: int = 0,
    max_repetitions: int = 0,
) -> bytes:
    """A GET / GETNEXT / GETBULK request for ``oids`` (values NULL)."""
    pdu = encode_pdu(pdu_type, request_id, oids, non_repeaters=non_repeaters, max_repetitions=max_repetitions)
    return _tlv(_TAG_SEQUENCE, _integer(version) + _tlv(_TAG_OCTET_STRING, community) + pdu)


def encode_integer(value: int) -> bytes:
    """A BER INTEGER (for the SNMPv3 message header)."""
    return _integer(value)


def encode_octets(value: bytes) -> bytes:
    """A BER OCTET STRING."""
    return _tlv(_TAG_OCTET_STRING, value)


def encode_sequence(body: bytes) -> bytes:
    """A BER SEQUENCE around already encoded ``body``."""
    return _tlv(_TAG_SEQUENCE, body)


# --- decoding ---------------------------------------------------------------------------------


def _header(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """``(tag, content_start, content_end)`` of the TLV at ``pos``, bounded by ``end``."""
    if pos + 2 > end:
        raise SnmpDecodeError("truncated message")
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > end:
            raise SnmpDecodeError("bad length field")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    stop = pos + length
    if stop > end:
        raise SnmpDecodeError("a length runs past the end of the message")
    return tag, pos, stop


def _expect(data: bytes, pos: int, end: int, tag: int, what: str) -> tuple[int, int]:
    found, start, stop = _header(data, pos, end)
    if found != tag:
        raise SnmpDecodeError(f"expected {what} (tag 0x{tag:02x}), found tag 0x{found:02x}")
    return start, stop


def _int_at(data: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    start, stop = _expect(data, pos, end, _TAG_INTEGER, what)
    if start == stop:
        raise SnmpDecodeError(f"empty INTEGER for {what}")
    return int.from_bytes(data[start:stop], "big", signed=True), stop


def decode_oid_body(body: bytes) -> Oid:
    if not body:
        raise SnmpDecodeError("empty OBJECT IDENTIFIER")
    if max(body) < 0x80:  # every arc fits one octet: the common case, done in C
        return _FIRST_ARCS[body[0]] + tuple(body[1:])
    return _decode_long_arcs(body)


def _base128(octets: bytes) -> int:
    value = 0
    for octet in octets:
        value = (value << 7) | (octet & 0x7F)
    return value


def _decode_long_arcs(body: bytes) -> Oid:
    arcs: list[int] = []
    arc = 0
    starting = True
    for octet in body:
        if starting and octet == 0x80:
            # X.690 8.19.2: an arc is written in as few octets as possible.
            raise SnmpDecodeError("an OBJECT IDENTIFIER arc starts with a padding octet (0x80)")
        arc = (arc << 7) | (octet & 0x7F)
        starting = not octet & 0x80
        if starting:
            arcs.append(arc)
            arc = 0
    if body[-1] & 0x80:
        raise SnmpDecodeError("OBJECT IDENTIFIER ends inside an arc")
    lead = arcs[0]
    head = (lead // 40, lead % 40) if lead < 80 else (2, lead - 80)
    return head + tuple(arcs[1:])


class LazyResponse:
    """A response whose header is decoded and whose varbinds are decoded on first use.

    A walk reads the last row first (to send the next request at once) and decodes the
    rest while the agent works on that request.
    """

    __slots__ = (
        "_data",
        "_end",
        "_positions",
        "_start",
        "_varbinds",
        "error_index",
        "error_status",
        "pdu_type",
        "request_id",
        "version",
    )

    def __init__(self, data: bytes, head: tuple[int, int, int, int, int], start: int, end: int) -> None:
        self.version, self.pdu_type, self.request_id, self.error_status, self.error_index = head
        self._data = data
        self._start = start
        self._end = end
        self._varbinds: tuple[VarBind, ...] | None = None
        self._positions: list[int] | None = None

    @property
    def varbinds(self) -> tuple[VarBind, ...]:
        """Every varbind (``SnmpDecodeError`` when one is malformed)."""
        if self._varbinds is None:
            self._varbinds = _guarded_varbinds(self._data, self._start, self._end)
        return self._varbinds

    def _starts(self) -> list[int] | None:
        """Where each varbind starts (header scan only), ``None`` when the list is malformed."""
        if self._positions is None:
            data = self._data
            starts: list[int] = []
            pos = self._start
            try:
                while pos < self._end:
                    starts.append(pos)
                    pos = _header(data, pos, self._end)[2]
            except SnmpDecodeError:
                return None
            self._positions = starts
        return self._positions

    def count(self) -> int:
        """How many varbinds (0 when the list is malformed; ``varbinds`` then raises)."""
        if self._varbinds is not None:
            return len(self._varbinds)
        starts = self._starts()
        return len(starts) if starts is not None else 0

    def last_row(self, width: int) -> tuple[VarBind, ...] | None:
        """The last ``width`` varbinds when the count is a non-zero multiple of ``width``."""
        if self._varbinds is not None:
            count = len(self._varbinds)
            return self._varbinds[-width:] if count and not count % width else None
        starts = self._starts()
        if not starts or len(starts) % width:
            return None
        try:
            return _guarded_varbinds(self._data, starts[-width], self._end)
        except SnmpDecodeError:
            return None


#: What a session hands back: decoded now (pysnmp) or on first use (the native codec).
Reply = Response | LazyResponse


def decode_response(data: bytes) -> Response:
    """Decode a v1/v2c message carrying a PDU with varbinds (normally a Response-PDU)."""
    lazy = decode_response_lazily(data)
    return Response(
        lazy.version, lazy.pdu_type, lazy.request_id, lazy.error_status, lazy.error_index, lazy.varbinds
    )


def decode_response_lazily(data: bytes) -> LazyResponse:
    """Decode the header now (``SnmpDecodeError`` if malformed), the varbinds when asked for."""
    try:
        head, start, end = _decode_head(data)
    except SnmpDecodeError:
        raise
    except (IndexError, ValueError, KeyError) as error:  # defensive: never leak a bare exception
        raise SnmpDecodeError(f"malformed message: {error}") from None
    return LazyResponse(data, head, start, end)


def _guarded_varbinds(data: bytes, pos: int, end: int) -> tuple[VarBind, ...]:
    try:
        return _decode_varbinds(data, pos, end)
    except SnmpDecodeError:
        raise
    except (IndexError, ValueError, KeyError) as error:
        raise SnmpDecodeError(f"malformed varbind: {error}") from None


def _decode_head(data: bytes) -> tuple[tuple[int, int, int, int, int], int, int]:
    total = len(data)
    start, end = _expect(data, 0, total, _TAG_SEQUENCE, "the message SEQUENCE")
    version, pos = _int_at(data, start, end, "the version")
    if version not in (VERSION_1, VERSION_2C):
        raise SnmpDecodeError(f"SNMP version number {version} is not v1 or v2c")
    _, pos = _expect(data, pos, end, _TAG_OCTET_STRING, "the community")
    return _pdu_head(data, pos, end, version)


def _pdu_head(
    data: bytes, pos: int, end: int, version: int
) -> tuple[tuple[int, int, int, int, int], int, int]:
    pdu_type, pos, pdu_end = _header(data, pos, end)
    if pdu_type not in _PDU_TAGS:
        raise SnmpDecodeError(f"tag 0x{pdu_type:02x} is not an SNMP PDU")
    request_id, pos = _int_at(data, pos, pdu_end, "the request-id")
    error_status, pos = _int_at(data, pos, pdu_end, "the error-status")
    error_index, pos = _int_at(data, pos, pdu_end, "the error-index")
    pos, list_end = _expect(data, pos, pdu_end, _TAG_SEQUENCE, "the varbind list")
    if list_end != pdu_end or pdu_end != end:
        raise SnmpDecodeError("octets after the varbind list inside the message")
    return (version, pdu_type, request_id, error_status, error_index), pos, list_end


def decode_pdu_lazily(data: bytes, pos: int, end: int, version: int) -> LazyResponse:
    """The PDU at ``data[pos:end]`` (inside a v3 scopedPDU), header now, varbinds on first use."""
    try:
        head, start, stop = _pdu_head(data, pos, end, version)
    except SnmpDecodeError:
        raise
    except (IndexError, ValueError, KeyError) as error:
        raise SnmpDecodeError(f"malformed PDU: {error}") from None
    return LazyResponse(data, head, start, stop)


def read_tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """``(tag, content_start, content_end)`` of the TLV at ``pos`` (``SnmpDecodeError`` if malformed)."""
    return _header(data, pos, end)


def read_integer(data: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    """``(value, next position)`` of the INTEGER at ``pos``; ``what`` names it in errors."""
    return _int_at(data, pos, end, what)


def read_octets(data: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    """``(content_start, content_end)`` of the OCTET STRING at ``pos``."""
    return _expect(data, pos, end, _TAG_OCTET_STRING, what)


def read_sequence(data: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    """``(content_start, content_end)`` of the SEQUENCE at ``pos``."""
    return _expect(data, pos, end, _TAG_SEQUENCE, what)


def _decode_varbinds(data: bytes, pos: int, list_end: int) -> tuple[VarBind, ...]:
    varbinds: list[VarBind] = []
    append = varbinds.append
    value_types = _VALUE_TYPES
    empty_values = _EMPTY_VALUES
    first_arcs = _FIRST_ARCS
    long_arcs = _decode_long_arcs
    int_of_base128 = _base128
    heads: dict[bytes, Oid] = {}
    new = tuple.__new__
    value_class = SnmpValue
    from_bytes = int.from_bytes
    # This loop runs once per varbind and dominates a walk's CPU time: the TLV reads for the
    # common short forms are inlined, the long forms go through _header.
    while pos < list_end:
        if data[pos] != _TAG_SEQUENCE:
            raise SnmpDecodeError("a varbind is not a SEQUENCE")
        length = data[pos + 1]
        if length < 0x80:
            pos += 2
            vb_end = pos + length
            if vb_end > list_end:
                raise SnmpDecodeError("a varbind runs past the varbind list")
        else:
            _, pos, vb_end = _header(data, pos, list_end)
        if data[pos] != _TAG_OID:
            raise SnmpDecodeError("a varbind name is not an OBJECT IDENTIFIER")
        length = data[pos + 1]
        if length < 0x80:
            oid_start = pos + 2
            oid_end = oid_start + length
            if oid_end > vb_end or not length:
                raise SnmpDecodeError("a varbind name is empty or runs past its varbind")
        else:
            _, oid_start, oid_end = _header(data, pos, vb_end)
        body = data[oid_start:oid_end]
        if max(body) < 0x80:
            oid = first_arcs[body[0]] + tuple(body[1:])
        else:
            # Neighbouring OIDs share all but their last arc: decode that prefix once per answer.
            if body[-1] & 0x80:
                raise SnmpDecodeError("OBJECT IDENTIFIER ends inside an arc")
            cut = len(body) - 1
            while cut and body[cut - 1] & 0x80:
                cut -= 1
            head = heads.get(body[:cut]) if cut else None
            if head is None:
                oid = long_arcs(body)
                if cut:
                    heads[body[:cut]] = oid[:-1]
            else:
                tail = body[cut:]
                if tail[0] == 0x80:
                    raise SnmpDecodeError("an OBJECT IDENTIFIER arc starts with a padding octet (0x80)")
                oid = (*head, tail[0] if len(tail) == 1 else int_of_base128(tail))
        tag = data[oid_end]
        length = data[oid_end + 1]
        if length < 0x80:
            value_start = oid_end + 2
            value_end = value_start + length
        else:
            tag, value_start, value_end = _header(data, oid_end, vb_end)
        if value_end != vb_end:
            raise SnmpDecodeError("a varbind holds more or less than a name and a value")
        if tag == 0x02:
            if value_start == value_end:
                raise SnmpDecodeError("empty INTEGER value")
            value = new(value_class, (_INTEGER, from_bytes(data[value_start:value_end], "big", signed=True)))
        elif tag == 0x04 or tag == 0x40 or tag == 0x44:
            value = new(value_class, (value_types[tag], data[value_start:value_end]))
        elif tag == 0x06:
            value = new(value_class, (_OBJECT_ID, decode_oid_body(data[value_start:value_end])))
        elif tag in empty_values:
            value = empty_values[tag]
        else:
            kind = value_types.get(tag)
            if kind is None:
                raise SnmpDecodeError(f"unknown value tag 0x{tag:02x}")
            if value_start == value_end:
                raise SnmpDecodeError("empty unsigned value")
            value = new(value_class, (kind, from_bytes(data[value_start:value_end], "big")))
        append((oid, value))
        pos = vb_end
    return tuple(varbinds)


def peek_request_id(data: bytes) -> int | None:
    """The request-id of a v1/v2c message, or ``None`` when it is not one (cheap, never raises)."""
    try:
        start, end = _expect(data, 0, len(data), _TAG_SEQUENCE, "the message SEQUENCE")
        _, pos = _int_at(data, start, end, "the version")
        _, pos = _expect(data, pos, end, _TAG_OCTET_STRING, "the community")
        _, pos, pdu_end = _header(data, pos, end)
        request_id, _ = _int_at(data, pos, pdu_end, "the request-id")
    except (SnmpDecodeError, IndexError):
        return None
    return request_id

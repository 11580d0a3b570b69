"""The native codec against pyasn1's BER decoder on damaged datagrams: both accept or both refuse.

pyasn1 (through pysnmp's message schema) is the reference: whenever it reads a damaged
datagram, ours must read the same values; whenever it refuses one, ours must raise
``SnmpDecodeError``. Indefinite lengths are the one BER form both refuse on purpose (SNMP
agents never send them), so the reference runs pyasn1's decoder with them switched off; and
pyasn1 reads an INTEGER without content octets as 0, which X.690 (8.3.1) forbids and we refuse,
so the reference refuses it too. pysnmp's schema also checks SMI ranges and sizes (a Counter32
sent without its leading zero octet, a negative error-index, an IpAddress of two octets); we
read such values as they come, so there the datagram is read again with those checks off and
only the verdict on the BER itself is compared. pyasn1 lets a TLV run past the end
of the SEQUENCE holding it, and reads its length fields however long; the reference refuses
both (a datagram is never longer than four length octets can say). v1 messages are read by
the v2c schema: we accept v2c value types in a v1 message, as agents send them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from hypothesis import example, given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder as ber_decoder
from pyasn1.codec.der import decoder as definite_length_decoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import constraint, univ
from pyasn1.type.error import ValueConstraintError
from pysnmp.proto import api, rfc1902
from pysnmp.proto.error import ProtocolError

from midprobe.probes.snmp.codec import SnmpDecodeError, decode_response_lazily, encode_message
from midprobe.probes.snmp.values import Oid, SnmpType, SnmpValue, VarBind

V2C = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
_EMPTY = {SnmpType.NULL, SnmpType.NO_SUCH_OBJECT, SnmpType.NO_SUCH_INSTANCE, SnmpType.END_OF_MIB_VIEW}
# By pysnmp's class for the value, not by tag: the reference must not share the codec's tag table.
_BY_CLASS = {
    "Integer": SnmpType.INTEGER,
    "OctetString": SnmpType.OCTET_STRING,
    "Null": SnmpType.NULL,
    "ObjectIdentifier": SnmpType.OBJECT_ID,
    "IpAddress": SnmpType.IP_ADDRESS,
    "Counter32": SnmpType.COUNTER32,
    "Gauge32": SnmpType.GAUGE32,
    "TimeTicks": SnmpType.TIME_TICKS,
    "Opaque": SnmpType.OPAQUE,
    "Counter64": SnmpType.COUNTER64,
    "NoSuchObject": SnmpType.NO_SUCH_OBJECT,
    "NoSuchInstance": SnmpType.NO_SUCH_INSTANCE,
    "EndOfMibView": SnmpType.END_OF_MIB_VIEW,
}


class _IntegerWithContent(ber_decoder.IntegerPayloadDecoder):  # type: ignore[misc]
    def valueDecoder(
        self, substrate: Any, asn1Spec: Any, tagSet: Any, length: int, *more: Any, **options: Any
    ) -> Any:
        if not length:
            raise PyAsn1Error("an INTEGER without content octets")
        yield from super().valueDecoder(substrate, asn1Spec, tagSet, length, *more, **options)


class _SingleItemDecoder(definite_length_decoder.SingleItemDecoder):  # type: ignore[misc]
    TAG_MAP: ClassVar[dict[Any, Any]] = {
        **definite_length_decoder.TAG_MAP,
        univ.Integer.tagSet: _IntegerWithContent(),
    }
    TYPE_MAP: ClassVar[dict[Any, Any]] = {
        **definite_length_decoder.TYPE_MAP,
        univ.Integer.typeId: _IntegerWithContent(),
    }


class _StreamingDecoder(definite_length_decoder.StreamingDecoder):  # type: ignore[misc]
    SINGLE_ITEM_DECODER = _SingleItemDecoder


class _Decoder(definite_length_decoder.Decoder):  # type: ignore[misc]
    STREAMING_DECODER = _StreamingDecoder


_reference_decode = _Decoder()

Reading = tuple[int, int, int, int, int, tuple[VarBind, ...]]


def _ours(data: bytes) -> Reading | None:
    try:
        lazy = decode_response_lazily(data)
        return (
            lazy.version,
            lazy.pdu_type,
            lazy.request_id,
            lazy.error_status,
            lazy.error_index,
            lazy.varbinds,
        )
    except SnmpDecodeError:
        return None


def _value(raw: Any) -> SnmpValue:
    kind = _BY_CLASS[type(raw).__name__]
    if kind in _EMPTY:
        return SnmpValue(kind, None)
    if kind is SnmpType.OBJECT_ID:
        return SnmpValue(kind, tuple(raw))
    if kind in (SnmpType.OCTET_STRING, SnmpType.IP_ADDRESS, SnmpType.OPAQUE):
        return SnmpValue(kind, bytes(raw))
    return SnmpValue(kind, int(raw))


def _leaf(choice: Any) -> Any:
    """The simple value under pysnmp's nested CHOICEs (ObjectSyntax, SimpleSyntax, ...)."""
    while hasattr(choice, "getComponent"):
        choice = choice.getComponent()
    return choice


def _nests(data: bytes, pos: int, end: int) -> bool:
    """Whether the TLVs in ``data[pos:end]`` fill it exactly, each inside its parent."""
    while pos < end:
        if pos + 2 > end:
            return False
        constructed, length = data[pos] & 0x20, data[pos + 1]
        pos += 2
        if length & 0x80:
            count = length & 0x7F
            if not 0 < count <= 4 or pos + count > end:
                return False
            length = int.from_bytes(data[pos : pos + count], "big")
            pos += count
        if pos + length > end or (constructed and not _nests(data, pos, pos + length)):
            return False
        pos += length
    return True


def _message_end(data: bytes) -> int:
    """Where the first TLV ends (the datagram's own length when that cannot be read)."""
    if len(data) < 2 or not data[1] & 0x80:
        return min(len(data), 2 + (data[1] if len(data) > 1 else 0))
    count = data[1] & 0x7F
    return min(len(data), 2 + count + int.from_bytes(data[2 : 2 + count], "big"))


OUT_OF_RANGE = "well-formed BER, a value out of its SMI range"


def _reference(data: bytes) -> Reading | str | None:
    """What pyasn1 reads (``None`` when it refuses), by the schema of the message's version.

    A value outside its SMI range (or size) is checked as it is read, before pyasn1 has seen the rest of the
    datagram: then the datagram is read again with the range checks off, and only a datagram that
    is well-formed BER past that value counts as "out of range" (anything else is refused).
    """
    reading = _read_reference(data)
    if reading != OUT_OF_RANGE:
        return reading
    with _ranges_unchecked():
        return OUT_OF_RANGE if _read_reference(data) is not None else None


@contextmanager
def _ranges_unchecked() -> Iterator[None]:
    """pyasn1 with the SMI's value ranges and sizes (an IpAddress of 4 octets) not checked."""
    kinds = (constraint.ValueRangeConstraint, constraint.ValueSizeConstraint)
    saved = [kind._testValue for kind in kinds]
    ip_address_in = rfc1902.IpAddress.prettyIn
    for kind in kinds:
        kind._testValue = lambda self, value, idx: None
    rfc1902.IpAddress.prettyIn = lambda self, value: univ.OctetString.prettyIn(self, value)
    try:
        yield
    finally:
        for kind, test_value in zip(kinds, saved, strict=True):
            kind._testValue = test_value
        rfc1902.IpAddress.prettyIn = ip_address_in


def _read_reference(data: bytes) -> Reading | str | None:
    if not _nests(data, 0, _message_end(data)):
        return None
    try:
        message, _ = _reference_decode(data, asn1Spec=V2C.Message())
        if int(message["version"]) not in (0, 1):
            return None  # an SNMPv3 (or unknown) message is not ours to read
        pdu = message["data"].getComponent()
        tag = pdu.tagSet[-1]
        return (
            int(message["version"]),
            int(tag.tagClass | tag.tagFormat | tag.tagId),
            int(pdu[0]),
            int(pdu[1]),
            int(pdu[2]),
            tuple((tuple(varbind[0]), _value(_leaf(varbind[1]))) for varbind in pdu[3]),
        )
    except (ValueConstraintError, ProtocolError):  # pysnmp's SMI checks (ranges, an IpAddress's size)
        return OUT_OF_RANGE
    except (PyAsn1Error, KeyError, ValueError, TypeError):
        return None


_arcs = st.one_of(st.integers(0, 300), st.integers(0, 2**32 - 1))
_oids: st.SearchStrategy[Oid] = st.tuples(
    st.one_of(st.tuples(st.integers(0, 1), st.integers(0, 39)), st.tuples(st.just(2), st.integers(0, 2000))),
    st.lists(_arcs, max_size=8),
).map(lambda parts: parts[0] + tuple(parts[1]))
_values = st.one_of(
    st.integers(-(2**31), 2**31 - 1).map(lambda n: SnmpValue(SnmpType.INTEGER, n)),
    st.binary(max_size=20).map(lambda b: SnmpValue(SnmpType.OCTET_STRING, b)),
    st.just(SnmpValue(SnmpType.NULL, None)),
    _oids.map(lambda oid: SnmpValue(SnmpType.OBJECT_ID, oid)),
    st.binary(min_size=4, max_size=4).map(lambda b: SnmpValue(SnmpType.IP_ADDRESS, b)),
    st.integers(0, 2**32 - 1).map(lambda n: SnmpValue(SnmpType.COUNTER32, n)),
    st.integers(0, 2**32 - 1).map(lambda n: SnmpValue(SnmpType.TIME_TICKS, n)),
    st.integers(0, 2**64 - 1).map(lambda n: SnmpValue(SnmpType.COUNTER64, n)),
    st.sampled_from([SnmpType.NO_SUCH_OBJECT, SnmpType.END_OF_MIB_VIEW]).map(lambda k: SnmpValue(k, None)),
)
_messages = st.builds(
    lambda version, request_id, varbinds: encode_message(version, b"public", 0xA2, request_id, varbinds),
    st.sampled_from([0, 1]),
    st.integers(-(2**31), 2**31 - 1),
    st.lists(st.tuples(_oids, _values), max_size=4),
)


def _damage(data: bytes, how: str, position: int, octet: int) -> bytes:
    position %= len(data)
    if how == "replace":
        return data[:position] + bytes((octet,)) + data[position + 1 :]
    if how == "insert":
        return data[:position] + bytes((octet,)) + data[position:]
    if how == "delete":
        return data[:position] + data[position + 1 :]
    return data[:position]  # truncate


def _agree(data: bytes) -> None:
    ours, reference = _ours(data), _reference(data)
    if reference == OUT_OF_RANGE:
        assert ours is not None, data.hex()
    else:
        assert ours == reference, data.hex()


@settings(max_examples=400, deadline=None)
@given(
    _messages,
    st.sampled_from(["replace", "insert", "delete", "truncate"]),
    st.integers(0, 500),
    st.integers(0, 255),
)
def test_damaged_datagrams_are_read_like_pyasn1_reads_them(
    data: bytes, how: str, position: int, octet: int
) -> None:
    _agree(_damage(data, how, position, octet))


@settings(max_examples=100, deadline=None)
@given(_messages)
def test_undamaged_datagrams_are_read_like_pyasn1_reads_them(data: bytes) -> None:
    assert _ours(data) is not None
    _agree(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
@example(b"0\x80\x02\x01\x01\x04\x00\xa2\x80\x02\x01\x01\x02\x01\x00\x02\x01\x000\x00\x00\x00\x00\x00")
# An arc padded with a leading 0x80 octet (X.690 8.19.2 forbids it; pyasn1 refuses it).
@example(
    bytes.fromhex(
        "304d02010004067075626c6963a240020100020100020100303530070602000002012f301806124f8128818000"
        "8180008100808080fb027a0502020256300606014f02010130080603000000020100"
    )
)
# An error-index out of range whose length swallows the varbind list's header: refused by both.
@example(
    bytes.fromhex(
        "303d02010004067075626c6963a2300202008002010002060030243009060100040400000000300a0602500004040000"
        "0000300b0605810000810002020080"
    )
)
# A second SEQUENCE after the varbind list inside the PDU: refused by both.
@example(
    bytes.fromhex(
        "303102010004067075626c6963a224020200800201000201003000301606108100008100810081008100810081800002020080"
    )
)
def test_random_bytes_are_read_like_pyasn1_reads_them(data: bytes) -> None:
    _agree(data)

"""The native v1/v2c codec against pyasn1/pysnmp as the oracle, plus malformed input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import api, rfc1905

from midprobe.probes.snmp.codec import (
    GET_BULK_REQUEST,
    GET_NEXT_REQUEST,
    GET_REQUEST,
    RESPONSE,
    SnmpDecodeError,
    decode_response,
    decode_response_lazily,
    encode_message,
    encode_request,
    peek_request_id,
)
from midprobe.probes.snmp.values import SnmpType, SnmpValue

V2C = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
V1 = api.PROTOCOL_MODULES[api.SNMP_VERSION_1]

_arcs = st.integers(min_value=0, max_value=2**32 - 1)
_small_arcs = st.integers(min_value=0, max_value=300)
oids = st.tuples(st.integers(0, 2), st.integers(0, 39)).flatmap(
    lambda head: st.lists(st.one_of(_small_arcs, _arcs), min_size=0, max_size=14).map(
        lambda tail: head + tuple(tail)
    )
)


def _pair(kind: SnmpType, python: object, pysnmp: Any) -> tuple[SnmpValue, Any]:
    return SnmpValue(kind, python), pysnmp  # type: ignore[arg-type]


values = st.one_of(
    st.integers(-(2**31), 2**31 - 1).map(lambda n: _pair(SnmpType.INTEGER, n, V2C.Integer(n))),
    st.binary(max_size=300).map(lambda b: _pair(SnmpType.OCTET_STRING, b, V2C.OctetString(b))),
    st.just(_pair(SnmpType.NULL, None, V2C.Null(""))),
    oids.map(lambda o: _pair(SnmpType.OBJECT_ID, o, V2C.ObjectIdentifier(o))),
    st.binary(min_size=4, max_size=4).map(lambda b: _pair(SnmpType.IP_ADDRESS, b, V2C.IpAddress(b))),
    st.integers(0, 2**32 - 1).map(lambda n: _pair(SnmpType.COUNTER32, n, V2C.Counter32(n))),
    st.integers(0, 2**32 - 1).map(lambda n: _pair(SnmpType.GAUGE32, n, V2C.Gauge32(n))),
    st.integers(0, 2**32 - 1).map(lambda n: _pair(SnmpType.TIME_TICKS, n, V2C.TimeTicks(n))),
    st.integers(0, 2**64 - 1).map(lambda n: _pair(SnmpType.COUNTER64, n, V2C.Counter64(n))),
    st.binary(max_size=40).map(lambda b: _pair(SnmpType.OPAQUE, b, V2C.Opaque(b))),
    st.just(_pair(SnmpType.NO_SUCH_OBJECT, None, rfc1905.noSuchObject)),
    st.just(_pair(SnmpType.NO_SUCH_INSTANCE, None, rfc1905.noSuchInstance)),
    st.just(_pair(SnmpType.END_OF_MIB_VIEW, None, rfc1905.endOfMibView)),
)


def _pyasn1_response(
    request_id: int, varbinds: Sequence[tuple[tuple[int, ...], Any]], status: int = 0
) -> bytes:
    message = V2C.Message()
    V2C.apiMessage.set_defaults(message)
    V2C.apiMessage.set_community(message, b"community")
    pdu = V2C.ResponsePDU()
    V2C.apiPDU.set_defaults(pdu)
    V2C.apiPDU.set_request_id(pdu, request_id)
    V2C.apiPDU.set_error_status(pdu, status)
    V2C.apiPDU.set_varbinds(pdu, varbinds)
    V2C.apiMessage.set_pdu(message, pdu)
    return bytes(encoder.encode(message))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(oids.filter(lambda o: len(o) >= 2), values), max_size=40),
    st.integers(-(2**31), 2**31 - 1),
)
def test_decodes_what_pyasn1_encodes(varbinds: list[Any], request_id: int) -> None:
    data = _pyasn1_response(request_id, [(oid, pysnmp) for oid, (_, pysnmp) in varbinds])
    decoded = decode_response(data)
    assert decoded.pdu_type == RESPONSE
    assert decoded.request_id == request_id
    assert decoded.varbinds == tuple((oid, ours) for oid, (ours, _) in varbinds)
    assert peek_request_id(data) == request_id
    # and our own encoder writes the same message, never longer (pyasn1 spends two octets on -128)
    mine = encode_message(1, b"community", RESPONSE, request_id, decoded.varbinds)
    assert decode_response(mine) == decoded
    assert len(mine) <= len(data)


@settings(max_examples=150, deadline=None)
@given(
    oids.filter(lambda o: len(o) >= 2),
    st.lists(st.lists(st.one_of(_small_arcs, _arcs), min_size=1, max_size=3), min_size=1, max_size=60),
)
def test_table_walk_answers_with_shared_prefixes(prefix: tuple[int, ...], instances: list[list[int]]) -> None:
    # a walk answer: one column, many instances; the decoder reuses the shared prefix
    rows = [((*prefix, *instance), V2C.Integer(n)) for n, instance in enumerate(instances)]
    decoded = decode_response(_pyasn1_response(1, rows))
    assert [oid for oid, _ in decoded.varbinds] == [oid for oid, _ in rows]


@given(
    st.sampled_from([GET_REQUEST, GET_NEXT_REQUEST, GET_BULK_REQUEST]),
    st.lists(oids.filter(lambda o: len(o) >= 2), min_size=1, max_size=20),
    st.integers(0, 2**31 - 1),
    st.integers(0, 1000),
)
def test_requests_decode_in_pyasn1(
    pdu_type: int, requested: list[tuple[int, ...]], request_id: int, reps: int
) -> None:
    data = encode_request(1, b"secret-community", pdu_type, request_id, requested, max_repetitions=reps)
    message, rest = decoder.decode(data, asn1Spec=V2C.Message())
    assert rest == b""
    assert V2C.apiMessage.get_community(message) == b"secret-community"
    pdu = V2C.apiMessage.get_pdu(message)
    assert int(V2C.apiPDU.get_request_id(pdu)) == request_id
    assert [tuple(oid) for oid, _ in V2C.apiPDU.get_varbinds(pdu)] == requested
    if pdu_type == GET_BULK_REQUEST:
        assert int(V2C.apiBulkPDU.get_max_repetitions(pdu)) == reps
        assert int(V2C.apiBulkPDU.get_non_repeaters(pdu)) == 0


def test_v1_request_is_a_v1_message() -> None:
    data = encode_request(0, b"c", GET_NEXT_REQUEST, 9, [(1, 3, 6, 1)])
    message, _ = decoder.decode(data, asn1Spec=V1.Message())
    assert int(V1.apiMessage.get_version(message)) == 0


def test_lazy_response_finds_the_last_row_without_decoding_everything() -> None:
    rows = [
        ((1, 3, 6, 1, 2, 1, 2, 2, 1, column, index), V2C.Integer(index))
        for index in (1, 2)
        for column in (1, 2)
    ]
    lazy = decode_response_lazily(_pyasn1_response(5, rows))
    assert lazy.count() == 4
    assert lazy.last_row(2) == (
        ((1, 3, 6, 1, 2, 1, 2, 2, 1, 1, 2), SnmpValue(SnmpType.INTEGER, 2)),
        ((1, 3, 6, 1, 2, 1, 2, 2, 1, 2, 2), SnmpValue(SnmpType.INTEGER, 2)),
    )
    assert lazy.last_row(3) is None  # 4 varbinds are not whole rows of 3
    assert len(lazy.varbinds) == 4


def test_error_status_is_kept() -> None:
    decoded = decode_response(_pyasn1_response(1, [((1, 3, 6, 1), V2C.Null(""))], status=18))
    assert decoded.error_status == 18


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x30",
        b"\x30\x03\x02\x01\x05",  # version 5
        b"\x04\x00",
        b"\x30\x84\xff\xff\xff\xff",  # a length far past the end
        b"\x30\x80\x00\x00",  # indefinite length
    ],
)
def test_malformed_messages(data: bytes) -> None:
    with pytest.raises(SnmpDecodeError):
        decode_response(data)
    assert peek_request_id(data) is None


def test_truncated_varbind_is_an_error() -> None:
    data = _pyasn1_response(3, [((1, 3, 6, 1, 2, 1, 1, 1, 0), V2C.OctetString(b"abcdef"))])
    with pytest.raises(SnmpDecodeError):
        decode_response(data[:-2])


@pytest.mark.parametrize(
    ("value", "ber"),
    [(0, "020100"), (127, "02017f"), (128, "02020080"), (-1, "0201ff"), (-128, "020180"), (-129, "0202ff7f")],
)
def test_integers_are_encoded_in_the_fewest_octets(value: int, ber: str) -> None:
    # the value of an INTEGER varbind as a SET or a test agent would send it
    data = encode_message(1, b"c", RESPONSE, 1, [((1, 3, 6), SnmpValue(SnmpType.INTEGER, value))])
    assert data.hex().endswith(ber)
    assert decode_response(data).varbinds[0][1] == SnmpValue(SnmpType.INTEGER, value)


def test_oids_under_first_arc_2_keep_arcs_past_39() -> None:
    # 2.999 packs into one subidentifier 1079 (40 * 2 + 999); read back as 2.999, not 26.39
    for oid in [(2, 999, 1), (2, 40), (2, 47, 5), (2, 999)]:
        data = encode_message(1, b"c", RESPONSE, 1, [(oid, SnmpValue(SnmpType.OBJECT_ID, oid))])
        assert decode_response(data).varbinds == ((oid, SnmpValue(SnmpType.OBJECT_ID, oid)),)
    assert decode_response(_pyasn1_response(1, [((2, 999, 1), V2C.Null(""))])).varbinds[0][0] == (2, 999, 1)


_HEAD = "02010104016ca2"  # version 2c, community "l", then a Response-PDU


def _message(pdu_body: str) -> bytes:
    body = bytes.fromhex(_HEAD) + bytes((len(bytes.fromhex(pdu_body)),)) + bytes.fromhex(pdu_body)
    return b"\x30" + bytes((len(body),)) + body


_IDS = "020101020100020100"  # request-id 1, error-status 0, error-index 0


@pytest.mark.parametrize(
    ("pdu_body", "error"),
    [
        (_IDS + "3080" + "3005060128050000" + "0000", "bad length field"),  # indefinite list
        (_IDS + "3009" + "3080060128050000" + "00", "bad length field"),  # indefinite varbind
        ("0200020100020100" + "3000", "empty INTEGER"),  # request-id without content
        (_IDS + "3005" + "3003060128", "malformed|truncated"),  # a varbind without a value
        (_IDS + "3007" + "3005060128" + "0200", "empty INTEGER"),
        (_IDS + "3008" + "3006060128050000", "more or less"),  # one octet after the value
        (_IDS + "3008" + "30060602" + "2b86" + "0500", "inside an arc"),  # name
        (_IDS + "300a" + "3008060128" + "06032b8686", "inside an arc"),  # OID value
        # the second name shares the first one's prefix (decoded once, cached) and ends inside an arc
        (_IDS + "3010" + "3006" + "06022b06" + "0500" + "3006" + "06022b86" + "0500", "inside an arc"),
        (_IDS + "3013" + "3008" + "06042b068601" + "0500" + "3007" + "06032b0686" + "0500", "inside an arc"),
        # an arc padded with a leading 0x80 (X.690 8.19.2): in a name, in a value, in a cached tail
        (_IDS + "3009" + "3007" + "06032b8001" + "0500", "padding octet"),
        (_IDS + "300b" + "3009" + "060128" + "06042b068001", "padding octet"),
        (_IDS + "3014" + "3008" + "06042b068601" + "0500" + "3008" + "06042b068001" + "0500", "padding"),
        (_IDS + "3006" + "3004" + "0600" + "0500", "empty"),  # an empty name
        (_IDS + "3000" + "3000", "after the varbind list"),  # a second list inside the PDU
        (_IDS + "3007" + "3005" + "060128" + "4100", "empty unsigned"),  # Counter32 without content
    ],
)
def test_malformed_pdus_are_refused(pdu_body: str, error: str) -> None:
    with pytest.raises(SnmpDecodeError, match=error):
        decode_response(_message(pdu_body))


@pytest.mark.parametrize("version", [2, 3, 5])
def test_only_v1_and_v2c_messages_are_read(version: int) -> None:
    data = bytearray(_message(_IDS + "3000"))
    assert data[2:5] == b"\x02\x01\x01"
    data[4] = version
    with pytest.raises(SnmpDecodeError, match=f"version number {version} is not v1 or v2c"):
        decode_response(bytes(data))


@pytest.mark.parametrize("tag", [0xA4, 0xA9, 0xAF, 0xBF])
def test_unknown_pdu_tags_are_refused(tag: int) -> None:
    data = bytearray(_message(_IDS + "3000"))
    data[data.index(0xA2)] = tag
    with pytest.raises(SnmpDecodeError, match="is not an SNMP PDU"):
        decode_response(bytes(data))


def test_every_pdu_tag_of_rfc_3416_is_read() -> None:
    for tag in (0xA0, 0xA1, 0xA2, 0xA3, 0xA5, 0xA6, 0xA7, 0xA8):
        data = bytearray(_message(_IDS + "3000"))
        data[data.index(0xA2)] = tag
        assert decode_response(bytes(data)).pdu_type == tag


def test_a_datagram_one_octet_short_is_refused() -> None:
    data = _pyasn1_response(3, [((1, 3, 6, 1, 2, 1, 1, 3, 0), V2C.TimeTicks(5))])
    assert decode_response(data).varbinds  # whole, it decodes
    for cut in range(1, len(data)):
        with pytest.raises(SnmpDecodeError):
            decode_response(data[:cut])

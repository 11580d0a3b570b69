"""SNMPv3 message coding: round trips, and pysnmp's message schema reading what we build."""

from __future__ import annotations

import pytest
from pyasn1.codec.ber import decoder
from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message
from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters

from midprobe.probes.credentials.secret import Secret
from midprobe.probes.snmp.auth import UsmAuth
from midprobe.probes.snmp.codec import GET_BULK_REQUEST, REPORT, SnmpDecodeError, encode_octets, encode_pdu
from midprobe.probes.snmp.usm import decrypt, encrypt, localize, sign, verify
from midprobe.probes.snmp.v3_message import (
    UsmParameters,
    decode_message,
    decode_scoped_pdu,
    encode_message,
    encode_scoped_pdu,
    peek_message_id,
)

ENGINE = bytes.fromhex("80001f8880b1c1d5e7a3f4a35f00000000")
OIDS = [(1, 3, 6, 1, 2, 1, 1), (1, 3, 6, 1, 2, 1, 2, 2, 1, 2)]


def _scoped(request_id: int = 77) -> bytes:
    pdu = encode_pdu(GET_BULK_REQUEST, request_id, OIDS, max_repetitions=25)
    return encode_scoped_pdu(ENGINE, b"ctx", pdu)


def test_a_signed_message_reads_back_and_verifies() -> None:
    keys = localize(UsmAuth("alice", "SHA256", Secret("authpass1")), ENGINE)
    usm = UsmParameters(ENGINE, 3, 1234, b"alice", bytes(keys.digest_length))
    data, offset = encode_message(4242, keys.flags, usm, _scoped())
    assert data[offset : offset + keys.digest_length] == bytes(keys.digest_length)
    signed = sign(keys, data, offset)
    message = decode_message(signed)
    assert (message.msg_id, message.flags, message.security_model) == (4242, 0x05, 3)
    assert message.usm.engine_id == ENGINE
    assert message.usm.user == b"alice"
    assert (message.usm.boots, message.usm.engine_time) == (3, 1234)
    assert message.auth_offset == offset
    assert verify(keys, signed, message.auth_offset, len(message.usm.auth_params))
    assert message.scoped is not None
    scoped = decode_scoped_pdu(signed, *message.scoped)
    assert scoped.context_engine_id == ENGINE
    assert scoped.context_name == b"ctx"
    assert scoped.pdu.pdu_type == GET_BULK_REQUEST
    assert scoped.pdu.request_id == 77
    assert [oid for oid, _ in scoped.pdu.varbinds] == OIDS
    assert peek_message_id(signed) == 4242


def test_pysnmp_reads_the_message_we_build() -> None:
    usm = UsmParameters(ENGINE, 1, 99, b"bob", bytes(12), b"12345678")
    data, _ = encode_message(7, 0x07, usm, encode_octets(b"\x01" * 32))
    message, rest = decoder.decode(data, asn1Spec=SNMPv3Message())
    assert rest == b""
    assert int(message["msgGlobalData"]["msgID"]) == 7
    assert bytes(message["msgGlobalData"]["msgFlags"]) == b"\x07"
    params, _ = decoder.decode(bytes(message["msgSecurityParameters"]), asn1Spec=UsmSecurityParameters())
    assert bytes(params["msgAuthoritativeEngineId"]) == ENGINE
    assert int(params["msgAuthoritativeEngineTime"]) == 99
    assert bytes(params["msgUserName"]) == b"bob"
    assert bytes(params["msgPrivacyParameters"]) == b"12345678"
    assert bytes(message["msgData"]["encryptedPDU"]) == b"\x01" * 32


@pytest.mark.parametrize("priv", ["DES", "AES"])
def test_an_encrypted_scoped_pdu_decrypts_back(priv: str) -> None:
    keys = localize(UsmAuth("u", "MD5", Secret("authpass1"), priv, Secret("privpass1")), ENGINE)
    ciphertext, privacy = encrypt(keys, _scoped(5), 2, 300, 9)
    usm = UsmParameters(ENGINE, 2, 300, b"u", bytes(12), privacy)
    data, offset = encode_message(1, keys.flags, usm, encode_octets(ciphertext))
    message = decode_message(sign(keys, data, offset))
    assert message.encrypted == ciphertext
    assert message.scoped is None
    plain = decrypt(keys, message.encrypted, message.usm.priv_params, 2, 300)
    assert decode_scoped_pdu(plain).pdu.request_id == 5  # DES padding after the SEQUENCE is ignored


def test_a_discovery_report_reads() -> None:
    pdu = encode_pdu(REPORT, 0, [(1, 3, 6, 1, 6, 3, 15, 1, 1, 4, 0)])
    data, _ = encode_message(9, 0, UsmParameters(ENGINE, 5, 600, b""), encode_scoped_pdu(ENGINE, b"", pdu))
    message = decode_message(data)
    assert message.usm.engine_id == ENGINE
    assert message.usm.boots == 5
    assert message.scoped is not None
    assert decode_scoped_pdu(data, *message.scoped).pdu.pdu_type == REPORT


@pytest.mark.parametrize("cut", [1, 5, 20, 40, 60])
def test_a_truncated_message_is_a_decode_error(cut: int) -> None:
    data, _ = encode_message(9, 4, UsmParameters(ENGINE, 5, 600, b"u"), _scoped())
    with pytest.raises(SnmpDecodeError):
        decode_message(data[:cut])
    assert peek_message_id(data[:cut]) is None


def test_a_v2c_message_is_not_v3() -> None:
    from midprobe.probes.snmp.codec import GET_REQUEST, encode_request

    data = encode_request(1, b"public", GET_REQUEST, 1, OIDS)
    assert peek_message_id(data) is None
    with pytest.raises(SnmpDecodeError, match="not v3"):
        decode_message(data)

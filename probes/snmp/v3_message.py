"""SNMPv3 messages (RFC 3412 6, RFC 3414 2.4) in BER, pure: built and read with the codec's primitives.

A message is ``SEQUENCE { msgVersion 3, msgGlobalData, msgSecurityParameters, msgData }``;
the security parameters are the USM's ``UsmSecurityParameters`` inside an OCTET STRING, and
``msgData`` a plaintext scopedPDU or an encrypted one (an OCTET STRING). Encoding returns
where the authentication parameters sit, so ``usm.sign`` can fill them in.
"""

from __future__ import annotations

from dataclasses import dataclass

from midprobe.probes.snmp.codec import (
    LazyResponse,
    SnmpDecodeError,
    decode_pdu_lazily,
    encode_integer,
    encode_octets,
    encode_sequence,
    read_integer,
    read_octets,
    read_sequence,
    read_tlv,
)

VERSION_3 = 3
SECURITY_MODEL_USM = 3
#: The largest message we accept (RFC 3417's UDP maximum), announced as msgMaxSize.
MAX_SIZE = 65507

_TAG_OCTET_STRING = 0x04
_TAG_SEQUENCE = 0x30


@dataclass(frozen=True, slots=True)
class UsmParameters:
    """``UsmSecurityParameters``; ``auth_params`` holds the digest (zeros before signing)."""

    engine_id: bytes
    boots: int
    engine_time: int
    user: bytes
    auth_params: bytes = b""
    priv_params: bytes = b""


@dataclass(frozen=True, slots=True)
class V3Message:
    """A decoded SNMPv3 message; ``scoped`` or ``encrypted`` holds the msgData."""

    msg_id: int
    max_size: int
    flags: int
    security_model: int
    usm: UsmParameters
    #: Where ``usm.auth_params`` sits in ``data`` (to verify the digest in place).
    auth_offset: int
    data: bytes
    scoped: tuple[int, int] | None
    encrypted: bytes | None


def encode_scoped_pdu(context_engine_id: bytes, context_name: bytes, pdu: bytes) -> bytes:
    """``ScopedPDU ::= SEQUENCE { contextEngineID, contextName, data }`` around an encoded PDU."""
    return encode_sequence(encode_octets(context_engine_id) + encode_octets(context_name) + pdu)


def encode_message(msg_id: int, flags: int, usm: UsmParameters, msg_data: bytes) -> tuple[bytes, int]:
    """``(message, offset of the authentication parameters)``.

    ``msg_data`` is an encoded scopedPDU or ``encode_octets(encryptedPDU)``.
    """
    global_data = encode_sequence(
        encode_integer(msg_id)
        + encode_integer(MAX_SIZE)
        + encode_octets(bytes((flags,)))
        + encode_integer(SECURITY_MODEL_USM)
    )
    head = (
        encode_octets(usm.engine_id)
        + encode_integer(usm.boots)
        + encode_integer(usm.engine_time)
        + encode_octets(usm.user)
    )
    auth = encode_octets(usm.auth_params)
    tail = encode_octets(usm.priv_params)
    security = encode_octets(encode_sequence(head + auth + tail))
    message = encode_sequence(encode_integer(VERSION_3) + global_data + security + msg_data)
    offset = len(message) - len(msg_data) - len(tail) - len(usm.auth_params)
    return message, offset


def peek_message_id(data: bytes) -> int | None:
    """The msgID of an SNMPv3 message, or ``None`` when it is not one (cheap, never raises)."""
    try:
        return _message_id(data)[0]
    except (SnmpDecodeError, IndexError):
        return None


def _message_id(data: bytes) -> tuple[int, int, int, int]:
    """``(msgID, next position, end of msgGlobalData, end of the message)``."""
    start, end = read_sequence(data, 0, len(data), "the message SEQUENCE")
    version, pos = read_integer(data, start, end, "msgVersion")
    if version != VERSION_3:
        raise SnmpDecodeError(f"SNMP version number {version} is not v3")
    pos, global_end = read_sequence(data, pos, end, "msgGlobalData")
    msg_id, pos = read_integer(data, pos, global_end, "msgID")
    return msg_id, pos, global_end, end


def decode_message(data: bytes) -> V3Message:
    """Decode an SNMPv3 message's header and USM parameters (``SnmpDecodeError`` if malformed)."""
    try:
        return _decode_message(data)
    except SnmpDecodeError:
        raise
    except (IndexError, ValueError) as error:  # defensive: never leak a bare exception
        raise SnmpDecodeError(f"malformed SNMPv3 message: {error}") from None


def _octets(data: bytes, pos: int, end: int, what: str) -> tuple[bytes, int]:
    start, stop = read_octets(data, pos, end, what)
    return data[start:stop], stop


def _decode_message(data: bytes) -> V3Message:
    msg_id, pos, global_end, end = _message_id(data)
    max_size, pos = read_integer(data, pos, global_end, "msgMaxSize")
    flag_octets, pos = _octets(data, pos, global_end, "msgFlags")
    if len(flag_octets) != 1:
        raise SnmpDecodeError(f"msgFlags of {len(flag_octets)} octets, 1 expected")
    security_model, pos = read_integer(data, pos, global_end, "msgSecurityModel")
    if pos != global_end:
        raise SnmpDecodeError("msgGlobalData holds more than four fields")
    if security_model != SECURITY_MODEL_USM:
        raise SnmpDecodeError(f"security model {security_model} is not the USM (3)")
    security_start, pos = read_octets(data, global_end, end, "msgSecurityParameters")
    usm_start, usm_end = read_sequence(data, security_start, pos, "UsmSecurityParameters")
    engine_id, at = _octets(data, usm_start, usm_end, "msgAuthoritativeEngineID")
    boots, at = read_integer(data, at, usm_end, "msgAuthoritativeEngineBoots")
    engine_time, at = read_integer(data, at, usm_end, "msgAuthoritativeEngineTime")
    user, at = _octets(data, at, usm_end, "msgUserName")
    auth_offset, auth_end = read_octets(data, at, usm_end, "msgAuthenticationParameters")
    priv_params, at = _octets(data, auth_end, usm_end, "msgPrivacyParameters")
    if at != usm_end:
        raise SnmpDecodeError("UsmSecurityParameters holds more than six fields")
    usm = UsmParameters(engine_id, boots, engine_time, user, data[auth_offset:auth_end], priv_params)
    tag, data_start, data_end = read_tlv(data, pos, end)
    if data_end != end:
        raise SnmpDecodeError("bytes after msgData")
    if tag == _TAG_SEQUENCE:
        scoped: tuple[int, int] | None = (pos, end)
        encrypted = None
    elif tag == _TAG_OCTET_STRING:
        scoped = None
        encrypted = data[data_start:data_end]
    else:
        raise SnmpDecodeError(f"msgData with tag 0x{tag:02x} is neither a scopedPDU nor encrypted")
    return V3Message(
        msg_id, max_size, flag_octets[0], security_model, usm, auth_offset, data, scoped, encrypted
    )


@dataclass(frozen=True, slots=True)
class ScopedPdu:
    context_engine_id: bytes
    context_name: bytes
    pdu: LazyResponse


def decode_scoped_pdu(data: bytes, pos: int = 0, end: int | None = None) -> ScopedPdu:
    """The scopedPDU at ``pos``; bytes after it (DES padding) are ignored."""
    try:
        start, stop = read_sequence(data, pos, len(data) if end is None else end, "the scopedPDU")
        engine_id, at = _octets(data, start, stop, "contextEngineID")
        name, at = _octets(data, at, stop, "contextName")
        pdu = decode_pdu_lazily(data, at, stop, VERSION_3)
    except SnmpDecodeError:
        raise
    except (IndexError, ValueError) as error:
        raise SnmpDecodeError(f"malformed scopedPDU: {error}") from None
    return ScopedPdu(engine_id, name, pdu)

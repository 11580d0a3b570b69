"""SNMP data as plain values: OIDs as int tuples, typed values with the ECC type names.

Everything above the wire (walks, the encoder, the classifier) works on these, whichever
backend (the native v1/v2c codec or pysnmp) produced them.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import NamedTuple

Oid = tuple[int, ...]

#: The SNMP internet subtree; ``oid_spec_list`` OIDs that do not start with it get it prefixed.
INTERNET: Oid = (1, 3, 6, 1)


class SnmpType(StrEnum):
    """A value's SMI type, named as the ECC payload names it (the ``type`` attribute)."""

    INTEGER = "SnmpInt32"
    OCTET_STRING = "SnmpOctetString"
    NULL = "SnmpNull"
    OBJECT_ID = "SnmpObjectId"
    IP_ADDRESS = "SnmpIpAddress"
    COUNTER32 = "SnmpCounter32"
    GAUGE32 = "SnmpGauge32"
    TIME_TICKS = "SnmpTimeTicks"
    OPAQUE = "SnmpOpaque"
    COUNTER64 = "SnmpCounter64"
    NO_SUCH_OBJECT = "SnmpNoSuchObject"
    NO_SUCH_INSTANCE = "SnmpNoSuchInstance"
    END_OF_MIB_VIEW = "SnmpEndOfMibView"


#: The three SNMPv2 exception values: a varbind that carries one holds no data.
EXCEPTION_TYPES = frozenset({SnmpType.NO_SUCH_OBJECT, SnmpType.NO_SUCH_INSTANCE, SnmpType.END_OF_MIB_VIEW})
_INTEGER_TYPES = frozenset(
    {SnmpType.INTEGER, SnmpType.COUNTER32, SnmpType.GAUGE32, SnmpType.TIME_TICKS, SnmpType.COUNTER64}
)


class SnmpValue(NamedTuple):
    """One typed value: ``int`` for the numeric types, ``bytes`` for strings, addresses and
    opaque data, an ``Oid`` for object identifiers, ``None`` for NULL and the exceptions.

    Immutable; a named tuple rather than a dataclass because a walk builds one per varbind
    and a tuple is the cheapest immutable object Python makes.
    """

    type: SnmpType
    value: int | bytes | Oid | None

    @property
    def is_exception(self) -> bool:
        return self.type in EXCEPTION_TYPES

    def as_int(self) -> int | None:
        return self.value if isinstance(self.value, int) and self.type in _INTEGER_TYPES else None

    def as_text(self) -> str:
        """A readable rendering (binary strings as colon hex); what filters compare against."""
        return render(self)[0]


VarBind = tuple[Oid, SnmpValue]

NULL = SnmpValue(SnmpType.NULL, None)
END_OF_MIB_VIEW = SnmpValue(SnmpType.END_OF_MIB_VIEW, None)


def format_oid(oid: Oid, *, leading_dot: bool = False) -> str:
    text = ".".join(map(str, oid))
    return "." + text if leading_dot else text


def parse_numeric_oid(text: str) -> Oid:
    """``"1.3.6.1"`` or ``".1.3.6.1"`` -> ``(1, 3, 6, 1)``; ``ValueError`` when not numeric."""
    parts = text.strip().removeprefix(".").split(".")
    if not parts or any(not part.isdigit() or not part.isascii() for part in parts):
        raise ValueError(f"{text!r} is not a numeric OID")
    return tuple(int(part) for part in parts)


def is_prefix(prefix: Oid, oid: Oid) -> bool:
    return oid[: len(prefix)] == prefix


def render(value: SnmpValue) -> tuple[str, bool]:
    """``(text, is_hex)``: octet strings that are not clean text come back as colon hex.

    Clean text is UTF-8 without control characters other than tab, CR and LF (so that it
    can live in XML 1.0); anything else is shown as ``0a:1b:...`` and flagged. (An XML
    parser turns a CR LF in text into LF, as XML requires.)
    """
    raw = value.value
    kind = value.type
    if kind is SnmpType.OCTET_STRING:
        assert isinstance(raw, bytes)
        text = text_or_none(raw)
        return (text, False) if text is not None else (hex_bytes(raw), True)
    if kind is SnmpType.OBJECT_ID:
        assert isinstance(raw, tuple)
        return format_oid(raw, leading_dot=True), False
    if kind is SnmpType.IP_ADDRESS:
        assert isinstance(raw, bytes)
        if len(raw) == 4:
            return str(ipaddress.IPv4Address(raw)), False
        return hex_bytes(raw), True
    if kind is SnmpType.OPAQUE:
        assert isinstance(raw, bytes)
        return hex_bytes(raw), True
    if isinstance(raw, int):
        return str(raw), False
    return "", False


def hex_bytes(raw: bytes) -> str:
    return raw.hex(":")


_CONTROL = frozenset(range(0x20)) - {0x09, 0x0A, 0x0D} | {0x7F}


def text_or_none(raw: bytes) -> str | None:
    """The string if ``raw`` is clean UTF-8 text, else ``None`` (so a NUL means hex: lossless)."""
    if not raw:
        return ""
    if raw.isascii():
        if not _CONTROL.isdisjoint(raw):
            return None
        return raw.decode("ascii")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(
        ord(char) in _CONTROL or 0xFFFE <= ord(char) <= 0xFFFF or 0xD800 <= ord(char) < 0xE000
        for char in text
    ):
        return None
    return text

"""Recorded walks as varbinds (pure): net-snmp's ``snmpwalk -On`` text and snmpsim's ``.snmprec``.

Understands the value forms net-snmp prints without MIBs: ``STRING: "..."`` (quotes and
backslashes escaped, may span lines), ``Hex-STRING: 0A 1B ...`` (may span lines), ``""``,
``OID:``, ``INTEGER:``, ``Counter32:``, ``Gauge32:``, ``Counter64:``, ``Timeticks: (n) ...``,
``IpAddress:``, ``Opaque:`` and the ``No Such ...`` / ``No more variables`` markers.
``parse_snmprec`` reads snmpsim's ``OID|TAG|VALUE`` lines (``TAG`` the BER tag, ``x`` for hex).
"""

from __future__ import annotations

import ipaddress
import re

from midprobe.probes.snmp.values import Oid, SnmpType, SnmpValue, VarBind, parse_numeric_oid

_LINE = re.compile(r"^(?P<oid>\.?[0-9][0-9.]*) = (?P<rest>.*)$")
_NUMBER_TYPES = {
    "INTEGER": SnmpType.INTEGER,
    "Counter32": SnmpType.COUNTER32,
    "Gauge32": SnmpType.GAUGE32,
    "Counter64": SnmpType.COUNTER64,
    "Unsigned32": SnmpType.GAUGE32,
}
_END = "No more variables left in this MIB View"


class WalkFileError(ValueError):
    """A line that is not net-snmp walk output; says which line."""


def _unquote(text: str) -> bytes:
    out: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            out.append(char)
    return "".join(out).encode("utf-8")


def _value(kind: str, body: str, number: int) -> SnmpValue:
    body = body.strip()
    if kind == "STRING":
        if len(body) < 2 or not body.startswith('"') or not body.endswith('"'):
            raise WalkFileError(f"line {number}: a STRING value is not quoted")
        return SnmpValue(SnmpType.OCTET_STRING, _unquote(body[1:-1]))
    if kind in ("Hex-STRING", "Opaque"):
        raw = bytes.fromhex(body.replace(" ", "").replace("\n", ""))
        return SnmpValue(SnmpType.OCTET_STRING if kind == "Hex-STRING" else SnmpType.OPAQUE, raw)
    if kind == "OID":
        return SnmpValue(SnmpType.OBJECT_ID, parse_numeric_oid(body))
    if kind == "Timeticks":
        match = re.match(r"^\((\d+)\)", body)
        if match is None:
            raise WalkFileError(f"line {number}: Timeticks without (ticks)")
        return SnmpValue(SnmpType.TIME_TICKS, int(match[1]))
    if kind in ("IpAddress", "Network Address"):
        return SnmpValue(SnmpType.IP_ADDRESS, ipaddress.IPv4Address(body).packed)
    if kind in _NUMBER_TYPES:
        match = re.match(r"^-?\d+", body.split("(")[-1] if "(" in body else body)
        if match is None:
            raise WalkFileError(f"line {number}: {kind} without a number")
        return SnmpValue(_NUMBER_TYPES[kind], int(match[0]))
    raise WalkFileError(f"line {number}: unknown value type {kind!r}")


def parse_walk(text: str) -> tuple[VarBind, ...]:
    """The varbinds of a walk, in the order printed."""
    found: list[VarBind] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        number = index + 1
        line = lines[index]
        index += 1
        if not line.strip() or line.startswith(_END):
            continue
        match = _LINE.match(line)
        if match is None:
            raise WalkFileError(f"line {number}: not 'OID = TYPE: value': {line[:60]!r}")
        oid: Oid = parse_numeric_oid(match["oid"])
        rest = match["rest"]
        if rest == '""':
            found.append((oid, SnmpValue(SnmpType.OCTET_STRING, b"")))
            continue
        if rest.startswith("No Such Object"):
            found.append((oid, SnmpValue(SnmpType.NO_SUCH_OBJECT, None)))
            continue
        if rest.startswith("No Such Instance"):
            found.append((oid, SnmpValue(SnmpType.NO_SUCH_INSTANCE, None)))
            continue
        if rest.startswith(_END):
            continue
        kind, separator, body = rest.partition(":")
        if not separator:
            raise WalkFileError(f"line {number}: no 'TYPE:' in {rest[:60]!r}")
        body = body.removeprefix(" ")
        if kind == "STRING":
            # A quoted string runs to its closing (unescaped) quote, across lines if need be.
            while not _closed(body) and index < len(lines):
                body += "\n" + lines[index]
                index += 1
        elif kind == "Hex-STRING":
            while index < len(lines) and re.fullmatch(r"([0-9A-Fa-f]{2} ?)+", lines[index].strip() or "x"):
                body += " " + lines[index]
                index += 1
        found.append((oid, _value(kind, body, number)))
    return tuple(found)


def _closed(body: str) -> bool:
    text = body.strip()
    if len(text) < 2 or not text.startswith('"') or not text.endswith('"'):
        return False
    backslashes = len(text[:-1]) - len(text[:-1].rstrip("\\"))
    return backslashes % 2 == 0


#: snmpsim's tags (the BER tag numbers) for the types a recording holds.
_SNMPREC_TYPES = {
    2: SnmpType.INTEGER,
    4: SnmpType.OCTET_STRING,
    5: SnmpType.NULL,
    6: SnmpType.OBJECT_ID,
    64: SnmpType.IP_ADDRESS,
    65: SnmpType.COUNTER32,
    66: SnmpType.GAUGE32,
    67: SnmpType.TIME_TICKS,
    68: SnmpType.OPAQUE,
    70: SnmpType.COUNTER64,
}


def _snmprec_value(tag: str, body: str, number: int) -> SnmpValue:
    hexed = tag.endswith("x")
    try:
        kind = _SNMPREC_TYPES[int(tag.removesuffix("x"))]
    except (KeyError, ValueError):
        raise WalkFileError(f"line {number}: unknown snmprec tag {tag!r}") from None
    try:
        if kind is SnmpType.NULL:
            return SnmpValue(kind, None)
        if kind is SnmpType.OBJECT_ID:
            return SnmpValue(kind, parse_numeric_oid(body))
        if kind in (SnmpType.OCTET_STRING, SnmpType.OPAQUE):
            return SnmpValue(kind, bytes.fromhex(body) if hexed else body.encode("utf-8"))
        if kind is SnmpType.IP_ADDRESS:
            return SnmpValue(kind, bytes.fromhex(body) if hexed else ipaddress.IPv4Address(body).packed)
        return SnmpValue(kind, int(body))
    except ValueError:
        raise WalkFileError(f"line {number}: {body[:40]!r} is not a {kind.value} value") from None


def parse_snmprec(text: str) -> tuple[VarBind, ...]:
    """The varbinds of an snmpsim recording (``OID|TAG|VALUE`` per line), in the order written.

    Lines whose tag names a variation module (``67:numeric``) are left out: snmpsim computes them.
    """
    found: list[VarBind] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        oid_text, _, rest = line.partition("|")
        tag, separator, body = rest.partition("|")
        if not separator:
            raise WalkFileError(f"line {number}: not 'OID|TAG|VALUE': {line[:60]!r}")
        if ":" in tag:  # TAG:MODULE: a value snmpsim computes (counters that move), not a recorded one
            continue
        try:
            oid = parse_numeric_oid(oid_text)
        except ValueError:
            raise WalkFileError(f"line {number}: {oid_text[:40]!r} is not an OID") from None
        found.append((oid, _snmprec_value(tag, body, number)))
    return tuple(found)

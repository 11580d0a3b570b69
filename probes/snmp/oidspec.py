"""The ``oid_spec_list`` parameter: one spec a line, parsed without I/O.

Grammar (ServiceNow's SNMP probe parameters)::

    walk  <OID>                       every object under <OID>
    table <OID> <child>[,<child>...]  the table's rows, only the given columns
    child  := name | entry.name | column-number, optionally with a filter
    filter := "(=value)" | "(!=value)" | "(#value)"   (# = contains)
    // starts a comment; blank lines are skipped.

An OID is numeric (``1.3.6.1.2.1.1``), named (``sysDescr``, ``ifTable``), or dotted names
from a known node (``iso.org.dod.internet.mgmt.mib-2.system``, ``interfaces.2``). A numeric
OID that does not start with ``1.3.6.1`` gets ``1.3.6.1.`` prefixed (so ``2.1.1`` is
``system``); a leading dot (``.1.3.6``) means "absolute, as written". When more than one
child carries a filter, a row is kept if any filter matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, cast

from midprobe.capabilities.errors import ProbeParameterError
from midprobe.probes.snmp.names import NodeKind, node_at, node_named
from midprobe.probes.snmp.values import INTERNET, Oid, SnmpType, SnmpValue, format_oid

PARAMETER = "oid_spec_list"
MAX_ARC = 0xFFFFFFFF
MAX_OID_LENGTH = 128
MAX_SPECS = 1000

FilterOperator = Literal["=", "!=", "#"]
_CHILD = re.compile(r"^(?P<name>[^()\s]+)\s*(?:\(\s*(?P<op>!=|=|#)(?P<value>[^)]*)\)\s*)?$")


@dataclass(frozen=True)
class ChildFilter:
    """``(=x)``, ``(!=x)`` or ``(#x)`` on a table column's value (compared as text)."""

    operator: FilterOperator
    value: str

    def matches(self, value: SnmpValue) -> bool:
        text = value.as_text()
        candidates = {text}
        if value.type is SnmpType.OBJECT_ID:  # accept OIDs written with or without the leading dot
            candidates.add(text.removeprefix("."))
        if self.operator == "=":
            return self.value in candidates
        if self.operator == "!=":
            return self.value not in candidates
        return any(self.value in candidate for candidate in candidates)

    def __str__(self) -> str:
        return f"({self.operator}{self.value})"


@dataclass(frozen=True)
class TableChild:
    """One requested column of a table: its name (when known), OID and optional filter."""

    name: str | None
    oid: Oid
    filter: ChildFilter | None = None


@dataclass(frozen=True)
class WalkSpec:
    line: int
    oid: Oid
    source: str  # the line as written (without its comment), for messages and echoes


@dataclass(frozen=True)
class TableSpec:
    line: int
    oid: Oid
    children: tuple[TableChild, ...]
    source: str

    @property
    def entry(self) -> Oid:
        return (*self.oid, 1)

    @property
    def filters(self) -> tuple[TableChild, ...]:
        return tuple(child for child in self.children if child.filter is not None)


OidSpec = WalkSpec | TableSpec


def _fail(line: int, message: str) -> ProbeParameterError:
    return ProbeParameterError(f"line {line}: {message}", parameter=PARAMETER)


def parse_oid_spec_list(text: str) -> tuple[OidSpec, ...]:
    """Parse the whole parameter; ``ProbeParameterError`` names the first bad line."""
    specs: list[OidSpec] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        specs.append(parse_spec_line(line, number))
        if len(specs) > MAX_SPECS:
            raise _fail(number, f"more than {MAX_SPECS} specs")
    if not specs:
        raise ProbeParameterError("holds no walk or table spec", parameter=PARAMETER)
    return tuple(specs)


def parse_spec_line(line: str, number: int = 1) -> OidSpec:
    """One spec line (comments already removed)."""
    parts = line.split(None, 2)
    keyword = parts[0].lower()
    if keyword == "walk":
        if len(parts) != 2:
            raise _fail(number, f"'walk' takes exactly one OID: {line!r}")
        return WalkSpec(number, resolve_oid(parts[1], number), line)
    if keyword == "table":
        if len(parts) != 3:
            raise _fail(number, f"'table' takes an OID and a comma-separated list of children: {line!r}")
        table = resolve_oid(parts[1], number)
        named = node_at(table)
        if named is not None and named.kind is NodeKind.ENTRY:  # "table ifEntry ..." means ifTable
            table = table[:-1]
        children = tuple(_parse_child(child, table, number) for child in _split_children(parts[2], number))
        if len({child.oid for child in children}) != len(children):
            raise _fail(number, "a child is listed twice")
        return TableSpec(number, table, children, line)
    raise _fail(number, f"a spec starts with 'walk' or 'table', not {parts[0]!r}")


def _split_children(text: str, number: int) -> list[str]:
    """Split on commas outside parentheses (a filter value may hold a comma)."""
    children: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
            if depth > 1:
                raise _fail(number, "nested parentheses in a child filter")
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise _fail(number, "a ')' without its '('")
        if char == "," and depth == 0:
            children.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if depth:
        raise _fail(number, "a child filter is missing its ')'")
    children.append("".join(current).strip())
    if any(not child for child in children):
        raise _fail(number, f"an empty child in {text!r}")
    return children


def _parse_child(text: str, table: Oid, number: int) -> TableChild:
    match = _CHILD.match(text)
    if match is None:
        raise _fail(number, f"{text!r} is not a child name with an optional (=x), (!=x) or (#x) filter")
    name = match["name"]
    operator = match["op"]
    child_filter = ChildFilter(cast(FilterOperator, operator), match["value"].strip()) if operator else None
    entry = (*table, 1)
    table_node = node_at(table)
    entry_node = node_at(entry)
    parts = name.split(".")
    # "ifEntry.ifIndex" -> "ifIndex"; "1.2" (entry.column numbers) -> "2"
    if len(parts) == 2 and (parts[0] == "1" or (entry_node is not None and parts[0] == entry_node.name)):
        parts = parts[1:]
    if len(parts) != 1:
        raise _fail(number, f"child {name!r} is not a column name or number of the table")
    token = parts[0]
    if token.isdigit() and token.isascii():
        column = int(token)
        if not 0 < column <= MAX_ARC:
            raise _fail(number, f"column number {token} is out of range")
        oid = (*entry, column)
        known = node_at(oid)
        return TableChild(known.name if known else None, oid, child_filter)
    node = node_named(token)
    table_name = table_node.name if table_node else format_oid(table)
    if node is None:
        raise _fail(number, f"unknown column name {token!r} (use its column number for {table_name})")
    if node.kind is not NodeKind.COLUMN or node.oid[:-1] != entry:
        raise _fail(number, f"{token!r} is not a column of {table_name}")
    return TableChild(node.name, node.oid, child_filter)


def resolve_oid(text: str, number: int = 1) -> Oid:
    """A numeric, named or mixed OID as an int tuple (see the module docstring)."""
    written = text
    absolute = text.startswith(".")
    parts = text.removeprefix(".").split(".")
    if not text or any(not part for part in parts):
        raise _fail(number, f"{written!r} is not an OID (empty component)")
    oid: list[int] = []
    named = False
    for index, part in enumerate(parts):
        if part.isdigit() and part.isascii():
            arc = int(part)
            if arc > MAX_ARC:
                raise _fail(number, f"{written!r}: component {part} is larger than 2^32-1")
            oid.append(arc)
            continue
        node = node_named(part)
        if node is None:
            raise _fail(number, f"{written!r}: unknown name {part!r} (give the OID in numbers)")
        if index == 0:
            oid = list(node.oid)
            named = True
        elif node.oid[: len(oid)] == tuple(oid) and len(node.oid) > len(oid):
            oid = list(node.oid)
        else:
            raise _fail(number, f"{written!r}: {part!r} is not under {format_oid(tuple(oid))}")
    result = tuple(oid)
    if not named and not absolute and result[: len(INTERNET)] != INTERNET:
        result = INTERNET + result
    if len(result) < 2 or result[0] > 2 or (result[0] < 2 and result[1] >= 40):
        raise _fail(number, f"{written!r} is not a valid OID (first arcs {format_oid(result[:2])})")
    if len(result) > MAX_OID_LENGTH:
        raise _fail(number, f"{written!r} has more than {MAX_OID_LENGTH} components")
    return result


def format_spec(spec: OidSpec) -> str:
    """A canonical spec line (numeric OIDs with a leading dot, named children where known).

    The dot keeps an OID outside 1.3.6.1 (LLDP-MIB's 1.0.8802...) from reading back as internet-relative.
    """
    if isinstance(spec, WalkSpec):
        return f"walk {format_oid(spec.oid, leading_dot=True)}"
    children = ",".join(
        f"{child.name or child.oid[-1]}{child.filter if child.filter else ''}" for child in spec.children
    )
    return f"table {format_oid(spec.oid, leading_dot=True)} {children}"

"""SNMP varbinds as the ECC typed XML, and back (pure).

Shape (docs/ecc-reference.md section 4; the grouping is midprobe's choice, see docs/snmp.md)::

    <system oid="1.3.6.1.2.1.1">
      <sysDescr oid="1.3.6.1.2.1.1.1" type="SnmpOctetString">Linux lab1 6.1.0</sysDescr>
      <sysObjectID oid="1.3.6.1.2.1.1.2" type="SnmpObjectId">.1.3.6.1.4.1.8072.3.2.10</sysObjectID>
    </system>
    <interfaces oid="1.3.6.1.2.1.2">
      <ifTable oid="1.3.6.1.2.1.2.2">
        <ifEntry instance=".8"><ifIndex type="SnmpInt32">8</ifIndex>...</ifEntry>
      </ifTable>
    </interfaces>

Groups, tables and scalars are named from the small table in ``names.py``; rows are
sorted by instance, columns by number. An object the table does not name becomes
``<object oid="full.oid" type=...>`` inside the nearest named group (or ``column="n"``
inside a row of a named table). Octet strings that are not clean text carry
``encoding="hex"`` and colon-separated hex.
"""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field

from midprobe.capabilities.errors import PayloadError
from midprobe.probes.snmp.names import BY_NAME, Node, NodeKind, nearest_node, node_at, parent_node
from midprobe.probes.snmp.values import (
    Oid,
    SnmpType,
    SnmpValue,
    VarBind,
    format_oid,
    parse_numeric_oid,
    render,
)

HEX = "hex"
OBJECT = "object"


@dataclass
class _Box:
    element: ET.Element | None
    children: list[tuple[Oid, ET.Element | _Box]] = field(default_factory=list)

    def finish(self) -> list[ET.Element]:
        elements: list[ET.Element] = []
        for _, child in sorted(self.children, key=lambda pair: pair[0]):
            if isinstance(child, _Box):
                assert child.element is not None
                child.element.extend(child.finish())
                elements.append(child.element)
            else:
                elements.append(child)
        return elements


def value_element(tag: str, value: SnmpValue, **attributes: str) -> ET.Element:
    """``<tag ... type="SnmpX">text</tag>`` for one value (attributes first, then ``type``)."""
    text, is_hex = render(value)
    element = ET.Element(tag, attributes)
    element.set("type", value.type.value)
    if is_hex:
        element.set("encoding", HEX)
    if text:
        element.text = text
    return element


class _Tree:
    def __init__(self) -> None:
        self.root = _Box(None)
        self.boxes: dict[tuple[object, ...], _Box] = {}

    def _group_box(self, node: Node | None) -> _Box:
        """The box of the nearest GROUP at or above ``node`` (the root when none)."""
        chain: list[Node] = []
        current = node
        while current is not None:
            if current.kind is NodeKind.GROUP:
                chain.append(current)
            current = parent_node(current)
        box = self.root
        for group in reversed(chain):
            key = ("group", group.oid)
            child = self.boxes.get(key)
            if child is None:
                child = _Box(ET.Element(group.name, oid=format_oid(group.oid)))
                self.boxes[key] = child
                box.children.append((group.oid, child))
            box = child
        return box

    def _row_box(self, table: Node, instance: Oid) -> _Box:
        table_key = ("table", table.oid)
        table_box = self.boxes.get(table_key)
        if table_box is None:
            table_box = _Box(ET.Element(table.name, oid=format_oid(table.oid)))
            self.boxes[table_key] = table_box
            self._group_box(parent_node(table)).children.append((table.oid, table_box))
        row_key = ("row", table.oid, instance)
        row_box = self.boxes.get(row_key)
        if row_box is None:
            entry = node_at((*table.oid, 1))
            entry_name = entry.name if entry is not None else "entry"
            row_box = _Box(ET.Element(entry_name, instance=format_oid(instance, leading_dot=True)))
            self.boxes[row_key] = row_box
            table_box.children.append((instance, row_box))
        return row_box

    def add(self, oid: Oid, value: SnmpValue, node: Node | None) -> None:
        if node is not None and node.kind is NodeKind.COLUMN and len(oid) > len(node.oid):
            table = parent_node(parent_node(node) or node)
            if table is not None and table.kind is NodeKind.TABLE:
                row = self._row_box(table, oid[len(node.oid) :])
                row.children.append(((node.oid[-1],), value_element(node.name, value)))
                return
        if node is not None and node.kind is NodeKind.ENTRY and len(oid) > len(node.oid) + 1:
            table = parent_node(node)
            if table is not None and table.kind is NodeKind.TABLE:
                column = oid[len(node.oid)]
                row = self._row_box(table, oid[len(node.oid) + 1 :])
                row.children.append(((column,), value_element(OBJECT, value, column=str(column))))
                return
        if node is not None and node.kind is NodeKind.SCALAR and len(oid) > len(node.oid):
            instance = oid[len(node.oid) :]
            attributes = {"oid": format_oid(node.oid)}
            if instance != (0,):
                attributes["instance"] = format_oid(instance, leading_dot=True)
            self._group_box(node).children.append((oid, value_element(node.name, value, **attributes)))
            return
        self._group_box(node).children.append((oid, value_element(OBJECT, value, oid=format_oid(oid))))


def encode_varbinds(varbinds: Iterable[VarBind]) -> list[ET.Element]:
    """The typed XML elements for ``varbinds`` (duplicates by OID keep the last value)."""
    unique = dict(varbinds)
    tree = _Tree()
    last_prefix: Oid = ()
    last_node: Node | None = None
    node: Node | None
    for oid in sorted(unique):
        # Consecutive OIDs of a walk share their column: reuse the last lookup when it fits.
        if last_node is not None and oid[: len(last_prefix)] == last_prefix and len(oid) > len(last_prefix):
            node = last_node
        else:
            node = nearest_node(oid)
            last_node = node if node is not None and node.kind in (NodeKind.COLUMN, NodeKind.SCALAR) else None
            last_prefix = node.oid if node is not None else ()
        tree.add(oid, unique[oid], node)
    return tree.root.finish()


# --- decoding (tests, and reading stored payloads) ------------------------------------------------


def _value(element: ET.Element) -> SnmpValue:
    kind_name = element.get("type", "")
    try:
        kind = SnmpType(kind_name)
    except ValueError:
        raise PayloadError(f"<{element.tag}> has an unknown type {kind_name!r}") from None
    text = element.text or ""
    try:
        if element.get("encoding") == HEX:
            raw = bytes.fromhex(text.replace(":", ""))
            return SnmpValue(kind, raw)
        if kind is SnmpType.OCTET_STRING:
            return SnmpValue(kind, text.encode("utf-8"))
        if kind is SnmpType.OBJECT_ID:
            return SnmpValue(kind, parse_numeric_oid(text))
        if kind is SnmpType.IP_ADDRESS:
            return SnmpValue(kind, ipaddress.IPv4Address(text).packed)
        if kind in (
            SnmpType.NULL,
            SnmpType.NO_SUCH_OBJECT,
            SnmpType.NO_SUCH_INSTANCE,
            SnmpType.END_OF_MIB_VIEW,
        ):
            return SnmpValue(kind, None)
        return SnmpValue(kind, int(text))
    except ValueError as error:
        raise PayloadError(f"<{element.tag}> holds a bad {kind.value} value: {error}") from None


def _oid_attribute(element: ET.Element) -> Oid:
    try:
        return parse_numeric_oid(element.get("oid", ""))
    except ValueError:
        raise PayloadError(f"<{element.tag}> needs a numeric oid attribute") from None


def decode_varbinds(elements: Iterable[ET.Element]) -> tuple[VarBind, ...]:
    """The varbinds held by elements ``encode_varbinds`` made, in OID order."""
    found: dict[Oid, SnmpValue] = {}

    def visit(element: ET.Element, table: Oid | None) -> None:
        if element.get("type") is not None and table is None:
            # A scalar or an object: its oid attribute (plus the instance) names it.
            base = _oid_attribute(element)
            if element.tag == OBJECT:
                found[base] = _value(element)
            else:
                found[base + parse_numeric_oid(element.get("instance", ".0"))] = _value(element)
            return
        if element.get("instance") is not None and table is not None:  # a row
            instance = parse_numeric_oid(element.get("instance", ""))
            for cell in element:
                if cell.tag == OBJECT:
                    column = int(cell.get("column", "0"))
                else:
                    node = BY_NAME.get(cell.tag)
                    if node is None or node.kind is not NodeKind.COLUMN:
                        raise PayloadError(f"<{cell.tag}> is not a known table column")
                    column = node.oid[-1]
                found[(*table, 1, column, *instance)] = _value(cell)
            return
        node = BY_NAME.get(element.tag)
        inner_table = _oid_attribute(element) if node is not None and node.kind is NodeKind.TABLE else None
        if node is None or node.kind not in (NodeKind.GROUP, NodeKind.TABLE):
            raise PayloadError(f"<{element.tag}> is neither a value, a row, a table nor a group")
        for child in element:
            visit(child, inner_table)

    for element in elements:
        visit(element, None)
    return tuple(sorted(found.items()))

"""The oid_spec_list grammar: walk/table lines, names, implied 1.3.6.1, filters, comments, errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from midprobe.capabilities.errors import ProbeParameterError
from midprobe.probes.snmp.names import BY_NAME, NodeKind
from midprobe.probes.snmp.oidspec import (
    ChildFilter,
    TableSpec,
    WalkSpec,
    format_spec,
    parse_oid_spec_list,
    resolve_oid,
)
from midprobe.probes.snmp.values import SnmpType, SnmpValue

IF_TABLE = (1, 3, 6, 1, 2, 1, 2, 2)


def test_walk_and_table_lines_with_comments_and_blank_lines() -> None:
    specs = parse_oid_spec_list(
        """
        // what a classifier asks for
        walk 1.3.6.1.2.1.1          // the system group
        table 1.3.6.1.2.1.2.2 ifIndex,ifDescr,ifType

        WALK sysObjectID
        """
    )
    assert [type(spec) for spec in specs] == [WalkSpec, TableSpec, WalkSpec]
    walk, table, named = specs
    assert walk.oid == (1, 3, 6, 1, 2, 1, 1)
    assert walk.line == 3
    assert isinstance(table, TableSpec)
    assert table.oid == IF_TABLE
    assert [child.name for child in table.children] == ["ifIndex", "ifDescr", "ifType"]
    assert [child.oid for child in table.children] == [(*IF_TABLE, 1, n) for n in (1, 2, 3)]
    assert named.oid == (1, 3, 6, 1, 2, 1, 1, 2)


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2.1.1", (1, 3, 6, 1, 2, 1, 1)),  # 1.3.6.1. implied
        ("1.3.6.1.2.1.1", (1, 3, 6, 1, 2, 1, 1)),
        ("4.1.9", (1, 3, 6, 1, 4, 1, 9)),
        ("1.3.6", (1, 3, 6, 1, 1, 3, 6)),  # does not start with 1.3.6.1: prefixed, as documented
        (".1.3.6", (1, 3, 6)),  # a leading dot means "as written"
        ("iso.org.dod.internet.mgmt.mib-2.interfaces.ifTable", IF_TABLE),
        ("mib-2.system", (1, 3, 6, 1, 2, 1, 1)),
        ("interfaces.2", IF_TABLE),
        ("ifTable", IF_TABLE),
        ("sysDescr.0", (1, 3, 6, 1, 2, 1, 1, 1, 0)),
        ("enterprises.9.1", (1, 3, 6, 1, 4, 1, 9, 1)),
        ("internet.2.1.1", (1, 3, 6, 1, 2, 1, 1)),
    ],
)
def test_oid_forms(written: str, expected: tuple[int, ...]) -> None:
    assert resolve_oid(written) == expected


def test_children_with_entry_prefix_numbers_and_filters() -> None:
    (spec,) = parse_oid_spec_list(
        "table ifTable ifEntry.ifIndex, 2 ,ifType(=6),ifAdminStatus(!=2),ifPhysAddress(#uplink, core)"
    )
    assert isinstance(spec, TableSpec)
    assert [child.name for child in spec.children] == [
        "ifIndex",
        "ifDescr",
        "ifType",
        "ifAdminStatus",
        "ifPhysAddress",
    ]
    assert spec.children[2].filter == ChildFilter("=", "6")
    assert spec.children[3].filter == ChildFilter("!=", "2")
    # a comma inside a filter stays in its value
    assert spec.children[4].filter == ChildFilter("#", "uplink, core")
    assert [child.name for child in spec.filters] == [spec.children[i].name for i in (2, 3, 4)]


def test_table_named_by_its_entry_means_the_table() -> None:
    (spec,) = parse_oid_spec_list("table ifEntry ifIndex")
    assert spec.oid == IF_TABLE


def test_unknown_table_takes_column_numbers() -> None:
    (spec,) = parse_oid_spec_list("table 4.1.9.9.46.1.3.1 1.4,6(=2)")  # CISCO-VTP-MIB: not in the table
    assert isinstance(spec, TableSpec)
    assert spec.oid == (1, 3, 6, 1, 4, 1, 9, 9, 46, 1, 3, 1)
    assert [child.oid[-1] for child in spec.children] == [4, 6]
    assert [child.name for child in spec.children] == [None, None]
    (known,) = parse_oid_spec_list("table 4.1.9.9.23.1.2.1 1.4,6")  # CISCO-CDP-MIB's cache is named
    assert isinstance(known, TableSpec)
    assert [child.name for child in known.children] == ["cdpCacheAddress", "cdpCacheDeviceId"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("walk", "line 1: 'walk' takes exactly one OID"),
        ("walk 1.3 1.4", "line 1: 'walk' takes exactly one OID"),
        ("get sysDescr", "line 1: a spec starts with 'walk' or 'table'"),
        ("\n\nwalk nosuchthing", "line 3: 'nosuchthing': unknown name"),
        ("walk 1..3", "line 1: '1..3' is not an OID"),
        ("walk .3.1", "first arcs 3.1"),
        ("walk 1.3.6.1.99999999999", "larger than 2^32-1"),
        ("table ifTable", "line 1: 'table' takes an OID and a comma-separated list"),
        ("table ifTable ifName", "line 1: 'ifName' is not a column of ifTable"),
        ("table ifTable ifIndex,,ifDescr", "an empty child"),
        ("table ifTable ifType(=6", "missing its ')'"),
        ("table ifTable ifType(<6)", "not a child name with an optional"),
        ("table ifTable ifIndex,1", "a child is listed twice"),
        ("table ifTable frobnicate", "unknown column name 'frobnicate'"),
        ("walk system.ifTable", "'ifTable' is not under 1.3.6.1.2.1.1"),
        ("// only a comment\n   \n", "holds no walk or table spec"),
    ],
)
def test_bad_lines_are_named(text: str, fragment: str) -> None:
    with pytest.raises(ProbeParameterError) as caught:
        parse_oid_spec_list(text)
    assert fragment in str(caught.value)
    assert str(caught.value).startswith("parameter 'oid_spec_list'")


@pytest.mark.parametrize(
    ("operator", "wanted", "value", "expected"),
    [
        ("=", "6", SnmpValue(SnmpType.INTEGER, 6), True),
        ("=", "6", SnmpValue(SnmpType.INTEGER, 7), False),
        ("!=", "6", SnmpValue(SnmpType.INTEGER, 7), True),
        ("#", "Gi", SnmpValue(SnmpType.OCTET_STRING, b"Gi1-0-1"), True),
        ("#", "Te", SnmpValue(SnmpType.OCTET_STRING, b"Gi1-0-1"), False),
        ("=", "1.3.6.1.4.1.9", SnmpValue(SnmpType.OBJECT_ID, (1, 3, 6, 1, 4, 1, 9)), True),
        ("=", ".1.3.6.1.4.1.9", SnmpValue(SnmpType.OBJECT_ID, (1, 3, 6, 1, 4, 1, 9)), True),
        ("=", "aa:bb", SnmpValue(SnmpType.OCTET_STRING, b"\xaa\xbb"), True),
    ],
)
def test_filter_matching(operator: str, wanted: str, value: SnmpValue, expected: bool) -> None:
    assert ChildFilter(operator, wanted).matches(value) is expected  # type: ignore[arg-type]


_COLUMN_NODES = [node for node in BY_NAME.values() if node.kind is NodeKind.COLUMN]
_GROUPS = [
    node for node in BY_NAME.values() if node.kind in (NodeKind.GROUP, NodeKind.SCALAR, NodeKind.TABLE)
]
_filters = st.one_of(
    st.none(),
    st.builds(
        ChildFilter,
        st.sampled_from(["=", "!=", "#"]),
        st.text(
            alphabet=st.characters(
                whitelist_categories=("L", "N", "P", "S", "Zs"), blacklist_characters="()/"
            ),
            max_size=12,
        )
        .map(str.strip)
        .filter(lambda value: "//" not in value),
    ),
)


@st.composite
def _spec_lines(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        node = draw(st.sampled_from(_GROUPS))
        dotted = ".".join(map(str, node.oid))
        # Numbers are internet-relative (1.3.6.1) unless they start there or with a dot.
        forms = [node.name, dotted, "." + dotted]
        if node.oid[:4] == (1, 3, 6, 1):
            forms.append(".".join(map(str, node.oid[4:])))
        written = draw(st.sampled_from(forms))
        return f"walk {written}" if written else f"walk {node.name}"
    column = draw(st.sampled_from(_COLUMN_NODES))
    entry = column.oid[:-1]
    siblings = sorted({node for node in _COLUMN_NODES if node.oid[:-1] == entry}, key=lambda node: node.oid)
    chosen = draw(st.lists(st.sampled_from(siblings), min_size=1, max_size=4, unique=True))
    children = []
    for node in chosen:
        child_filter = draw(_filters)
        name = draw(st.sampled_from([node.name, str(node.oid[-1])]))
        children.append(f"{name}{child_filter if child_filter else ''}")
    table = ".".join(map(str, entry[:-1]))
    return f"table {table if entry[:4] == (1, 3, 6, 1) else '.' + table} {','.join(children)}"


@given(st.lists(_spec_lines(), min_size=1, max_size=6), st.booleans())
def test_canonical_form_round_trips(lines: list[str], with_comments: bool) -> None:
    text = "\n".join(
        f"{line}  // note {number}" if with_comments else line for number, line in enumerate(lines)
    )
    specs = parse_oid_spec_list(text)
    again = parse_oid_spec_list("\n".join(format_spec(spec) for spec in specs))
    assert [(type(a), a.oid) for a in specs] == [(type(b), b.oid) for b in again]
    for first, second in zip(specs, again, strict=True):
        if isinstance(first, TableSpec):
            assert isinstance(second, TableSpec)
            assert first.children == second.children


@given(st.text(max_size=200))
def test_any_text_parses_or_fails_with_a_parameter_error(text: str) -> None:
    outcome: object
    try:
        outcome = parse_oid_spec_list(text)
    except ProbeParameterError as error:
        outcome = error.parameter
    assert outcome == "oid_spec_list" or isinstance(outcome, tuple)

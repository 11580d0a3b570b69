"""Encoded queries: what each operator matches, how ^ / ^OR / ^NQ group, sorting, and the errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from midprobe.capabilities.errors import ConfigError, EncodedQueryError
from midprobe.runner.instance.query import FieldKind, parse_query, split_terms

FIELDS: dict[str, FieldKind] = {
    "agent": "string",
    "topic": "string",
    "state": "string",
    "name": "string",
    "priority": "integer",
    "sys_created_on": "datetime",
    "validated": "boolean",
}

ROWS = [
    {"agent": "mid.server.a", "topic": "Shazzam", "state": "ready", "name": "x^y", "priority": "2",
     "sys_created_on": "2026-01-01 10:00:00", "validated": "true"},
    {"agent": "mid.server.b", "topic": "SSHCommand", "state": "processing", "name": "uname -a", "priority": "10",
     "sys_created_on": "2026-01-01 09:00:00", "validated": "false"},
    {"agent": "mid.server.a", "topic": "SNMP", "state": "processed", "name": "", "priority": "0",
     "sys_created_on": "2026-01-02 00:00:00", "validated": "true"},
]  # fmt: skip


def names(query: str) -> list[str]:
    parsed = parse_query(query, FIELDS)
    return [row["topic"] for row in parsed.sort([r for r in ROWS if parsed.matches(r)])]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["Shazzam", "SSHCommand", "SNMP"]),
        ("agent=mid.server.a", ["Shazzam", "SNMP"]),
        ("agent!=mid.server.a", ["SSHCommand"]),
        ("stateINready,processed", ["Shazzam", "SNMP"]),
        ("stateNOT INready,processed", ["SSHCommand"]),
        ("topicSTARTSWITHS", ["Shazzam", "SSHCommand", "SNMP"]),
        ("topicSTARTSWITHSS", ["SSHCommand"]),
        ("topicSTARTSWITHs", []),  # comparisons are exact, case included
        ("topicENDSWITHzam", ["Shazzam"]),
        ("topicSTARTSWITHHC", []),  # inside, not at the start
        ("topicENDSWITHaz", []),  # inside, not at the end
        ("topicLIKEHC", ["SSHCommand"]),
        ("topicNOT LIKEHC", ["Shazzam", "SNMP"]),
        ("nameISEMPTY", ["SNMP"]),
        ("nameISNOTEMPTY", ["Shazzam", "SSHCommand"]),
        ("name=", ["SNMP"]),
        ("priority<3", ["Shazzam", "SNMP"]),  # numbers compare as numbers: 10 is not < 3
        ("priority>=2", ["Shazzam", "SSHCommand"]),
        ("sys_created_on>2026-01-01 09:30:00", ["Shazzam", "SNMP"]),
        ("sys_created_on<=2026-01-01 10:00:00", ["Shazzam", "SSHCommand"]),
        ("validated=false", ["SSHCommand"]),
        ("name=x^^y", ["Shazzam"]),  # ^^ is a literal caret
        ("agent=mid.server.a^state=ready", ["Shazzam"]),
        ("agent=mid.server.a^EQ", ["Shazzam", "SNMP"]),
        # ^OR joins the condition before it: (ready OR processing) AND agent=b
        ("state=ready^ORstate=processing^agent=mid.server.b", ["SSHCommand"]),
        # and only that one: agent=a AND (processed OR processing)
        ("agent=mid.server.a^state=processed^ORstate=processing", ["SNMP"]),
        ("state=ready^ORstate=processing^ORstate=processed", ["Shazzam", "SSHCommand", "SNMP"]),
        # ^NQ ORs whole queries
        ("agent=mid.server.a^state=ready^NQagent=mid.server.b", ["Shazzam", "SSHCommand"]),
        ("ORDERBYsys_created_on", ["SSHCommand", "Shazzam", "SNMP"]),
        ("ORDERBYDESCsys_created_on", ["SNMP", "Shazzam", "SSHCommand"]),
        ("ORDERBYpriority", ["SNMP", "Shazzam", "SSHCommand"]),  # 0, 2, 10: numerically
        ("ORDERBYname", ["SNMP", "SSHCommand", "Shazzam"]),  # empty first
        ("ORDERBYagent^ORDERBYDESCtopic", ["Shazzam", "SNMP", "SSHCommand"]),
        ("agent=mid.server.a^ORDERBYDESCpriority", ["Shazzam", "SNMP"]),
    ],
)
def test_a_query_selects_and_orders_rows(query: str, expected: list[str]) -> None:
    assert names(query) == expected


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("colour=red", "no field 'colour'"),
        ("state~ready", "unknown operator at '~ready' after state"),
        ("stateBETWEENa@b", "unknown operator at 'BETWEENa@b'"),
        ("State=ready", "starts with a field name"),
        ("=ready", "starts with a field name"),
        ("agent.name=x", "dot-walking"),
        ("^ORstate=ready", "empty term at the start"),
        ("state=ready^", "empty term at the end"),
        ("ORstate=ready", "^OR needs a condition before it"),
        ("NQstate=ready", "^NQ needs a query before it"),
        ("ORDERBYcolour", "cannot sort by 'colour'"),
        ("priority=high", "priority holds whole numbers, not 'high'"),
        ("priorityIN1,x", "not 'x'"),
        ("priorityLIKE1", "LIKE compares text"),
        ("validated=yes", "true or false"),
        ("validated<true", "does not apply"),
        ("sys_created_on>yesterday", "YYYY-MM-DD HH:MM:SS"),
        ("nameISEMPTYx", "ISEMPTY takes no value"),
        ("topicSTARTSWITH", "STARTSWITH needs a value"),
        ("priority<", "< needs a value"),
        ("state=" + "a" * 10_001, "longer than 10000 characters"),
        ("^".join(["state=ready"] * 201), "more than 200 terms"),
    ],
)
def test_a_bad_query_names_what_is_wrong(query: str, says: str) -> None:
    with pytest.raises(EncodedQueryError) as raised:
        parse_query(query, FIELDS)
    assert says in str(raised.value)
    assert str(raised.value).startswith("sysparm_query: ")
    assert isinstance(raised.value, ConfigError)  # bad input: the CLI's exit 2, the API's 400


@pytest.mark.parametrize(
    ("query", "row", "matches"),
    [
        ("nameISEMPTY", {"name": " "}, False),  # a blank is not empty
        ("nameISNOTEMPTY", {"name": " "}, True),
        ("sys_created_on<2026-01-01 00:00:00", {"sys_created_on": ""}, False),  # empty is not before
        ("sys_created_on>=2026-01-01 00:00:00", {"sys_created_on": ""}, False),
        ("sys_created_onISEMPTY", {}, True),  # a field the row lacks reads as empty
    ],
)
def test_empty_values(query: str, row: dict[str, str], matches: bool) -> None:
    assert parse_query(query, FIELDS).matches(row) is matches


def test_the_error_names_the_term() -> None:
    with pytest.raises(EncodedQueryError) as raised:
        parse_query("state=ready^colour=red", FIELDS)
    assert raised.value.term == "colour=red"


def test_required_equalities_are_the_stand_alone_equal_conditions() -> None:
    query = parse_query("agent=mid.server.a^state=ready^ORstate=error^topicSTARTSWITHS", FIELDS)
    assert query.required_equalities() == {"agent": "mid.server.a"}
    assert parse_query("agent=mid.server.a^NQstate=ready", FIELDS).required_equalities() == {}
    assert parse_query("state=ready^state=error", FIELDS).required_equalities() == {}
    assert parse_query("state=ready^ORDERBYtopic", FIELDS).required_equalities() == {"state": "ready"}


def test_fields_lists_what_the_conditions_read() -> None:
    query = parse_query("agent=a^ORtopic=b^NQstateISEMPTY^ORDERBYname", FIELDS)
    assert query.fields() == {"agent", "topic", "state"}


# A term is never empty and starts with a field name, never with ^ (x^^^y could be x^ y or x ^y).
@given(st.lists(st.text(alphabet="ab^=", min_size=1, max_size=6).filter(lambda t: t[0] != "^"), min_size=1))
def test_split_terms_undoes_joining_escaped_terms(terms: list[str]) -> None:
    assert split_terms("^".join(term.replace("^", "^^") for term in terms)) == terms

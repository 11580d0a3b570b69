"""ServiceNow encoded queries (``sysparm_query``): a pure parser and the matcher it builds.

``parse_query("agent=mid.server.a^state=ready^ORDERBYsys_created_on", fields)`` checks every
term against the table's fields and returns an :class:`EncodedQuery` that filters and sorts rows
given as ServiceNow shows them (every value a string). The grammar is docs/instance.md's:
``^`` is AND, ``^OR`` joins the condition right before it (so it binds tighter than ``^``),
``^NQ`` starts a new query OR-ed with the others, ``ORDERBY``/``ORDERBYDESC`` sort, ``^EQ``
ends a query, and ``^^`` stands for a literal ``^`` in a value. Anything else raises
:class:`~midprobe.capabilities.errors.EncodedQueryError` naming the term.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from midprobe.capabilities.errors import EncodedQueryError

FieldKind = Literal["string", "integer", "datetime", "boolean"]
"""How a field's values read: ``datetime`` values are ``YYYY-MM-DD HH:MM:SS`` (UTC)."""

Row = Mapping[str, str]
"""A record as the Table API shows it: field name -> string value (``""`` when empty)."""

#: Operators, longest first so that ``!=`` is not read as ``!`` and ``NOT IN`` not as ``NOT``.
OPERATORS: Final[tuple[str, ...]] = (
    "ISNOTEMPTY",
    "STARTSWITH",
    "NOT LIKE",
    "ENDSWITH",
    "ISEMPTY",
    "NOT IN",
    "LIKE",
    "IN",
    "!=",
    "<=",
    ">=",
    "=",
    "<",
    ">",
)
_UNARY: Final = frozenset({"ISEMPTY", "ISNOTEMPTY"})
_ORDERING: Final = frozenset({"<", "<=", ">", ">="})
_TEXT_ONLY: Final = frozenset({"STARTSWITH", "ENDSWITH", "LIKE", "NOT LIKE"})

MAX_QUERY_LENGTH: Final = 10_000
MAX_TERMS: Final = 200

_FIELD: Final = re.compile(r"[a-z_][a-z0-9_]*")
_INTEGER: Final = re.compile(r"-?[0-9]{1,18}")
_DATETIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"


def _check_value(kind: FieldKind, value: str, term: str, field: str) -> None:
    if kind == "integer" and _INTEGER.fullmatch(value) is None:
        raise EncodedQueryError(f"{field} holds whole numbers, not {value!r}", term=term)
    if kind == "boolean" and value not in ("true", "false"):
        raise EncodedQueryError(f"{field} is true or false, not {value!r}", term=term)
    if kind == "datetime":
        try:
            datetime.strptime(value, _DATETIME_FORMAT)  # only the shape is checked
        except ValueError:
            raise EncodedQueryError(
                f"{field} is a time written YYYY-MM-DD HH:MM:SS (UTC), not {value!r}", term=term
            ) from None


@dataclass(frozen=True)
class Condition:
    """One ``<field><operator><value>`` term; ``values`` has one entry, several for ``IN``, none for ``ISEMPTY``."""

    field: str
    operator: str
    values: tuple[str, ...]
    kind: FieldKind = "string"

    def matches(self, row: Row) -> bool:
        actual = row.get(self.field, "")
        operator = self.operator
        if operator == "ISEMPTY":
            return actual == ""
        if operator == "ISNOTEMPTY":
            return actual != ""
        if operator == "IN":
            return actual in self.values
        if operator == "NOT IN":
            return actual not in self.values
        wanted = self.values[0]
        if operator == "=":
            return actual == wanted
        if operator == "!=":
            return actual != wanted
        if operator == "STARTSWITH":
            return actual.startswith(wanted)
        if operator == "ENDSWITH":
            return actual.endswith(wanted)
        if operator == "LIKE":
            return wanted in actual
        if operator == "NOT LIKE":
            return wanted not in actual
        if actual == "":  # an empty value is neither before nor after anything
            return False
        left: int | str = int(actual) if self.kind == "integer" else actual
        right: int | str = int(wanted) if self.kind == "integer" else wanted
        if operator == "<":
            return left < right  # type: ignore[operator]
        if operator == "<=":
            return left <= right  # type: ignore[operator]
        if operator == ">":
            return left > right  # type: ignore[operator]
        return left >= right  # type: ignore[operator]


@dataclass(frozen=True)
class Ordering:
    """One ``ORDERBY`` (``descending=False``) or ``ORDERBYDESC`` term."""

    field: str
    descending: bool
    kind: FieldKind = "string"


Alternatives = tuple[Condition, ...]
"""Conditions joined by ``^OR``: one of them must hold."""


@dataclass(frozen=True)
class EncodedQuery:
    """A parsed query: ``groups`` (joined by ``^NQ``) of AND-ed alternatives, and the sort order."""

    groups: tuple[tuple[Alternatives, ...], ...] = ()
    ordering: tuple[Ordering, ...] = ()

    def matches(self, row: Row) -> bool:
        if not self.groups:
            return True
        return any(
            all(any(condition.matches(row) for condition in alternatives) for alternatives in group)
            for group in self.groups
        )

    def required_equalities(self) -> dict[str, str]:
        """``field -> value`` for every ``field=value`` every matching row must satisfy.

        Only a single query (no ``^NQ``) has them, from its conditions that stand alone (no
        ``^OR``); a store may filter on these before the rest of the query is applied.
        """
        if len(self.groups) != 1:
            return {}
        found: dict[str, str] = {}
        for alternatives in self.groups[0]:
            if len(alternatives) == 1 and alternatives[0].operator == "=":
                condition = alternatives[0]
                if found.get(condition.field, condition.values[0]) != condition.values[0]:
                    return {}  # a=x^a=y matches nothing; leave that to the matcher
                found[condition.field] = condition.values[0]
        return found

    def fields(self) -> frozenset[str]:
        """Every field a condition of this query reads."""
        return frozenset(c.field for group in self.groups for alternatives in group for c in alternatives)

    def sort(self, rows: Sequence[Row]) -> list[Row]:
        """``rows`` in this query's order (stable: rows that tie keep their order); empty values first."""
        ordered = list(rows)
        for ordering in reversed(self.ordering):
            ordered.sort(key=_sort_key(ordering), reverse=ordering.descending)
        return ordered


def _sort_key(ordering: Ordering) -> Callable[[Row], tuple[int, int, str]]:
    def key(row: Row) -> tuple[int, int, str]:
        value = row.get(ordering.field, "")
        if value == "":
            return (0, 0, "")
        if ordering.kind == "integer" and _INTEGER.fullmatch(value):
            return (1, int(value), "")
        return (1, 0, value)

    return key


def split_terms(text: str) -> list[str]:
    """Split on ``^``, reading ``^^`` as a literal ``^`` inside a term."""
    terms: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(text):
        character = text[index]
        if character == "^":
            if text.startswith("^^", index):
                current.append("^")
                index += 2
                continue
            terms.append("".join(current))
            current = []
        else:
            current.append(character)
        index += 1
    terms.append("".join(current))
    return terms


def _condition(term: str, text: str, fields: Mapping[str, FieldKind]) -> Condition:
    match = _FIELD.match(text)
    if match is None:
        raise EncodedQueryError("a condition starts with a field name (lowercase)", term=term)
    field = match.group()
    rest = text[match.end() :]
    if field not in fields:
        raise EncodedQueryError(f"no field {field!r} (fields: {', '.join(sorted(fields))})", term=term)
    if rest.startswith("."):
        raise EncodedQueryError(f"dot-walking ({field}.…) is not supported", term=term)
    operator = next((op for op in OPERATORS if rest.startswith(op)), None)
    if operator is None:
        shown = rest[:20] + ("…" if len(rest) > 20 else "")
        raise EncodedQueryError(
            f"unknown operator at {shown!r} after {field} (operators: {', '.join(OPERATORS)})", term=term
        )
    value = rest[len(operator) :]
    kind = fields[field]
    if operator in _UNARY:
        if value:
            raise EncodedQueryError(f"{operator} takes no value", term=term)
        return Condition(field, operator, (), kind)
    if operator in _TEXT_ONLY and kind != "string":
        raise EncodedQueryError(f"{operator} compares text; {field} is a {kind} field", term=term)
    if operator in _ORDERING and kind == "boolean":
        raise EncodedQueryError(f"{operator} does not apply to {field}, which is true or false", term=term)
    values = tuple(value.split(",")) if operator in ("IN", "NOT IN") else (value,)
    if operator not in ("=", "!=", "IN", "NOT IN") and value == "":
        raise EncodedQueryError(f"{operator} needs a value", term=term)
    for single in values:
        if single != "":  # an empty value matches an empty field, whatever the kind
            _check_value(kind, single, term, field)
    return Condition(field, operator, values, kind)


def _ordering(term: str, field: str, descending: bool, fields: Mapping[str, FieldKind]) -> Ordering:
    if field not in fields:
        raise EncodedQueryError(
            f"cannot sort by {field!r}: no such field (fields: {', '.join(sorted(fields))})", term=term
        )
    return Ordering(field, descending, fields[field])


def parse_query(text: str, fields: Mapping[str, FieldKind]) -> EncodedQuery:
    """Parse an encoded query over a table whose fields (and their kinds) are ``fields``.

    The empty query matches every row. Raises ``EncodedQueryError`` for an unknown field or
    operator, a value of the wrong kind, an ``^OR`` with nothing before it, an empty term,
    or a query longer than ``MAX_QUERY_LENGTH`` characters or ``MAX_TERMS`` terms.
    """
    if len(text) > MAX_QUERY_LENGTH:
        raise EncodedQueryError(f"the query is longer than {MAX_QUERY_LENGTH} characters")
    if text == "":
        return EncodedQuery()
    terms = split_terms(text)
    if len(terms) > MAX_TERMS:
        raise EncodedQueryError(f"the query has more than {MAX_TERMS} terms")
    groups: list[tuple[Alternatives, ...]] = []
    group: list[Alternatives] = []
    ordering: list[Ordering] = []
    for position, term in enumerate(terms):
        if term == "":
            where = " at the start" if position == 0 else " at the end" if position == len(terms) - 1 else ""
            raise EncodedQueryError(f"empty term{where} (a ^ with no condition; a literal ^ is written ^^)")
        if term == "EQ":
            continue
        if term.startswith("ORDERBYDESC"):
            ordering.append(_ordering(term, term[len("ORDERBYDESC") :], True, fields))
        elif term.startswith("ORDERBY"):
            ordering.append(_ordering(term, term[len("ORDERBY") :], False, fields))
        elif term.startswith("OR"):
            if not group:
                raise EncodedQueryError("^OR needs a condition before it", term=term)
            group[-1] = (*group[-1], _condition(term, term[2:], fields))
        elif term.startswith("NQ"):
            if not group:
                raise EncodedQueryError("^NQ needs a query before it", term=term)
            groups.append(tuple(group))
            group = [(_condition(term, term[2:], fields),)]
        else:
            group.append((_condition(term, term, fields),))
    if group:
        groups.append(tuple(group))
    return EncodedQuery(tuple(groups), tuple(ordering))


__all__ = [
    "MAX_QUERY_LENGTH",
    "MAX_TERMS",
    "OPERATORS",
    "Condition",
    "EncodedQuery",
    "FieldKind",
    "Ordering",
    "Row",
    "parse_query",
    "split_terms",
]

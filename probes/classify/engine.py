"""The classification engine: reads the rules table (``rules.toml``) and scores a host's observations.

Pure: no I/O besides loading the rules once. Each rule that holds votes for its class
with its weight (nmap votes are scaled by nmap's accuracy); the class with the highest
total wins, ties go to the class whose best rule comes first in the table. Confidence
is the winner's total, capped at 1.0; evidence lists the reasons that voted for it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from midprobe.capabilities.errors import ConfigError

CONDITIONS = (
    "open_tcp_port",
    "all_open_tcp_ports",
    "banner",
    "uname",
    "sys_object_id",
    "sys_descr",
    "nmap_os_family",
    "nmap_device_type",
    "nmap_service",
)


@dataclass(frozen=True)
class NmapOsClass:
    """One ``<osclass>`` of an nmap OS match."""

    family: str
    device_type: str = ""
    vendor: str = ""
    accuracy: int = 100


@dataclass(frozen=True)
class Observations:
    """What discovery learned about one host; every part is optional."""

    address: str
    open_tcp_ports: frozenset[int] = frozenset()
    #: Banners by port: an SSH identification string, an HTTP ``Server`` header, ...
    banners: Mapping[int, str] = field(default_factory=dict)
    uname: str | None = None
    sys_object_id: str | None = None
    sys_descr: str | None = None
    nmap_os_classes: tuple[NmapOsClass, ...] = ()
    #: Services nmap identified by port (guesses, shown with a trailing ``?``, are left out).
    nmap_services: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Classification:
    """The verdict: a CMDB class (or None when nothing points anywhere), how sure, and why."""

    ci_class: str | None
    confidence: float
    evidence: tuple[str, ...]
    #: Every class that got a vote, with its score (for explanations and debugging).
    scores: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Rule:
    ci_class: str
    weight: float
    when: Mapping[str, Any]
    evidence: str
    order: int


@dataclass(frozen=True)
class _Vote:
    weight: float
    reason: str


def _normalise_oid(oid: str) -> str:
    return oid if oid.startswith(".") else "." + oid


def _oid_matches(oid: str, patterns: Sequence[str]) -> str | None:
    value = _normalise_oid(oid)
    for pattern in patterns:
        pattern = _normalise_oid(pattern)
        if (pattern.endswith(".") and value.startswith(pattern)) or value == pattern:
            return value
    return None


class Classifier:
    """A set of rules; build one with :func:`default_classifier` or from your own table."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)

    @classmethod
    def from_toml(cls, text: str, *, source: str = "<rules>") -> Classifier:
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"not valid TOML: {error}", source=source) from None
        rules = []
        for index, entry in enumerate(document.get("rule", []), start=1):
            where = f"rule[{index}]"
            if not isinstance(entry, dict):
                raise ConfigError("must be a table", source=source, entry=where)
            when = entry.get("when")
            if not isinstance(when, dict) or not when:
                raise ConfigError("needs at least one condition under `when`", source=source, entry=where)
            unknown = set(when) - set(CONDITIONS)
            if unknown:
                raise ConfigError(
                    f"unknown condition(s) {sorted(unknown)} (known: {', '.join(CONDITIONS)})",
                    source=source,
                    entry=where,
                )
            for key in ("banner", "uname", "sys_descr"):
                if key in when:
                    try:
                        re.compile(when[key])
                    except re.error as error:
                        raise ConfigError(
                            f"bad regular expression: {error}",
                            source=source,
                            entry=where,
                            field=f"when.{key}",
                        ) from None
            weight = entry.get("weight")
            if not isinstance(weight, int | float) or isinstance(weight, bool) or weight <= 0:
                raise ConfigError("must be a positive number", source=source, entry=where, field="weight")
            ci_class = entry.get("class")
            if not isinstance(ci_class, str) or not ci_class.startswith("cmdb_ci_"):
                raise ConfigError(
                    "must be a CMDB class name (cmdb_ci_...)", source=source, entry=where, field="class"
                )
            rules.append(Rule(ci_class, float(weight), when, str(entry.get("evidence", ci_class)), index))
        return cls(rules)

    def classify(self, observations: Observations) -> Classification:
        votes: dict[str, list[_Vote]] = {}
        best_order: dict[str, int] = {}
        for rule in self.rules:
            vote = self._evaluate(rule, observations)
            if vote is None:
                continue
            votes.setdefault(rule.ci_class, []).append(vote)
            best_order[rule.ci_class] = min(best_order.get(rule.ci_class, rule.order), rule.order)
        if not votes:
            return Classification(None, 0.0, ())
        scores = {ci_class: round(sum(v.weight for v in cast), 4) for ci_class, cast in votes.items()}
        winner = min(scores, key=lambda c: (-scores[c], best_order[c]))
        reasons = tuple(vote.reason for vote in sorted(votes[winner], key=lambda v: -v.weight))
        return Classification(winner, round(min(1.0, scores[winner]), 2), reasons, scores)

    def _evaluate(self, rule: Rule, seen: Observations) -> _Vote | None:
        """The rule's vote when every condition holds, else None."""
        weight = rule.weight
        fills: dict[str, str] = {}
        for condition, expected in rule.when.items():
            matched = next(self._matches(condition, expected, seen), None)
            if matched is None:
                return None
            value, scale = matched
            fills.setdefault("value", value)
            if condition in ("open_tcp_port",):
                fills["port"] = value
            weight *= scale
        try:
            reason = rule.evidence.format(**{"port": "", "value": "", **fills})
        except (KeyError, IndexError, ValueError):
            reason = rule.evidence
        return _Vote(weight, reason)

    @staticmethod
    def _matches(condition: str, expected: Any, seen: Observations) -> Iterator[tuple[str, float]]:
        """Yield (matched value, weight scale) for each way ``condition`` holds."""
        if condition == "open_tcp_port":
            for port in expected:
                if port in seen.open_tcp_ports:
                    yield str(port), 1.0
        elif condition == "all_open_tcp_ports":
            if all(port in seen.open_tcp_ports for port in expected):
                yield ", ".join(map(str, expected)), 1.0
        elif condition == "banner":
            for port in sorted(seen.banners):
                if re.search(expected, seen.banners[port]):
                    yield seen.banners[port].strip()[:80], 1.0
        elif condition == "uname":
            if seen.uname and re.search(expected, seen.uname.strip()):
                yield seen.uname.split()[0], 1.0
        elif condition == "sys_object_id":
            if seen.sys_object_id:
                found = _oid_matches(seen.sys_object_id, expected)
                if found:
                    yield found, 1.0
        elif condition == "sys_descr":
            if seen.sys_descr and re.search(expected, seen.sys_descr):
                yield seen.sys_descr.strip()[:80], 1.0
        elif condition in ("nmap_os_family", "nmap_device_type"):
            wanted = {item.casefold() for item in expected}
            best: NmapOsClass | None = None
            for os_class in seen.nmap_os_classes:
                value = os_class.family if condition == "nmap_os_family" else os_class.device_type
                if value.casefold() in wanted and (best is None or os_class.accuracy > best.accuracy):
                    best = os_class
            if best is not None:
                value = best.family if condition == "nmap_os_family" else best.device_type
                yield f"{value} ({best.accuracy}%)", best.accuracy / 100
        elif condition == "nmap_service":
            for port in sorted(seen.nmap_services):
                if seen.nmap_services[port] in expected:
                    yield f"{seen.nmap_services[port]} on {port}", 1.0


@cache
def default_classifier() -> Classifier:
    """The classifier built from the rules table shipped in this package."""
    text = resources.files("midprobe.probes.classify").joinpath("rules.toml").read_text(encoding="utf-8")
    return Classifier.from_toml(text, source="midprobe/probes/classify/rules.toml")

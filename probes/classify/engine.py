"""The classification engine: reads the rules table (``rules.toml``) and scores a host's observations.

Pure: no I/O besides loading the rules once. Each rule that holds votes for its class
with its weight (nmap votes are scaled by nmap's accuracy); the class with the highest
total wins, ties go to the class whose best rule comes first in the table. Confidence
is the winner's total, capped at 1.0; evidence lists the reasons that voted for it. The
vendor is the one named by the heaviest rule that holds and names one, else IANA's name for the
sysObjectID's enterprise number (``enterprises.py``).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from midprobe.capabilities.errors import ConfigError
from midprobe.probes.classify.enterprises import enterprise_name, enterprise_of

#: Each condition a rule may name, by the kind of value it takes (``rules.toml`` documents them).
CONDITION_KINDS: Mapping[str, Literal["ports", "regex", "oids", "names", "numbers"]] = {
    "open_tcp_port": "ports",
    "all_open_tcp_ports": "ports",
    "banner": "regex",
    "uname": "regex",
    "sys_object_id": "oids",
    "enterprise": "numbers",
    "sys_descr": "regex",
    "snmp_capability": "names",
    "logged_in": "names",
    "nmap_os_family": "names",
    "nmap_device_type": "names",
    "nmap_service": "names",
}
CONDITIONS = tuple(CONDITION_KINDS)
#: Verdicts a classifier remembers before it starts again (each a few hundred bytes).
VERDICTS_KEPT = 4096
RULE_KEYS = frozenset({"class", "weight", "when", "unless", "evidence", "vendor"})
_OID_PATTERN = re.compile(r"\.?\d+(\.\d+)*\.?")


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
    #: What the device showed over SNMP it does (``printing``, ``switching``, ``routing``), each with
    #: what showed it (``"dot1dBaseNumPorts = 8 (BRIDGE-MIB)"``): ``probes.snmp.facts.capabilities``.
    snmp_capabilities: Mapping[str, str] = field(default_factory=dict)
    #: Protocols a credential worked for on this host (``ssh``, ``snmp``): a login says something too.
    logged_in: frozenset[str] = frozenset()
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
    #: The maker, from the heaviest rule that holds and names one (a sysObjectID enterprise, ...).
    vendor: str | None = None


@dataclass(frozen=True)
class Rule:
    ci_class: str
    weight: float
    when: Mapping[str, Any]
    evidence: str
    order: int
    #: Conditions that, when any of them holds, keep the rule from voting.
    unless: Mapping[str, Any] = field(default_factory=dict)
    vendor: str | None = None


@dataclass(frozen=True)
class _Vote:
    weight: float
    reason: str


def _normalise_oid(oid: str) -> str:
    return oid if oid.startswith(".") else "." + oid


def _oid_matches(oid: str, patterns: Sequence[str]) -> str | None:
    """``oid`` when it is one of ``patterns``, or under one ending in ``.`` (or that OID itself)."""
    value = _normalise_oid(oid)
    for pattern in patterns:
        pattern = _normalise_oid(pattern)
        if value == pattern or (
            pattern.endswith(".") and (value.startswith(pattern) or value == pattern[:-1])
        ):
            return value
    return None


def _check_conditions(
    conditions: Any,
    *,
    source: str,
    where: str,
    key: Literal["when", "unless"],
    check_patterns: bool = True,
) -> Mapping[str, Any]:
    """``when`` / ``unless`` after checking each condition's name and value (one-line errors); a
    regular expression is compiled to check it only with ``check_patterns``."""
    if not isinstance(conditions, dict) or not conditions:
        message = "needs at least one condition under `when`" if key == "when" else "must be a table"
        raise ConfigError(message, source=source, entry=where, field=None if key == "when" else key)
    unknown = set(conditions) - set(CONDITIONS)
    if unknown:
        raise ConfigError(
            f"unknown condition(s) {sorted(unknown)} (known: {', '.join(CONDITIONS)})",
            source=source,
            entry=where,
        )
    for name, value in conditions.items():
        kind = CONDITION_KINDS[name]
        place = f"{key}.{name}"
        if kind == "regex":
            if not isinstance(value, str):
                raise ConfigError(
                    "must be a regular expression (a string)", source=source, entry=where, field=place
                )
            try:
                if check_patterns:
                    re.compile(value)
            except re.error as error:
                raise ConfigError(
                    f"bad regular expression: {error}", source=source, entry=where, field=place
                ) from None
            continue
        if not isinstance(value, list) or not value:
            raise ConfigError("must be a non-empty list", source=source, entry=where, field=place)
        if kind == "ports":
            good = all(
                isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536 for port in value
            )
            what = "TCP ports (1-65535)"
        elif kind == "numbers":
            good = all(
                isinstance(number, int) and not isinstance(number, bool) and number > 0 for number in value
            )
            what = "IANA enterprise numbers (positive integers)"
        elif kind == "oids":
            good = all(isinstance(oid, str) and _OID_PATTERN.fullmatch(oid) for oid in value)
            what = "numeric OIDs (a trailing dot: that OID and everything under it)"
        else:
            good = all(isinstance(name, str) and name for name in value)
            what = "non-empty strings"
        if not good:
            raise ConfigError(f"must list {what}", source=source, entry=where, field=place)
    return conditions


class Classifier:
    """A set of rules; build one with :func:`default_classifier` or from your own table."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        #: Verdicts by what was seen (the address left out: no rule reads it), so the thousands of
        #: hosts of a large scan that show the same open ports are weighed once.
        self._verdicts: dict[tuple[object, ...], Classification] = {}

    @classmethod
    def from_toml(cls, text: str, *, source: str = "<rules>", check_patterns: bool = True) -> Classifier:
        """The rules of a ``rules.toml`` table, each checked (one-line ``ConfigError``s naming the rule
        and the field). ``check_patterns=False`` leaves the regular expressions to compile when first
        searched: for the shipped table, which its unit test checks whole."""
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"not valid TOML: {error}", source=source) from None
        rules = []
        for index, entry in enumerate(document.get("rule", []), start=1):
            where = f"rule[{index}]"
            if not isinstance(entry, dict):
                raise ConfigError("must be a table", source=source, entry=where)
            unknown = set(entry) - RULE_KEYS
            if unknown:
                raise ConfigError(
                    f"unknown key(s) {sorted(unknown)} (known: {', '.join(sorted(RULE_KEYS))})",
                    source=source,
                    entry=where,
                )
            when = _check_conditions(
                entry.get("when"), source=source, where=where, key="when", check_patterns=check_patterns
            )
            unless = (
                _check_conditions(
                    entry["unless"], source=source, where=where, key="unless", check_patterns=check_patterns
                )
                if "unless" in entry
                else {}
            )
            weight = entry.get("weight")
            if not isinstance(weight, int | float) or isinstance(weight, bool) or weight <= 0:
                raise ConfigError("must be a positive number", source=source, entry=where, field="weight")
            ci_class = entry.get("class")
            if not isinstance(ci_class, str) or not ci_class.startswith("cmdb_ci_"):
                raise ConfigError(
                    "must be a CMDB class name (cmdb_ci_...)", source=source, entry=where, field="class"
                )
            vendor = entry.get("vendor")
            if vendor is not None and (not isinstance(vendor, str) or not vendor.strip()):
                raise ConfigError("must be a non-empty string", source=source, entry=where, field="vendor")
            evidence = str(entry.get("evidence", ci_class))
            rules.append(Rule(ci_class, float(weight), when, evidence, index, unless=unless, vendor=vendor))
        return cls(rules)

    def classify(self, observations: Observations) -> Classification:
        """The verdict on what was seen of one host (the same observations, the same verdict)."""
        key = _seen(observations)
        verdict = self._verdicts.get(key)
        if verdict is None:
            if len(self._verdicts) >= VERDICTS_KEPT:
                self._verdicts.clear()
            verdict = self._verdicts[key] = self._classify(observations)
        return verdict

    def _classify(self, observations: Observations) -> Classification:
        votes: dict[str, list[_Vote]] = {}
        best_order: dict[str, int] = {}
        vendor: tuple[float, str] | None = None
        for rule in self.rules:
            vote = self._evaluate(rule, observations)
            if vote is None:
                continue
            votes.setdefault(rule.ci_class, []).append(vote)
            best_order[rule.ci_class] = min(best_order.get(rule.ci_class, rule.order), rule.order)
            if rule.vendor is not None and (vendor is None or vote.weight > vendor[0]):
                vendor = (vote.weight, rule.vendor)
        if vendor is None:
            named = enterprise_name(enterprise_of(observations.sys_object_id))
            if named is not None:
                vendor = (0.0, named)
        if not votes:
            return Classification(None, 0.0, (), vendor=vendor[1] if vendor is not None else None)
        scores = {ci_class: round(sum(v.weight for v in cast), 4) for ci_class, cast in votes.items()}
        winner = min(scores, key=lambda c: (-scores[c], best_order[c]))
        reasons = tuple(vote.reason for vote in sorted(votes[winner], key=lambda v: -v.weight))
        return Classification(
            winner,
            round(min(1.0, scores[winner]), 2),
            reasons,
            scores,
            vendor[1] if vendor is not None else None,
        )

    def _evaluate(self, rule: Rule, seen: Observations) -> _Vote | None:
        """The rule's vote when every ``when`` condition holds and no ``unless`` one does, else None."""
        for condition, expected in rule.unless.items():
            if next(self._matches(condition, expected, seen), None) is not None:
                return None
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
        elif condition == "enterprise":
            number = enterprise_of(seen.sys_object_id)
            if number is not None and number in expected:
                name = enterprise_name(number)
                yield (f"{number} ({name})" if name else str(number)), 1.0
        elif condition == "sys_descr":
            if seen.sys_descr and re.search(expected, seen.sys_descr):
                yield seen.sys_descr.strip()[:80], 1.0
        elif condition == "snmp_capability":
            for name in expected:
                if name in seen.snmp_capabilities:
                    how = seen.snmp_capabilities[name]
                    yield (f"{name} ({how})" if how else name), 1.0
        elif condition == "logged_in":
            for protocol in expected:
                if protocol in seen.logged_in:
                    yield protocol, 1.0
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


def _seen(seen: Observations) -> tuple[object, ...]:
    """Everything of ``seen`` a rule may read, hashable (the address is not among it)."""
    return (
        seen.open_tcp_ports,
        tuple(sorted(seen.banners.items())),
        seen.uname,
        seen.sys_object_id,
        seen.sys_descr,
        tuple(sorted(seen.snmp_capabilities.items())),
        seen.logged_in,
        seen.nmap_os_classes,
        tuple(sorted(seen.nmap_services.items())),
    )


@cache
def default_classifier() -> Classifier:
    """The classifier built from the rules table shipped in this package."""
    # Beside this module (an installed package is a directory tree): importlib.resources would cost a
    # scan's start-up its zipfile, tempfile and shutil imports for one file read.
    text = Path(__file__).with_name("rules.toml").read_text(encoding="utf-8")
    # Its 60-odd patterns are checked by its unit test, not compiled at every start (a scan's
    # start-up would pay for the banner patterns of a scan that reads no banner).
    return Classifier.from_toml(text, source="midprobe/probes/classify/rules.toml", check_patterns=False)

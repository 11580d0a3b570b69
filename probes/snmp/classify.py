"""SNMP classification (pure): sysObjectID prefix + sysDescr -> CMDB class, with the evidence.

The rules are data (``classification.toml`` next to this module): each names a sysObjectID
("is" or "starts with"), optionally a sysDescr pattern, a vendor and a class. When no rule
decides, the capabilities the device showed do: printing (Printer-MIB, hrPrinterTable),
switching (BRIDGE-MIB ports, sysServices layer 2), routing (ipForwarding, sysServices layer 3).
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from midprobe.capabilities.errors import ConfigError
from midprobe.probes.snmp.values import (
    Oid,
    SnmpType,
    SnmpValue,
    VarBind,
    format_oid,
    is_prefix,
    parse_numeric_oid,
)

RULES_FILE = Path(__file__).with_name("classification.toml")

SWITCH = "cmdb_ci_ip_switch"
ROUTER = "cmdb_ci_ip_router"
PRINTER = "cmdb_ci_printer"
LINUX_SERVER = "cmdb_ci_linux_server"
NETGEAR = "cmdb_ci_netgear"
CI_CLASSES = (SWITCH, ROUTER, PRINTER, LINUX_SERVER, NETGEAR)
BY_CAPABILITY = "by_capability"

ROUTING = "routing"
SWITCHING = "switching"
PRINTING = "printing"

SYS_DESCR = (1, 3, 6, 1, 2, 1, 1, 1, 0)
SYS_OBJECT_ID = (1, 3, 6, 1, 2, 1, 1, 2, 0)
SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)
SYS_SERVICES = (1, 3, 6, 1, 2, 1, 1, 7, 0)
IP_FORWARDING = (1, 3, 6, 1, 2, 1, 4, 1, 0)
DOT1D_BASE_NUM_PORTS = (1, 3, 6, 1, 2, 1, 17, 1, 2, 0)
PRINTER_MIB = (1, 3, 6, 1, 2, 1, 43)
HR_PRINTER_TABLE = (1, 3, 6, 1, 2, 1, 25, 3, 5)
HR_DEVICE_TYPE = (1, 3, 6, 1, 2, 1, 25, 3, 2, 1, 2)
HR_DEVICE_PRINTER = (1, 3, 6, 1, 2, 1, 25, 3, 1, 5)

Match = Literal["is", "starts_with"]


@dataclass(frozen=True)
class ClassRule:
    sys_object_id: Oid
    match: Match
    ci_class: str
    vendor: str | None
    why: str
    descr: re.Pattern[str] | None = None

    def matches(self, sys_object_id: Oid, sys_descr: str) -> bool:
        if self.match == "is":
            hit = sys_object_id == self.sys_object_id
        else:
            hit = is_prefix(self.sys_object_id, sys_object_id)
        return hit and (self.descr is None or self.descr.search(sys_descr) is not None)

    def describe(self, sys_object_id: Oid) -> str:
        verb = "is" if self.match == "is" else "starts with"
        text = f"sysObjectID {format_oid(sys_object_id, leading_dot=True)} {verb} "
        text += f"{format_oid(self.sys_object_id, leading_dot=True)} ({self.why})"
        if self.descr is not None:
            text += f"; sysDescr matches /{self.descr.pattern}/"
        return text


@dataclass(frozen=True)
class DeviceFacts:
    """What classification looks at, read from the agent."""

    sys_descr: str = ""
    sys_object_id: Oid | None = None
    sys_name: str | None = None
    sys_services: int | None = None
    ip_forwarding: int | None = None
    bridge_ports: int | None = None
    printer_mib: bool = False


@dataclass(frozen=True)
class Classification:
    ci_class: str
    vendor: str | None
    capabilities: tuple[str, ...]
    evidence: tuple[str, ...]


@functools.cache
def default_rules() -> tuple[ClassRule, ...]:
    """The rules shipped with midprobe, read once."""
    return load_rules(RULES_FILE)


def load_rules(path: Path | None = None) -> tuple[ClassRule, ...]:
    """Read and validate a rules file (``None``: the one shipped with midprobe)."""
    path = RULES_FILE if path is None else path
    source = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"cannot read the classification rules: {error.strerror}", source=source) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"not valid TOML: {error}", source=source) from None
    return parse_rules(data, source=source)


def parse_rules(data: Mapping[str, Any], *, source: str = "<rules>") -> tuple[ClassRule, ...]:
    rules: list[ClassRule] = []
    entries = data.get("rule", [])
    if not isinstance(entries, list):
        raise ConfigError("must be an array of tables ([[rule]])", source=source, field="rule")
    for number, entry in enumerate(entries, start=1):
        where = f"rule {number}"

        def text(
            key: str, *, required: bool = True, entry: Mapping[str, Any] = entry, where: str = where
        ) -> str:
            value = entry.get(key)
            if value is None and not required:
                return ""
            if not isinstance(value, str) or not value.strip():
                raise ConfigError("must be a non-empty string", source=source, entry=where, field=key)
            return value

        unknown = set(entry) - {"sys_object_id", "match", "descr", "vendor", "ci_class", "why"}
        if unknown:
            raise ConfigError(f"unknown keys {sorted(unknown)}", source=source, entry=where)
        try:
            oid = parse_numeric_oid(text("sys_object_id"))
        except ValueError:
            raise ConfigError(
                "must be a numeric OID", source=source, entry=where, field="sys_object_id"
            ) from None
        match = text("match")
        if match not in ("is", "starts_with"):
            raise ConfigError("must be 'is' or 'starts_with'", source=source, entry=where, field="match")
        ci_class = text("ci_class")
        if ci_class not in (*CI_CLASSES, BY_CAPABILITY):
            raise ConfigError(
                f"must be one of {', '.join((*CI_CLASSES, BY_CAPABILITY))}",
                source=source,
                entry=where,
                field="ci_class",
            )
        pattern = text("descr", required=False)
        try:
            descr = re.compile(pattern, re.IGNORECASE) if pattern else None
        except re.error as error:
            raise ConfigError(
                f"not a regular expression: {error}", source=source, entry=where, field="descr"
            ) from None
        rules.append(
            ClassRule(
                sys_object_id=oid,
                match="is" if match == "is" else "starts_with",
                ci_class=ci_class,
                vendor=text("vendor", required=False) or None,
                why=text("why", required=False) or "rule " + str(number),
                descr=descr,
            )
        )
    return tuple(rules)


def _text(value: SnmpValue | None) -> str | None:
    if value is None or value.type is not SnmpType.OCTET_STRING:
        return None
    return value.as_text()


def _int(value: SnmpValue | None) -> int | None:
    return value.as_int() if value is not None else None


def facts_from_varbinds(varbinds: Iterable[VarBind]) -> DeviceFacts:
    """The classification facts found among ``varbinds`` (whatever was walked or fetched)."""
    found = dict(varbinds)
    object_id = found.get(SYS_OBJECT_ID)
    printer = any(
        (is_prefix(PRINTER_MIB, oid) or is_prefix(HR_PRINTER_TABLE, oid)) and not value.is_exception
        for oid, value in found.items()
    ) or any(
        is_prefix(HR_DEVICE_TYPE, oid) and value.value == HR_DEVICE_PRINTER for oid, value in found.items()
    )
    return DeviceFacts(
        sys_descr=_text(found.get(SYS_DESCR)) or "",
        sys_object_id=object_id.value
        if object_id is not None
        and object_id.type is SnmpType.OBJECT_ID
        and isinstance(object_id.value, tuple)
        else None,
        sys_name=_text(found.get(SYS_NAME)),
        sys_services=_int(found.get(SYS_SERVICES)),
        ip_forwarding=_int(found.get(IP_FORWARDING)),
        bridge_ports=_int(found.get(DOT1D_BASE_NUM_PORTS)),
        printer_mib=printer,
    )


def capabilities(facts: DeviceFacts) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(capabilities, evidence)`` from the facts."""
    found: list[str] = []
    evidence: list[str] = []
    if facts.printer_mib:
        found.append(PRINTING)
        evidence.append("Printer-MIB / hrPrinterTable objects present")
    if facts.bridge_ports:
        found.append(SWITCHING)
        evidence.append(f"dot1dBaseNumPorts = {facts.bridge_ports} (BRIDGE-MIB)")
    if facts.sys_services is not None and facts.sys_services & 0x02 and SWITCHING not in found:
        found.append(SWITCHING)
        evidence.append(f"sysServices = {facts.sys_services} (layer 2 set)")
    if facts.ip_forwarding == 1:
        found.append(ROUTING)
        evidence.append("ipForwarding = 1 (forwarding)")
    if facts.sys_services is not None and facts.sys_services & 0x04 and ROUTING not in found:
        found.append(ROUTING)
        evidence.append(f"sysServices = {facts.sys_services} (layer 3 set)")
    return tuple(found), tuple(evidence)


def _by_capability(found: Sequence[str], facts: DeviceFacts) -> tuple[str, str]:
    if PRINTING in found:
        return PRINTER, "prints"
    if SWITCHING in found:
        return SWITCH, "switches (a layer-3 switch also routes)"
    if ROUTING in found:
        return ROUTER, "routes"
    if re.search(r"\blinux\b", facts.sys_descr, re.IGNORECASE):
        return LINUX_SERVER, "sysDescr says Linux"
    return NETGEAR, "no rule and no telling capability: generic network gear"


def classify(facts: DeviceFacts, rules: Sequence[ClassRule] | None = None) -> Classification:
    """The CMDB class for the device, and why."""
    rules = default_rules() if rules is None else rules
    found, evidence = capabilities(facts)
    reasons: list[str] = []
    if facts.sys_object_id is not None:
        for rule in rules:
            if rule.matches(facts.sys_object_id, facts.sys_descr):
                reasons.append(rule.describe(facts.sys_object_id))
                ci_class = rule.ci_class
                if ci_class == BY_CAPABILITY:
                    ci_class, why = _by_capability(found, facts)
                    reasons.append(f"by capability: {why}")
                return Classification(ci_class, rule.vendor, found, (*reasons, *evidence))
        reasons.append(f"no rule for sysObjectID {format_oid(facts.sys_object_id, leading_dot=True)}")
    else:
        reasons.append("no sysObjectID")
    ci_class, why = _by_capability(found, facts)
    reasons.append(f"by capability: {why}")
    return Classification(ci_class, None, found, (*reasons, *evidence))

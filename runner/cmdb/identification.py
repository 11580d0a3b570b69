"""Identification: which existing CI a discovered device is, by identifier rules in priority order.

Pure: the store finds the candidate CIs (any CI sharing the device's serial number, one of its
MAC addresses, or its name and an address) and this module decides, as ServiceNow's
identification engine does:

1. **serial number** (a real one: vendor placeholders such as ``To be filled by O.E.M.`` never count);
2. **the set of interface MAC addresses** (any identifying MAC in common);
3. **name plus IP address** (the name, case-insensitively, and one address in common).

The first rule that matches decides the CI to update. Other candidates that turn out to be the
same device are merged into it. A contradiction (two CIs with the device's serial number, or a
CI found by MAC or name that carries a different serial number) is flagged as a conflict and
nothing is written: a guess would corrupt two CIs instead of one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from midprobe.runner.cmdb.model import ConfigurationItem, DiscoveredDevice, is_identifying_mac, usable_serial

RuleName = Literal["serial_number", "mac_address", "name_ip"]
#: The identifier rules, highest priority first.
RULES: Final[tuple[RuleName, ...]] = ("serial_number", "mac_address", "name_ip")


@dataclass(frozen=True)
class Decision:
    """What to do with a device: ``insert``, ``update`` (``ci``, merging ``absorbed``), or ``conflict``."""

    action: Literal["insert", "update", "conflict"]
    rule: RuleName | None = None
    ci: str | None = None
    absorbed: tuple[str, ...] = ()
    conflicting: tuple[str, ...] = ()
    reason: str = ""


def ci_macs(ci: ConfigurationItem) -> frozenset[str]:
    macs = {i.mac_address for i in ci.interfaces if i.mac_address}
    if ci.mac_address:
        macs.add(ci.mac_address)
    return frozenset(m for m in macs if is_identifying_mac(m))


def ci_addresses(ci: ConfigurationItem) -> frozenset[str]:
    found = set(ci.ip_addresses)
    if ci.ip_address:
        found.add(ci.ip_address)
    return frozenset(found)


def matches(rule: RuleName, device: DiscoveredDevice, ci: ConfigurationItem) -> bool:
    """Whether ``ci`` is ``device`` by one identifier rule."""
    if rule == "serial_number":
        serial = device.identity_serial
        return serial is not None and usable_serial(ci.serial_number) == serial
    if rule == "mac_address":
        return bool(device.mac_addresses & ci_macs(ci))
    return ci.name.casefold() == device.name.casefold() and bool(device.ip_addresses & ci_addresses(ci))


def _oldest_first(items: Sequence[ConfigurationItem]) -> list[ConfigurationItem]:
    return sorted(items, key=lambda ci: (ci.first_discovered, ci.sys_id))


def _clashing(reference: str | None, others: Iterable[ConfigurationItem]) -> list[str]:
    """The CIs whose serial numbers say they are another device than the one being merged into."""
    with_serial = [(ci.sys_id, s) for ci in others if (s := usable_serial(ci.serial_number))]
    if reference is None and len({s for _, s in with_serial}) <= 1:
        return []
    return sorted(sys_id for sys_id, s in with_serial if s != reference)


def identify(device: DiscoveredDevice, candidates: Sequence[ConfigurationItem]) -> Decision:
    """Decide which CI ``device`` is among ``candidates`` (see the module docstring for the rules)."""
    serial = device.identity_serial
    by_rule = {rule: [ci for ci in candidates if matches(rule, device, ci)] for rule in RULES}
    if len(by_rule["serial_number"]) > 1:
        ids = tuple(sorted(ci.sys_id for ci in by_rule["serial_number"]))
        return Decision(
            "conflict",
            rule="serial_number",
            conflicting=ids,
            reason=f"{len(ids)} CIs carry serial number {serial!r}",
        )
    for rule in RULES:
        found = _oldest_first(by_rule[rule])
        if not found:
            continue
        primary = found[0]
        primary_serial = usable_serial(primary.serial_number)
        if rule != "serial_number" and serial and primary_serial and primary_serial != serial:
            return Decision(
                "conflict",
                rule=rule,
                conflicting=(primary.sys_id,),
                reason=f"CI {primary.sys_id} matches by {rule} but has serial number "
                f"{primary_serial!r}, the device reports {serial!r}",
            )
        others = {ci.sys_id: ci for r in RULES for ci in by_rule[r] if ci.sys_id != primary.sys_id}
        clashing = _clashing(serial or primary_serial, others.values())
        if clashing:
            return Decision(
                "conflict",
                rule=rule,
                conflicting=(primary.sys_id, *clashing),
                reason=f"CIs {', '.join(clashing)} share identifiers with {primary.sys_id} "
                "but carry other serial numbers",
            )
        return Decision("update", rule=rule, ci=primary.sys_id, absorbed=tuple(sorted(others)))
    return Decision("insert")


__all__ = ["RULES", "Decision", "RuleName", "ci_addresses", "ci_macs", "identify", "matches"]

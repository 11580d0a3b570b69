"""Who made a device, from its sysObjectID: IANA private enterprise numbers (``enterprises.tsv``)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources

#: sysObjectIDs of vendors' products live under 1.3.6.1.4.1.<enterprise number>.
ENTERPRISES_PREFIX = ".1.3.6.1.4.1."


def enterprise_of(sys_object_id: str | None) -> int | None:
    """The enterprise number in ``sys_object_id`` (``.1.3.6.1.4.1.9.1.617`` -> 9), or None."""
    if not sys_object_id:
        return None
    oid = sys_object_id if sys_object_id.startswith(".") else "." + sys_object_id
    if not oid.startswith(ENTERPRISES_PREFIX):
        return None
    number = oid[len(ENTERPRISES_PREFIX) :].split(".", 1)[0]
    return int(number) if number.isdigit() else None


@cache
def enterprises() -> Mapping[int, str]:
    """The whole table, read once."""
    text = resources.files("midprobe.probes.classify").joinpath("enterprises.tsv").read_text(encoding="utf-8")
    table: dict[int, str] = {}
    for line in text.splitlines():
        number, sep, name = line.partition("\t")
        if sep and number.isdigit():
            table[int(number)] = name
    return table


def enterprise_name(number: int | None) -> str | None:
    """IANA's name for the enterprise ``number`` (None when unknown or reserved)."""
    if number is None or number == 0:
        return None
    return enterprises().get(number)

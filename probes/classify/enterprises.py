"""Who made a device, from its sysObjectID: IANA private enterprise numbers (``enterprises.tsv``)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from midprobe.probes.classify.shipped import read_table

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
    return {int(number): name for number, name in read_table("enterprises.tsv").items() if number.isdigit()}


def enterprise_name(number: int | None) -> str | None:
    """IANA's name for the enterprise ``number`` (None when unknown or reserved)."""
    if number is None or number == 0:
        return None
    return enterprises().get(number)

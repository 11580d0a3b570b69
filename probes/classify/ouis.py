"""Who made a network adapter, from its MAC address: the IEEE's OUI registry (``ouis.tsv``)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from midprobe.probes.classify.shipped import read_table


@cache
def ouis() -> Mapping[str, str]:
    """The whole table (``"00000C"`` -> ``"Cisco Systems, Inc"``), read once."""
    return read_table("ouis.tsv")


def mac_vendor(mac: str | None) -> str | None:
    """The organisation the IEEE assigned ``mac``'s first three octets to; None when unknown, or
    when the MAC is locally administered (randomised, virtual: no vendor's block) or multicast."""
    digits = "".join(c for c in (mac or "") if c not in ":-.").upper()
    if len(digits) != 12 or any(c not in "0123456789ABCDEF" for c in digits):
        return None
    if int(digits[:2], 16) & 0b11:  # locally administered or group address
        return None
    return ouis().get(digits[:6])

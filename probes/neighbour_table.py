"""The kernel's neighbour-table overflow counters (``/proc/net/stat/arp_cache``, ``ndisc_cache``).

When the table is full the kernel refuses new entries: sends fail with ``ENOBUFS`` or a probe waits
for a neighbour that is never resolved and is dropped, so a live host looks down. Reading the counter
before and after a scan tells whether that happened during it. The files are readable in any network
namespace; the counts are the machine's (the table's limit is shared by every namespace).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["LIMIT_SYSCTL", "OverflowCounts", "overflowed_since", "parse_neighbour_stat", "read_overflows"]

#: The sysctl that holds each table's hard limit (what to raise after an overflow).
LIMIT_SYSCTL = {
    "arp_cache": "net.ipv4.neigh.default.gc_thresh3",
    "ndisc_cache": "net.ipv6.neigh.default.gc_thresh3",
}
_STAT = Path("/proc/net/stat")


@dataclass(frozen=True)
class OverflowCounts:
    """Times each table was full (``table_fulls``, summed over CPUs), by table name."""

    by_table: dict[str, int]


def parse_neighbour_stat(text: str) -> int | None:
    """The ``table_fulls`` total in one ``/proc/net/stat/*_cache`` file (pure); ``None`` if absent.

    The file is a header of column names, then one row of hexadecimal counters per CPU.
    """
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines or "table_fulls" not in lines[0]:
        return None
    column = lines[0].index("table_fulls")
    total = 0
    for row in lines[1:]:
        if len(row) <= column:
            return None
        try:
            total += int(row[column], 16)
        except ValueError:
            return None
    return total


def read_overflows(directory: Path = _STAT) -> OverflowCounts:
    """The overflow counters now; a table whose file cannot be read is left out."""
    counts: dict[str, int] = {}
    for name in LIMIT_SYSCTL:
        try:
            text = (directory / name).read_text()
        except OSError:
            continue
        value = parse_neighbour_stat(text)
        if value is not None:
            counts[name] = value
    return OverflowCounts(counts)


def overflowed_since(before: OverflowCounts, after: OverflowCounts) -> tuple[str, ...]:
    """The sysctls of the tables that overflowed between two readings (to name in a report)."""
    return tuple(
        LIMIT_SYSCTL[name]
        for name, count in after.by_table.items()
        if count > before.by_table.get(name, count)
    )

"""The kernel's neighbour tables (ARP, IPv6 ND), which every network namespace shares.

A lab's hosts each take neighbour entries, and so does every address a scan tries. The limit
(``gc_thresh3``) counts the entries of all namespaces together, so a large scan in one lab can fill
the table for every lab: the kernel then refuses new entries (``ENOBUFS``, "neighbor table
overflow") and live hosts look down. ``midprobe lab status`` reads ``ip -s ntable show`` to say so.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from midprobe.probes.neighbour_table import LIMIT_SYSCTL

__all__ = ["NeighbourTable", "neighbour_report", "parse_ntables", "read_ntables"]

#: Share of the limit from which the table counts as nearly full.
NEARLY_FULL = 0.9


@dataclass(frozen=True)
class NeighbourTable:
    """One table's size, limit and overflow count (``table_fulls``, since boot)."""

    name: str
    entries: int
    limit: int
    overflows: int

    @property
    def nearly_full(self) -> bool:
        return self.entries >= NEARLY_FULL * self.limit


def _number(block: str, key: str) -> int | None:
    match = re.search(rf"\b{key} (\d+)\b", block)
    return int(match.group(1)) if match else None


def parse_ntables(text: str) -> tuple[NeighbourTable, ...]:
    """The tables in ``ip -s ntable show`` output (pure); the per-device blocks are skipped."""
    tables: list[NeighbourTable] = []
    for block in re.split(r"\n\s*\n", text):
        header = block.strip().split("\n", 1)[0].split()
        if len(header) != 2:
            continue
        entries, limit, overflows = (_number(block, key) for key in ("entries", "thresh3", "table_fulls"))
        if entries is None or limit is None or overflows is None:
            continue  # a "dev ..." block: per-device parameters, no counts
        tables.append(NeighbourTable(header[1], entries, limit, overflows))
    return tuple(tables)


def read_ntables(timeout: float = 10.0) -> tuple[NeighbourTable, ...] | None:
    """The machine's neighbour tables, ``None`` when ``ip`` cannot tell."""
    try:
        done = subprocess.run(
            ["ip", "-s", "ntable", "show"], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_ntables(done.stdout) if done.returncode == 0 else None


def neighbour_report(tables: tuple[NeighbourTable, ...] | None) -> list[str]:
    """Lines for ``lab status``: the tables' use, then a warning per table that overflowed or nearly."""
    if tables is None:
        return ["neighbour tables: unknown (`ip -s ntable show` failed)"]
    use = ", ".join(f"{t.name} {t.entries} of {t.limit} entries" for t in tables)
    lines = [f"neighbour tables (shared by every lab): {use}"]
    for table in tables:
        sysctl = LIMIT_SYSCTL.get(table.name, "gc_thresh3")
        if table.overflows:
            lines.append(
                f"warning: the kernel's {table.name} overflowed {table.overflows} time(s) since boot "
                f"({sysctl} = {table.limit}): new neighbour entries were refused (ENOBUFS), so scans in "
                "any lab may have seen live hosts as down; raise the limit or scan fewer addresses at once"
            )
        elif table.nearly_full:
            lines.append(
                f"warning: the kernel's {table.name} is nearly full ({table.entries} of {sysctl} = "
                f"{table.limit}): a larger scan in any lab will see live hosts as down"
            )
    return lines

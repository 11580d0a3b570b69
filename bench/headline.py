"""A benchmark's headline figures: printed, and collected by ``run_all.py`` for the README's table.

Each ``bench_*.py`` calls :func:`headline` once per row it stands behind (midprobe's time, the
reference tool's, the ratio, the goal). Run alone, a benchmark only prints the line; under
``run_all.py`` (``make bench``) the row is also appended, as one JSON object per line, to the
file named by ``MIDPROBE_BENCH_HEADLINES``, from which ``run_all.py --readme`` rewrites the
README's performance table. So the README's figures are ``make bench`` output, never typed.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

HEADLINES_ENV = "MIDPROBE_BENCH_HEADLINES"


@dataclass(frozen=True)
class Headline:
    """One row of the performance table."""

    #: What was measured, as the table's first column says it (the row's key).
    benchmark: str
    #: midprobe's figure, e.g. ``1.10 s`` or ``1,744 records/s``.
    midprobe: str
    #: The reference tool and its figure, e.g. ``nmap -sT -T5: 1.90 s``.
    reference: str
    #: Above 1: midprobe is faster (or does more per second).
    ratio: float
    #: The goal for ``ratio``, if the project set one.
    target: float | None = None
    #: Whether both tools found the same thing (ports, hosts, varbinds, outputs), when checked.
    same_results: bool | None = None

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.ratio >= self.target

    def line(self) -> str:
        goal = "" if self.target is None else f" (target {self.target:g}x: {'met' if self.met else 'MISSED'})"
        same = "" if self.same_results is None else f"; same results: {'yes' if self.same_results else 'NO'}"
        return (
            f"headline: {self.benchmark}: {self.midprobe} vs {self.reference} = {self.ratio:.2f}x{goal}{same}"
        )


def headline(
    benchmark: str,
    midprobe: str,
    reference: str,
    ratio: float,
    *,
    target: float | None = None,
    same_results: bool | None = None,
) -> Headline:
    """Print the row and, under ``run_all.py``, record it."""
    row = Headline(benchmark, midprobe, reference, ratio, target, same_results)
    print(row.line(), flush=True)
    path = os.environ.get(HEADLINES_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(row)) + "\n")
    return row


def read_headlines(path: str) -> list[Headline]:
    """The rows recorded in ``path`` (the last one wins for a benchmark recorded twice)."""
    rows: dict[str, Headline] = {}
    try:
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    row = Headline(**json.loads(line))
                    rows[row.benchmark] = row
    except FileNotFoundError:
        return []
    return list(rows.values())

"""Run every ``bench/bench_*.py`` in turn (one at a time: they share the machine) and summarise.

Each benchmark prints its own times and ratios; this prints a header before each and, at the
end, the headline rows (``bench/headline.py``: midprobe, the reference, the ratio, the goal and
whether it is met) and which benchmarks failed (a non-zero exit, e.g. result sets that differ).
Exit status 1 if any did. With ``--readme FILE`` the rows replace those of the same name in the
table between FILE's ``<!-- bench:start -->`` and ``<!-- bench:end -->`` markers (``make bench``
does this to README.md; a run of every benchmark rewrites the whole table), so the README's
figures are this script's output. Benchmarks in ``OPT_IN`` (too long for ``make bench``'s 15 minutes)
run only when named.
Usage: .venv/bin/python bench/run_all.py [--readme README.md] [NAME ...]   (NAME: ``sweep`` for bench_sweep.py)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from headline import HEADLINES_ENV, Headline, read_headlines

BENCH = Path(__file__).resolve().parent
TIMEOUT_SECONDS = 1800
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
COLUMNS = ("benchmark", "midprobe", "reference", "ratio", "target")
#: Run only when named (``run_all.py scale``): the routed /16 scans alone take minutes.
OPT_IN = frozenset({"bench_scale.py"})


def _cells(row: Headline) -> tuple[str, ...]:
    target = "" if row.target is None else f"{row.target:g}x ({'met' if row.met else 'missed'})"
    same = "" if row.same_results in (None, True) else " (results differ)"
    return (row.benchmark, row.midprobe, row.reference, f"{row.ratio:.2f}x{same}", target)


def summary(rows: list[Headline]) -> str:
    widths = [max(len(c) for c in column) for column in zip(COLUMNS, *map(_cells, rows), strict=True)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
        for cells in (COLUMNS, *map(_cells, rows))
    ]
    return "\n".join(line.rstrip() for line in lines)


def update_readme(path: Path, rows: list[Headline], *, whole: bool) -> None:
    """Replace the table rows named like ``rows`` (append new ones); the other rows stay, unless
    ``whole`` (every benchmark ran): then the table is exactly ``rows``."""
    text = path.read_text(encoding="utf-8")
    if START not in text or END not in text:
        sys.exit(f"run_all: {path} has no {START} ... {END} markers around its performance table")
    head, rest = text.split(START, 1)
    table, tail = rest.split(END, 1)
    kept: dict[str, str] = {}
    for line in table.splitlines() if not whole else ():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] not in ("benchmark", "") and not set(cells[0]) <= {"-"}:
            kept[cells[0]] = line
    for row in rows:
        kept[row.benchmark] = "| " + " | ".join(_cells(row)) + " |"
    body = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS), *kept.values()]
    path.write_text(f"{head}{START}\n" + "\n".join(body) + f"\n{END}{tail}", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="only these benchmarks (bench_NAME.py)")
    parser.add_argument("--readme", type=Path, default=None, help="rewrite this file's performance table")
    args = parser.parse_args()
    scripts = sorted(BENCH.glob("bench_*.py"))
    if args.names:
        wanted = {f"bench_{name.removeprefix('bench_').removesuffix('.py')}.py" for name in args.names}
        unknown = wanted - {script.name for script in scripts}
        if unknown:
            sys.exit(f"run_all: no such benchmark: {', '.join(sorted(unknown))}")
        scripts = [script for script in scripts if script.name in wanted]
    else:
        scripts = [script for script in scripts if script.name not in OPT_IN]
    failed: list[str] = []
    descriptor, recorded = tempfile.mkstemp(prefix="midprobe-bench-", suffix=".jsonl")
    os.close(descriptor)
    environment = {**os.environ, HEADLINES_ENV: recorded}
    for script in scripts:
        print(f"\n=== {script.name} ===", flush=True)
        started = time.perf_counter()
        try:
            done = subprocess.run(
                [sys.executable, str(script)], check=False, timeout=TIMEOUT_SECONDS, env=environment
            )
            status = done.returncode
        except subprocess.TimeoutExpired:
            print(f"{script.name}: ran past {TIMEOUT_SECONDS} s, stopped")
            status = -1
        print(f"--- {script.name}: exit {status} after {time.perf_counter() - started:.1f} s", flush=True)
        if status != 0:
            failed.append(script.name)
    rows = read_headlines(recorded)
    os.unlink(recorded)
    print(f"\nheadlines (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs):")
    print(summary(rows) if rows else "none recorded")
    if args.readme is not None and rows:
        update_readme(args.readme, rows, whole=not args.names)
        print(f"{args.readme}: {len(rows)} rows of the performance table rewritten")
    print(f"\n{len(scripts) - len(failed)} of {len(scripts)} benchmarks succeeded")
    if failed:
        print(f"failed: {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()

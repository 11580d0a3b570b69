"""Run every ``bench/bench_*.py`` in turn (one at a time: they share the machine) and summarise.

Each benchmark prints its own times and ratios; this prints a header before each and, at the
end, which ones failed (a non-zero exit, e.g. result sets that differ). Exit status 1 if any did.
Usage: .venv/bin/python bench/run_all.py [NAME ...]   (NAME: e.g. ``sweep`` for bench_sweep.py)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
TIMEOUT_SECONDS = 1800


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="only these benchmarks (bench_NAME.py)")
    args = parser.parse_args()
    scripts = sorted(BENCH.glob("bench_*.py"))
    if args.names:
        wanted = {f"bench_{name.removeprefix('bench_').removesuffix('.py')}.py" for name in args.names}
        unknown = wanted - {script.name for script in scripts}
        if unknown:
            sys.exit(f"run_all: no such benchmark: {', '.join(sorted(unknown))}")
        scripts = [script for script in scripts if script.name in wanted]
    failed: list[str] = []
    for script in scripts:
        print(f"\n=== {script.name} ===", flush=True)
        started = time.perf_counter()
        try:
            done = subprocess.run([sys.executable, str(script)], check=False, timeout=TIMEOUT_SECONDS)
            status = done.returncode
        except subprocess.TimeoutExpired:
            print(f"{script.name}: ran past {TIMEOUT_SECONDS} s, stopped")
            status = -1
        print(f"--- {script.name}: exit {status} after {time.perf_counter() - started:.1f} s", flush=True)
        if status != 0:
            failed.append(script.name)
    print(f"\n{len(scripts) - len(failed)} of {len(scripts)} benchmarks succeeded")
    if failed:
        print(f"failed: {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()

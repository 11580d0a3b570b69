"""Classification report on the zoo: snmpsim-data's recordings, each classified by SNMPClassify.

Brings up fixtures/lab/zoo.toml, serves the recordings rules may use (runner/lab/zoo.py) with
snmpsim inside the lab, each at its own address of 198.18.1.0/24 with the community ``public``,
classifies each through the real probe from the scanner namespace and prints address, class,
vendor and model per recording, a confusion table per folder and the share right.
Run: ``make classify-report`` (root: the lab needs network namespaces).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence

from midprobe.runner.lab.zoo_classify import Verdict, run_zoo, share_right

GOAL = 0.95


def _short(ci_class: str | None) -> str:
    return (ci_class or "-").removeprefix("cmdb_ci_")


def report(verdicts: Sequence[Verdict]) -> str:
    """The report's text (pure)."""
    lines = [f"{'recording':58} {'address':12} {'expected':15} {'got':15} {'vendor':28} {'model':18} ok"]
    for v in verdicts:
        mark = "" if v.expected is None else ("yes" if v.right else "NO")
        lines.append(
            f"{v.path:58} {v.address:12} {_short(v.expected):15} {_short(v.ci_class):15} "
            f"{(v.vendor or '-')[:28]:28} {(v.model or '-')[:18]:18} {mark}"
        )
        if v.error:
            lines.append(f"    error: {v.error}")
        elif v.expected is not None and not v.right:
            lines.append(f"    decided by: {v.evidence} ({v.confidence:.2f})")
    lines.append("")
    folders = sorted({v.path.rsplit("/", 1)[0] for v in verdicts})
    for folder in folders:
        inside = [v for v in verdicts if v.path.rsplit("/", 1)[0] == folder and v.expected is not None]
        if not inside:
            continue
        confusion = Counter((_short(v.expected), _short(v.ci_class)) for v in inside)
        right, scored = share_right(inside)
        cells = ", ".join(f"{e} -> {g}: {n}" for (e, g), n in sorted(confusion.items()))
        lines.append(f"{folder:22} {right}/{scored}  {cells}")
    right, scored = share_right(verdicts)
    share = right / scored if scored else 0.0
    lines.append("")
    lines.append(f"right: {right}/{scored} = {share:.1%} (goal {GOAL:.0%})")
    return "\n".join(lines)


def main() -> int:
    verdicts = run_zoo()
    print(report(verdicts))
    right, scored = share_right(verdicts)
    return 0 if scored and right / scored >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())

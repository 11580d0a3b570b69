"""The repository stands alone: no code, doc or fixture points at files outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: A path out of the repository, or the names of the source documents it was written from.
OUTSIDE = re.compile(r"\.\./shared|(?<![\w-])(ECC|LAB|STYLE)\.md")


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [
        ROOT / name for name in listed.split() if name.endswith((".py", ".md", ".toml", "Makefile", ".txt"))
    ]


def test_nothing_points_outside_the_repository() -> None:
    offenders = []
    for path in tracked_text_files():
        if path == Path(__file__).resolve():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert offenders == []


def test_the_pattern_catches_both_forms() -> None:
    assert OUTSIDE.search("see ../shared/LAB.md")
    assert OUTSIDE.search("(ECC.md section 4)")
    assert not OUTSIDE.search("docs/ecc-reference.md section 4")

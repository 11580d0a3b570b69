"""SNMPClassify against the zoo: real-device recordings served by snmpsim inside a lab namespace."""

from __future__ import annotations

import pytest

from midprobe.runner.lab.zoo import load_expected, run_zoo, share_right

pytestmark = pytest.mark.lab

FLOOR = 57 / 61


@pytest.mark.timeout(1200)
def test_the_zoo_half_rules_may_see_is_classified_right() -> None:
    pytest.importorskip("snmpsim_data")
    verdicts = run_zoo()
    assert {v.path for v in verdicts} >= set(load_expected())
    assert not [v.path for v in verdicts if v.error]
    right, scored = share_right(verdicts)
    wrong = [(v.path, v.expected, v.ci_class) for v in verdicts if v.expected is not None and not v.right]
    # The goal is 95 % (bench/bench_classify.py's GOAL); the rules reach 57/61 today. The four misses
    # are documented in docs/classification.md; this floor stops a regression below today's level.
    assert right / scored >= FLOOR, wrong

"""``probes/params.py``: the ``ReadTracker`` that tells which given parameters a parser never read."""

from __future__ import annotations

from midprobe.probes.params import ReadTracker, parse_bool, parse_int
from midprobe.probes.shazzam import parse_shazzam_params


def test_names_the_parser_never_asked_for_are_unread_in_the_order_given() -> None:
    tracker = ReadTracker({"prot": "22", "retries": "1", "verbose": "yes", "missing_is_fine": ""})
    assert parse_int(tracker, "retries", 2, 0, 10) == 1
    assert parse_bool(tracker, "absent", False) is False
    assert "missing_is_fine" in tracker
    assert tracker.unread() == ["prot", "verbose"]
    assert "absent" in tracker.asked


def test_a_parser_that_iterates_has_read_everything() -> None:
    tracker = ReadTracker({"a": "1", "b": "2"})
    assert dict(tracker) == {"a": "1", "b": "2"}
    assert tracker.unread() == []


def test_a_real_parser_reads_its_own_names_through_it() -> None:
    tracker = ReadTracker({"ports": "22", "port": "22"})
    assert parse_shazzam_params("198.18.0.10", tracker).ports == (22,)
    assert tracker.unread() == ["port"]

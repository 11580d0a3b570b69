"""``runner/cli/main.py``: the console script's start-up holds the cyclic collector off while the
command's modules load, then freezes what they allocated and lets it run; a caller's own process
(``main([...])``) keeps its collector as it is."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from midprobe.runner.cli import main

_CONSOLE_SCRIPT = """
import gc, sys
from midprobe.runner.cli import main
entry = sys.modules["midprobe.runner.cli.main"]
seen = []
original = entry._start_up_done
def noted():
    seen.append(gc.isenabled())
    original()
entry._start_up_done = noted
sys.argv = ["midprobe", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print(seen[0], gc.isenabled(), gc.get_freeze_count() > 0)
"""


def test_the_console_script_loads_the_command_with_the_collector_held_then_frozen_and_running() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CONSOLE_SCRIPT, "ecc", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.split()[-3:] == ["False", "True", "True"]


def test_a_caller_of_main_keeps_its_collector() -> None:
    frozen = gc.get_freeze_count()
    with pytest.raises(SystemExit):
        main(["ecc", "--help"])
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen

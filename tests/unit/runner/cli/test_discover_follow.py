"""``discover run --follow``: a live display on a terminal (read back through a pseudo-terminal and a
VT100 emulator), the plain summary lines scripts read everywhere else."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from midprobe.runner.cli.progress import LiveFollower, follower_for
from midprobe.runner.cmdb.database import open_database
from midprobe.runner.discovery.status import StatusStore
from midprobe.runner.queue.url import sqlite_url
from tests.support.terminal import PseudoTerminal

COLUMNS, ROWS = 100, 40


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StatusStore]:
    database = open_database(sqlite_url(tmp_path / "ecc.db"))
    try:
        yield StatusStore(database)
    finally:
        database.close()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _output(store: StatusStore, status: str, phase: str, target: str, topic: str, state: str) -> str:
    sys_id = f"{phase}-{target}-{topic}"
    assert store.plan(status, phase, target, topic, "mid-a", {"sys_id": sys_id}) == sys_id
    if state != "planned":
        store.mark(sys_id, state)  # type: ignore[arg-type]
    return sys_id


def _redrawn(follower: LiveFollower, store: StatusStore, status: str, terminal: PseudoTerminal) -> list[str]:
    """One pass of the display, then the screen."""
    follower.update(store, status)
    terminal.drain()
    return terminal.lines()


def _row(lines: list[str], start: str) -> str:
    matching = [line for line in lines if line.startswith(start)]
    assert len(matching) == 1, (start, lines)
    return matching[0]


def test_the_live_display_shows_phases_devices_errors_and_elapsed_and_ends_with_the_summary(
    store: StatusStore,
) -> None:
    status = store.create("tiny", {}, None)
    store.set_state(status, "Active")
    scan = _output(store, status, "scanning", "198.18.0.0/30", "Shazzam", "queued")
    clock = Clock(1000.0)
    with PseudoTerminal(columns=COLUMNS, rows=ROWS) as terminal:
        console = Console(file=terminal.writer(), width=COLUMNS, height=ROWS)
        with LiveFollower(console, monotonic=clock) as follower:
            clock.now += 3.4
            lines = _redrawn(follower, store, status, terminal)
            assert _row(lines, "tiny ") == "tiny Active  devices 0/0 done  errors 0  elapsed 3s"
            assert _row(lines, "scanning ").endswith(" 0/1 completed")

            store.mark(scan, "completed")
            _output(store, status, "classification", "198.18.0.10", "SSHClassify", "completed")
            second = _output(store, status, "classification", "198.18.0.11", "SSHClassify", "queued")
            store.log(status, "198.18.0.11", "scanning", "alive, open TCP ports: 22")
            print("a line from elsewhere, on stderr", file=sys.stderr)
            clock.now += 62.0
            lines = _redrawn(follower, store, status, terminal)
            assert _row(lines, "tiny ") == "tiny Active  devices 1/2 done  errors 0  elapsed 1m05s"
            assert _row(lines, "scanning ").endswith(" 1/1 completed")
            assert _row(lines, "classification ").endswith(" 1/2 completed")
            # Printed while the display runs: each on a line of its own, above the display.
            log_row = lines.index("198.18.0.11  scanning  alive, open TCP ports: 22")
            assert lines.index("tiny Active  devices 1/2 done  errors 0  elapsed 1m05s") > log_row
            assert "a line from elsewhere, on stderr" in lines

            store.mark(second, "error")
            store.set_state(status, "Completed")
            follower.finish(store, status)
        terminal.drain()
        lines = terminal.lines()
    assert _row(lines, "tiny ") == "tiny Completed  devices 2/2 done  errors 1  elapsed 1m05s"
    assert _row(lines, "classification ").endswith(" 1/2 completed 1 errors")
    # The display stays as last drawn; the summary follows on its own line, the last one.
    assert lines[-1] == "Completed: scanning 1/1; classification 1/2, 1 errors"
    assert lines[-2].startswith("exploration ")
    assert len([line for line in lines if line.startswith("tiny ")]) == 1  # redrawn in place, not repeated


def test_the_bar_fills_with_the_finished_share_of_a_phase(store: StatusStore) -> None:
    status = store.create("tiny", {}, None)
    for index in range(4):
        state = "completed" if index < 2 else "queued"
        _output(store, status, "classification", f"198.18.0.{10 + index}", "SSHClassify", state)
    with PseudoTerminal(columns=COLUMNS, rows=ROWS) as terminal:
        console = Console(file=terminal.writer(), width=COLUMNS, height=ROWS, color_system="truecolor")
        with LiveFollower(console) as follower:
            lines = _redrawn(follower, store, status, terminal)
            row = next(y for y, line in enumerate(lines) if line.startswith("classification "))
            cells = [terminal.screen.buffer[row][x] for x in range(COLUMNS)]
    bar = [cell for cell in cells if cell.data in "━╸╺"]
    assert len(bar) == 30
    colours = [cell.fg for cell in bar]
    # Half finished: the first 15 cells in the "complete" colour, the other 15 in the background one.
    assert len(set(colours[:15])) == 1
    assert len(set(colours[15:])) == 1
    assert colours[0] != colours[-1]


def test_follow_is_live_only_on_a_terminal_that_can_draw(tmp_path: Path) -> None:
    with PseudoTerminal() as terminal:
        assert isinstance(follower_for(follow=True, console=Console(file=terminal.writer())), LiveFollower)
        dumb = Console(file=terminal.writer(), force_terminal=True, _environ={"TERM": "dumb"})
        assert not isinstance(follower_for(follow=True, console=dumb), LiveFollower)
        assert not isinstance(
            follower_for(follow=False, console=Console(file=terminal.writer())), LiveFollower
        )
    with (tmp_path / "out.txt").open("w") as not_a_terminal:
        assert not isinstance(follower_for(follow=True, console=Console(file=not_a_terminal)), LiveFollower)


# -- the real command: a schedule no MID can scan (no agent registered, so no traffic at all) ----------------


def _schedule(tmp_path: Path) -> Path:
    schedule = tmp_path / "tiny.toml"
    schedule.write_text('name = "tiny"\nranges = ["198.18.0.0/30"]\nports = "22"\n', encoding="utf-8")
    return schedule


def _command(tmp_path: Path, *extra: str) -> list[str]:
    url = sqlite_url(tmp_path / "ecc.db")
    return [
        sys.executable,
        "-m",
        "midprobe.runner",
        "discover",
        "run",
        str(_schedule(tmp_path)),
        "--queue",
        url,
        *extra,
    ]


def test_on_a_terminal_follow_draws_the_display_and_prints_the_summary_below_it(tmp_path: Path) -> None:
    with PseudoTerminal(columns=COLUMNS, rows=ROWS) as terminal:
        code = terminal.run(_command(tmp_path, "--follow"), env={"TERM": "xterm-256color"})
        lines = terminal.lines()
    assert code == 0
    assert len(lines[0]) == 32  # the status id, alone on the first line
    assert set(lines[0]) <= set("0123456789abcdef")
    assert lines[1].startswith("198.18.0.0/30  scanning  batch 1 not scanned: no MID may run Shazzam")
    header = _row(lines, "tiny ")
    # No MID could take the batch: none of its 4 addresses was decided.
    assert header.startswith("tiny Completed  addresses 0/4  devices 0/0 done  errors 0  elapsed ")
    for phase in ("scanning", "classification", "identification", "exploration"):
        assert _row(lines, f"{phase} ").endswith(" 0/0 completed")
    assert lines[-1] == "Completed: nothing started"
    assert lines[-2].startswith("exploration ")


def test_a_dumb_terminal_gets_the_plain_lines(tmp_path: Path) -> None:
    with PseudoTerminal(columns=COLUMNS, rows=ROWS) as terminal:
        code = terminal.run(_command(tmp_path, "--follow"), env={"TERM": "dumb"})
        lines = terminal.lines()
    assert code == 0
    assert lines[1:] == ["Completed: nothing started"]


@pytest.mark.parametrize("follow", [True, False])
def test_without_a_terminal_the_output_is_the_status_id_and_summary_lines(
    tmp_path: Path, follow: bool
) -> None:
    done = subprocess.run(
        _command(tmp_path, *(["--follow"] if follow else [])),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout) == 33  # the status id and a line break
    assert done.stdout.endswith("\n")
    assert done.stderr == "Completed: nothing started\n"


def test_discover_status_says_how_many_of_the_addresses_were_decided(tmp_path: Path) -> None:
    run = subprocess.run(_command(tmp_path), capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    url = sqlite_url(tmp_path / "ecc.db")
    status = subprocess.run(
        [sys.executable, "-m", "midprobe.runner", "discover", "status", run.stdout.strip(), "--queue", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert status.returncode == 0, status.stderr
    # No MID could take the one batch: the schedule's 4 addresses, none decided.
    assert status.stdout.splitlines()[2] == "addresses: 0 of 4 decided, 0 alive"

"""``midprobe discover run --local --lab --follow`` on a terminal, over one lab host: the live display
counts the phases and the device, prints the device log above itself and leaves the summary below."""

from __future__ import annotations

import sys
from pathlib import Path

from midprobe.runner.lab import Lab
from midprobe.runner.lab.credentials_file import lab_credentials_toml
from midprobe.runner.queue.url import sqlite_url
from tests.support.terminal import PseudoTerminal

COLUMNS, ROWS = 160, 60


def test_follow_on_a_terminal_shows_the_discovery_of_one_host(lab: Lab, tmp_path: Path) -> None:
    (tmp_path / "creds.toml").write_text(lab_credentials_toml(lab), encoding="utf-8")
    linux = lab.host("linux1").address
    schedule = tmp_path / "one.toml"
    schedule.write_text(
        f'name = "one"\nranges = ["{linux}/32"]\ncredentials = "creds.toml"\nports = "22"\nbehaviour = ["ssh"]\n',
        encoding="utf-8",
    )
    argv = [
        *("ip", "netns", "exec", lab.scanner_namespace, sys.executable, "-m", "midprobe.runner"),
        *("discover", "run", str(schedule), "--queue", sqlite_url(tmp_path / "ecc.db")),
        *("--local", "--lab", "--follow"),
    ]
    with PseudoTerminal(columns=COLUMNS, rows=ROWS) as terminal:
        code = terminal.run(argv, env={"TERM": "xterm-256color"}, timeout=180)
        lines = terminal.lines()
    assert code == 0, "\n".join(lines)
    headers = [line for line in lines if line.startswith("one ")]
    assert len(headers) == 1, lines  # redrawn in place
    # Its one address decided, one device done.
    assert headers[0].startswith("one Completed  addresses 1/1  devices 1/1 done  errors 0  elapsed "), lines
    rows = {line.split()[0]: line for line in lines[lines.index(headers[0]) + 1 : -1]}
    assert rows["scanning"].endswith(" 1/1 completed"), lines
    assert rows["classification"].endswith(" 1/1 completed"), lines
    # The device log went above the display, one entry a line.
    above = lines[: lines.index(headers[0])]
    assert f"{linux}  scanning  alive, open TCP ports: 22" in above, lines
    # The summary is the last line, on its own, as scripts read it without a terminal.
    assert lines[-1].startswith("Completed: scanning 1/1; classification 1/1"), lines
    for secret in lab.credentials.secrets():
        assert all(secret not in line for line in lines)

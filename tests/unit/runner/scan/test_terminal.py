"""``midprobe scan``'s table on a real terminal (a pseudo-terminal): rows print above the progress bar.

The table writer and the progress display run for real in a child process whose stdout and stderr
are a pty; the reports are made up (no scan: nothing is sent). What reached the terminal must have
every row, and the summary, on a line of its own, never glued to the bar's text.
"""

from __future__ import annotations

import sys
import textwrap

from tests.support.terminal import PseudoTerminal

_CHILD = textwrap.dedent(
    """
    from midprobe.runner.scan.pipeline import ScanStats
    from midprobe.runner.scan.render import ProgressDisplay, ScanHeader, make_writer
    from midprobe.runner.scan.report import HostReport

    header = ScanHeader(targets="198.18.0.0/24", ports="22,80", engine="connect", addresses=256)
    reports = REPORTS  # in finish order
    with ProgressDisplay(256) as progress:
        assert progress.enabled, "stderr is a terminal: the bar must be drawn"
        writer = make_writer("table", None, console=progress.console)
        writer.begin(header)
        stats = ScanStats(engine="connect")
        for report in reports:
            stats.scanned += STEP
            stats.alive += 1
            progress.update(stats)
            progress.refresh()
            writer.write(report)
        writer.end(stats)
    """
)

_LINUX_HOSTS = """[
    HostReport(
        address=f"198.18.0.{number}",
        hostname=f"host{number}.sandiego.lab.example.test",
        open_tcp_ports=(22, 80),
        banners={22: "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10", 80: "Apache/2.4.62 (Debian)"},
        ci_class="cmdb_ci_linux_server",
        confidence=0.7,
        evidence=("SSH banner of a Linux distribution: SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10",),
        engine="connect",
    )
    for number in (15, 9, 120, 10)
]"""


def _table_on_terminal(reports: str, *, step: int, columns: int) -> list[str]:
    """The screen after a child wrote ``reports`` (Python source) as a table under a live bar."""
    child = _CHILD.replace("REPORTS", textwrap.indent(reports, "    ").strip()).replace("STEP", str(step))
    with PseudoTerminal(columns=columns, rows=30) as terminal:
        code = terminal.run([sys.executable, "-c", child], env={"TERM": "xterm-256color"})
        lines = terminal.lines()
    assert code == 0, lines
    return lines


def test_table_rows_and_summary_print_above_the_progress_bar() -> None:
    reports = (
        '[HostReport(address=f"198.18.0.{n}", open_tcp_ports=(22,), engine="connect") for n in range(10, 16)]'
    )
    lines = _table_on_terminal(reports, step=40, columns=160)
    assert lines[0].startswith("ADDRESS "), lines
    assert [line.split()[0] for line in lines[1:7]] == [f"198.18.0.{number}" for number in range(10, 16)]
    assert lines[7].startswith("6 host(s) up, 240 addresses scanned in "), lines
    assert len(lines) == 8, "the bar is gone when the scan ends"


def test_on_an_80_column_terminal_rows_are_sorted_and_never_wrap() -> None:
    lines = _table_on_terminal(_LINUX_HOSTS, step=60, columns=80)
    rows = [line for line in lines if line[:1].isdigit() and "host(s) up" not in line]
    assert [row.split()[0] for row in rows] == ["198.18.0.9", "198.18.0.10", "198.18.0.15", "198.18.0.120"]
    for row in rows:
        # one screen line a host: the verdict whole, the long columns cut with an ellipsis
        assert "cmdb_ci_linux_server (0.70)" in row, lines
        assert "…" in row, lines
    first_row = lines.index(rows[0])  # the header above may take two lines (its words wrap)
    services = [line.split()[:2] for line in lines[first_row:] if line.startswith(" ")]
    assert services == [["80", "http"]] * 4, lines
    assert lines[-1].startswith("4 host(s) up, 240 addresses scanned in "), lines

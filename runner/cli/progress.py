"""What ``discover run`` shows while a discovery runs: a live display on a terminal, summary lines elsewhere.

On a terminal (``--follow``, stderr a terminal) one rich ``Live`` display redraws the phases
(started, completed, errors), the devices done, the errors and the time elapsed; every other line
printed meanwhile (the device log, warnings) goes through that display's console, above it, so
nothing is glued to the bar. Anywhere else the output is the plain summary lines scripts read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

import click
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from midprobe.runner.cli.text import printable
from midprobe.runner.discovery.status import PHASES, AddressCounts, DiscoveryStatus, PhaseCounts

#: Width of one phase's bar, in characters.
BAR_WIDTH = 30


def summary(status: DiscoveryStatus) -> str:
    """``Active: scanning 1/1; classification 0/2, 1 errors``: the line scripts read."""
    parts = []
    for phase, counts in phase_counts(status):
        if counts.started:
            errors = f", {counts.error} errors" if counts.error else ""
            parts.append(f"{phase} {counts.completed}/{counts.started}{errors}")
    return f"{status.state}: " + ("; ".join(parts) if parts else "nothing started")


def addresses_text(counts: AddressCounts) -> str:
    """``addresses: 1,024 of 65,536 decided, 1,023 alive, 1 incomplete`` (how far scanning got)."""
    return f"addresses: {counts.describe()}"


def phase_counts(status: DiscoveryStatus) -> list[tuple[str, PhaseCounts]]:
    """Every phase of ``status``: the known ones in their order, then any other it counts."""
    known = [(phase, status.phases.get(phase, PhaseCounts())) for phase in PHASES]
    others = sorted((phase, counts) for phase, counts in status.phases.items() if phase not in PHASES)
    return known + others


def elapsed_text(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m03s``."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@dataclass(frozen=True)
class FollowView:
    """One snapshot of a running discovery, as the live display draws it."""

    status: DiscoveryStatus
    devices: int
    devices_done: int
    elapsed_seconds: float

    @property
    def errors(self) -> int:
        return sum(counts.error for counts in self.status.phases.values())


def render(view: FollowView) -> RenderableType:
    """The live display: a header line, then one bar per phase."""
    status = view.status
    header = Text.assemble(
        (printable(status.name), "bold"),
        f" {status.state}",
        f"  addresses {status.addresses.decided:,}/{status.addresses.total:,}"
        if status.addresses.total
        else "",
        f"  devices {view.devices_done}/{view.devices} done",
        ("  errors ", ""),
        (str(view.errors), "red" if view.errors else ""),
        f"  elapsed {elapsed_text(view.elapsed_seconds)}",
    )
    table = Table.grid(padding=(0, 1))
    for _ in range(4):
        table.add_column()
    for phase, counts in phase_counts(status):
        finished = counts.completed + counts.error
        bar = ProgressBar(total=max(counts.started, 1), completed=finished, width=BAR_WIDTH)
        errors = Text(f"{counts.error} errors", style="red") if counts.error else Text("")
        table.add_row(phase, bar, f"{counts.completed}/{counts.started} completed", errors)
    return Group(header, table)


class StatusReader(Protocol):
    """Where a follower reads a discovery's status: the status store, or an instance's API."""

    def get(self, reference: str) -> DiscoveryStatus: ...

    def device_log(self, status: str) -> list[dict[str, str]]: ...

    def device_counts(self, status: str) -> tuple[int, int]: ...


class Follower(Protocol):
    """Shows a discovery's progress; ``update`` after every orchestrator pass, ``finish`` once at the end."""

    def __enter__(self) -> Follower: ...

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None: ...

    def update(self, store: StatusReader, status_id: str) -> None: ...

    def finish(self, store: StatusReader, status_id: str) -> None: ...


class LineFollower:
    """Plain lines on stderr: with ``follow`` each new summary line, without it only the last one."""

    def __init__(self, *, follow: bool) -> None:
        self._follow = follow
        self._shown = ""

    def __enter__(self) -> LineFollower:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        return None

    def update(self, store: StatusReader, status_id: str) -> None:
        if not self._follow:
            return
        line = summary(store.get(status_id))
        if line != self._shown:
            click.echo(line, err=True)
            self._shown = line

    def finish(self, store: StatusReader, status_id: str) -> None:
        if self._follow:
            self.update(store, status_id)
        else:
            click.echo(summary(store.get(status_id)), err=True)


class LiveFollower:
    """The live display on ``console``; the device log is printed above it as it grows.

    After the last redraw the display stops where it is and the final summary line follows it.
    """

    def __init__(self, console: Console, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._console = console
        self._monotonic = monotonic
        self._started = monotonic()
        self._logged = 0
        # Redraws happen on ``update`` only: no refresh thread, so what is drawn is what was read.
        self._live = Live(console=console, auto_refresh=False, redirect_stdout=True, redirect_stderr=True)

    def __enter__(self) -> LiveFollower:
        self._live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._live.stop()

    def view(self, store: StatusReader, status_id: str) -> FollowView:
        devices, done = store.device_counts(status_id)
        elapsed = self._monotonic() - self._started
        return FollowView(store.get(status_id), devices, done, elapsed)

    def update(self, store: StatusReader, status_id: str) -> None:
        log = store.device_log(status_id)
        for entry in log[self._logged :]:
            # Through the live display's console, so the line lands above the display, never on it.
            line = f"{entry['device']}  {entry['phase']}  {entry['message']}"
            self._live.console.print(Text(printable(line)), soft_wrap=True)
        self._logged = len(log)
        self._live.update(render(self.view(store, status_id)), refresh=True)

    def finish(self, store: StatusReader, status_id: str) -> None:
        self.update(store, status_id)
        self._live.stop()
        self._console.print(Text(summary(store.get(status_id))), soft_wrap=True)


def follower_for(*, follow: bool, console: Console | None = None) -> Follower:
    """The live display when following on a terminal, else plain lines."""
    if follow:
        console = console if console is not None else Console(stderr=True)
        if console.is_terminal and not console.is_dumb_terminal:
            return LiveFollower(console)
    return LineFollower(follow=follow)


__all__ = [
    "FollowView",
    "Follower",
    "LineFollower",
    "LiveFollower",
    "addresses_text",
    "elapsed_text",
    "follower_for",
    "phase_counts",
    "render",
    "summary",
]

"""A congestion window for probe engines (TCP SYN, TCP connect, ICMP sweep), as nmap's is.

Pure: the engines tell it what happened (answers came, probes were lost, the kernel refused a
send) and ask how many probes may be out; time comes from an injected clock. The window grows
while answers come (by one per answer up to the slow-start threshold, then by about one per
window's worth of answers) and shrinks when they stop: a loss halves it and sets the threshold to
half of what was in flight, at most once per ``hold`` seconds (one loss event per round trip,
however many probes of one burst timed out). Losses are then recovered by the engines' own
retransmissions, sent through the smaller window, rather than by a fixed rate.

What counts as a loss is the engine's call; all three use nmap's signal: an answer to a
retransmission (the first probe or its answer was lost on the way), and a send the kernel refused
(ENOBUFS, no socket or buffer). A probe nobody ever answers is not one: a filtered port or a
silent address is no sign of congestion, and must not slow the scan of the others. So while no
answer comes the window stays where it is (it grows only with answers), and the retransmissions
that do get answered shrink it. The engines start it open (``initial`` at its maximum), so a scan
with no loss runs as wide as before; slow start is then the climb back after a cut.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from midprobe.capabilities.errors import ProbeParameterError

__all__ = ["CongestionWindow", "WindowSettings"]


@dataclass(frozen=True)
class WindowSettings:
    """Bounds of a window, in probes out at once."""

    #: Where it starts (slow start from here).
    initial: int = 256
    #: It never shrinks below this (nmap's low_cwnd): a scan always makes progress.
    minimum: int = 32
    #: It never grows past this (the engine's own cap: sockets, buffers).
    maximum: int = 4096
    #: Seconds after a cut during which further losses do not cut again (about one round trip).
    hold: float = 0.1

    def __post_init__(self) -> None:
        if not 1 <= self.minimum <= self.maximum:
            raise ProbeParameterError("must be between 1 and the maximum", parameter="minimum")
        if not self.minimum <= self.initial <= self.maximum:
            raise ProbeParameterError("must be between the minimum and the maximum", parameter="initial")
        if not 0.0 <= self.hold <= 60.0:
            raise ProbeParameterError("must be between 0 and 60 s", parameter="hold")


class CongestionWindow:
    """How many probes may be out at once; see the module's description."""

    __slots__ = ("_clock", "_cut_at", "cuts", "cwnd", "settings", "ssthresh")

    def __init__(
        self, settings: WindowSettings | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings or WindowSettings()
        self._clock = clock
        self.cwnd = float(self.settings.initial)
        self.ssthresh = float(self.settings.maximum)
        self._cut_at: float | None = None
        #: Times the window was cut (for a scan's statistics and for tests).
        self.cuts = 0

    @property
    def size(self) -> int:
        """Probes that may be out at once now."""
        return int(self.cwnd)

    def room(self, in_flight: int) -> int:
        """How many more probes may go now, with ``in_flight`` out."""
        return max(0, int(self.cwnd) - in_flight)

    def answered(self, count: int = 1) -> None:
        """``count`` probes were answered: grow (slow start below the threshold, then linearly)."""
        if count <= 0:
            return
        maximum = float(self.settings.maximum)
        if self.cwnd < self.ssthresh:
            below = min(float(count), self.ssthresh - self.cwnd)
            self.cwnd += below
            count -= int(below)
        if count > 0:
            self.cwnd += count / self.cwnd
        self.cwnd = min(self.cwnd, maximum)

    def lost(self, in_flight: int) -> bool:
        """Probes were lost (or a send refused) with ``in_flight`` out: halve the window, unless it
        was cut less than ``hold`` seconds ago. ``True`` when this cut it."""
        now = self._clock()
        if self._cut_at is not None and now - self._cut_at < self.settings.hold:
            return False
        self._cut_at = now
        minimum = float(self.settings.minimum)
        self.ssthresh = max(minimum, min(self.cwnd, float(in_flight)) / 2)
        self.cwnd = max(minimum, self.cwnd / 2)
        self.cuts += 1
        return True

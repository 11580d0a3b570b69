"""What the sweep engines share: their options, the answers they collect and the tally they return."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from midprobe.probes.congestion import CongestionWindow, WindowSettings
from midprobe.probes.targets import Target
from midprobe.probes.tcpscan.common import RateLimiter

__all__ = ["Answer", "EngineOptions", "Method", "Tally", "TokenGate", "WindowGate", "run_workers"]

#: How an address was found alive (the names the result uses).
Method = Literal["arp", "icmp", "tcp-connect"]


@dataclass(frozen=True)
class EngineOptions:
    """How hard and how long an engine may try. Times are seconds."""

    #: The wait for an answer to one attempt, and the ceiling of the adaptive timeout.
    wait: float
    #: Attempts after the first one for an address nobody answered.
    retries: int
    #: Probes per second (packets or connection attempts); ``None`` = no limit.
    rate: float | None
    #: ``time.monotonic()`` value at which the engine stops, answered or not.
    deadline: float
    #: Floor of the adaptive per-attempt timeout once round-trip times are known.
    min_wait: float = 0.1
    #: Addresses waiting for an answer at once (bounds memory on huge ranges).
    max_pending: int = 65536
    #: Connection attempts open at once (the TCP engine).
    max_sockets: int = 4096


@dataclass(frozen=True)
class Answer:
    """One address that answered."""

    target: Target
    method: Method
    rtt_ms: float
    #: The hardware address, when ARP answered.
    mac: str | None = None
    #: The TCP port that answered, and how (``open`` or ``refused``), for ``tcp-connect``.
    port: int | None = None
    port_state: str | None = None


@dataclass
class Tally:
    """What an engine did (mutable while it runs; the probe freezes it into its result)."""

    alive: list[Answer] = field(default_factory=list)
    #: Addresses the network reported unreachable (ICMP error, no neighbour, no route).
    unreachable: int = 0
    #: Addresses that never answered any attempt.
    silent: int = 0
    #: Addresses given up because the kernel kept refusing their requests (ENOBUFS: neighbour table
    #: or send buffer full), with why: not known to be down.
    incomplete: list[tuple[Target, str]] = field(default_factory=list)
    #: Probes sent (packets, or connection attempts).
    sent: int = 0
    #: False when the deadline stopped the engine before every address was decided.
    complete: bool = True

    @property
    def decided(self) -> int:
        return len(self.alive) + self.unreachable + self.silent + len(self.incomplete)


class TokenGate:
    """Paces the probes of concurrent workers to ``rate`` per second (one shared token bucket)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.bucket = RateLimiter(rate)
        self._lock = asyncio.Lock()

    async def take(self, count: int) -> None:
        """Wait until ``count`` probes may go, and spend them."""
        if self.rate is None:
            return
        need = min(count, int(self.bucket.burst))  # a burst smaller than the count: borrow, pay later
        async with self._lock:
            while True:
                allowed = self.bucket.allowance(time.monotonic())
                if allowed >= need:
                    break
                await asyncio.sleep(max(self.bucket.wait(), (need - allowed) / self.rate))
            self.bucket.spend(count)


class WindowGate:
    """Probes out at once for the sweeps whose workers each wait for their own answer (ICMPv6, TCP
    connect), as a congestion window (``probes/congestion.py``) allows: open at ``cap``, halved when a
    retry is answered (the first probe or its answer was lost) or the kernel refuses a send, grown
    back by answers. Silent addresses do not shrink it. A worker takes its probes before it sends
    (``await gate.take(n)``) and gives them back when the attempt is over (:meth:`give_back`)."""

    def __init__(self, cap: int, *, hold: float, clock: Callable[[], float] = time.monotonic) -> None:
        cap = max(1, cap)
        settings = WindowSettings(initial=cap, minimum=min(32, cap), maximum=cap, hold=hold)
        self.window = CongestionWindow(settings, clock)
        self.in_flight = 0
        self._changed = asyncio.Event()

    async def take(self, count: int) -> None:
        """Wait until ``count`` more probes fit in the window (at once when none is out: a probe
        wider than the window still goes, alone), and count them out."""
        while self.in_flight and self.window.room(self.in_flight) < count:
            self._changed.clear()
            await self._changed.wait()
        self.in_flight += count

    def give_back(self, count: int, *, answered: bool, retry: bool) -> None:
        """An attempt of ``count`` probes is over: ``answered`` or not, ``retry`` when it was not the
        address's first (an answer to it means the first was lost: a loss, as nmap counts one)."""
        if answered and retry:
            self.window.lost(self.in_flight)
        self.in_flight -= count
        if answered:
            self.window.answered()
        self._changed.set()

    def refused(self) -> None:
        """The kernel refused a send (its queue or neighbour table is full): a loss."""
        self.window.lost(self.in_flight)


async def run_workers(
    work: Callable[[Target], Awaitable[None]],
    targets: Iterable[Target],
    workers: int,
    options: EngineOptions,
    tally: Tally,
) -> None:
    """``workers`` tasks doing ``work`` on each of ``targets`` in turn (pulled from one iterator, so a
    huge range is never held in memory) until all are done or ``options.deadline`` comes (then
    ``tally.complete`` is False)."""
    feed = iter(targets)

    async def worker(feed: Iterator[Target]) -> None:
        for target in feed:  # a TargetSpec yields each address once
            await work(target)

    tasks = [asyncio.ensure_future(worker(feed)) for _ in range(max(1, workers))]
    try:
        async with asyncio.timeout(max(0.0, options.deadline - time.monotonic())):
            await asyncio.gather(*tasks)
    except TimeoutError:
        tally.complete = False
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

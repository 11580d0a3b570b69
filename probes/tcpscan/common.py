"""What both TCP scan engines share: options, per-host results, RTT timing, rate limiting, host bookkeeping."""

from __future__ import annotations

import errno
import os
import resource
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from midprobe.capabilities.errors import ProbeParameterError
from midprobe.probes.congestion import CongestionWindow, WindowSettings
from midprobe.probes.safety import IPAddress
from midprobe.probes.targets import Target

__all__ = [
    "SEND_RETRY_BUDGET",
    "HostScan",
    "RateLimiter",
    "RttEstimator",
    "ScanEngine",
    "ScanOptions",
    "congestion_window",
    "raise_open_file_limit",
    "send_refused_reason",
]

#: Sends the kernel may refuse for one host ("no buffer space", ``ENOBUFS``/``EAGAIN``/``ENOMEM``:
#: its neighbour table is full, or the send buffer is) before that host is given up as incomplete.
#: Each refusal pauses sending (the SYN engine backs off up to 50 ms: about 0.7 s in all), so a
#: short squeeze is waited out and a lasting one costs a bounded time per host.
SEND_RETRY_BUDGET = 16


def send_refused_reason(refusals: int, error_number: int | None) -> str:
    """Why a host is incomplete: the kernel kept refusing its sends (``HostScan.incomplete``)."""
    code = errno.errorcode.get(error_number or 0, "ENOBUFS")
    text = os.strerror(error_number) if error_number else "No buffer space available"
    return (
        f"the kernel refused {refusals} sends ({code}: {text}): its neighbour table was full or it "
        "had no buffer space, so some ports were never probed"
    )


@dataclass(frozen=True)
class ScanOptions:
    """How hard and how long a scan may try. Times are seconds."""

    #: First per-attempt wait, and the ceiling of the adaptive timeout (GenericTCP "connect wait").
    connect_wait: float = 1.0
    #: Floor of the adaptive timeout once round-trip times are known (nmap's min-rtt-timeout).
    min_timeout: float = 0.1
    #: Retransmissions of a probe nobody answered (0 = send once).
    retries: int = 2
    #: Probes (SYNs or connect attempts) per second; ``None`` = as fast as the machine goes.
    rate: float | None = None
    #: Probes waiting for an answer at once (sockets, for the connect engine).
    max_in_flight: int = 4096
    #: ``time.monotonic()`` value after which the scan stops with ``ProbeTimeout``.
    deadline: float | None = None

    def __post_init__(self) -> None:
        if not 0.001 <= self.connect_wait <= 60.0:
            raise ProbeParameterError("must be between 1 ms and 60 s", parameter="connect_wait")
        if not 0.0 < self.min_timeout <= self.connect_wait:
            raise ProbeParameterError("must be positive and at most connect_wait", parameter="min_timeout")
        if not 0 <= self.retries <= 10:
            raise ProbeParameterError("must be between 0 and 10", parameter="retries")
        if self.rate is not None and not self.rate > 0:
            raise ProbeParameterError("must be a positive number of probes per second", parameter="rate")
        if not 1 <= self.max_in_flight <= 1_000_000:
            raise ProbeParameterError("must be between 1 and 1000000", parameter="max_in_flight")


@dataclass(frozen=True)
class HostScan:
    """What one engine learned about one address."""

    address: IPAddress
    host_name: str | None
    open_ports: tuple[int, ...]
    refused_ports: tuple[int, ...]
    #: Ports that never answered (filtered, or the host is down).
    unanswered: int
    #: The network reported the host unreachable (ICMP or no neighbour).
    unreachable: bool
    #: Name of the engine that scanned it (``connect`` or ``syn``).
    engine: str
    #: Why some of its ports were never decided (the kernel kept refusing the sends); ``None`` when
    #: every port was. An incomplete host is not "down": nothing is known of the ports not probed,
    #: which are in none of the counts above.
    incomplete: str | None = None

    @property
    def alive(self) -> bool:
        """Something answered (a port open or refused)."""
        return bool(self.open_ports or self.refused_ports)

    @property
    def active(self) -> bool:
        """At least one port is open."""
        return bool(self.open_ports)


class ScanEngine(Protocol):
    """A TCP port scanner. ``scan`` runs in the calling thread and yields each host as it finishes."""

    @property
    def name(self) -> str: ...

    def scan(
        self,
        targets: Iterable[Target],
        ports: Sequence[int],
        options: ScanOptions,
        *,
        stop: StopFlag | None = None,
    ) -> Generator[HostScan, None, None]: ...


class StopFlag(Protocol):
    """Anything with ``is_set()`` (a ``threading.Event``): set it to end a scan early."""

    def is_set(self) -> bool: ...


class RttEstimator:
    """Round-trip time smoothing as in RFC 6298 (and nmap): timeout = srtt + 4 * rttvar, clamped."""

    __slots__ = ("ceiling", "floor", "initial", "rttvar", "samples", "srtt")

    def __init__(self, initial: float, floor: float, ceiling: float) -> None:
        self.initial = initial
        self.floor = floor
        self.ceiling = ceiling
        self.srtt = 0.0
        self.rttvar = 0.0
        self.samples = 0

    def sample(self, rtt: float) -> None:
        if self.samples == 0:
            self.srtt = rtt
            self.rttvar = rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.samples += 1

    def timeout(self) -> float:
        if self.samples == 0:
            return self.initial
        return min(self.ceiling, max(self.floor, self.srtt + 4 * self.rttvar))


def congestion_window(
    options: ScanOptions, cap: int | None = None, clock: Callable[[], float] = time.monotonic
) -> CongestionWindow:
    """An engine's congestion window, between 32 probes out and ``cap`` (default ``max_in_flight``).

    It starts open, at ``cap``: only losses cut it (a probe nobody answers is not one, so a scan
    of silent addresses keeps its full width), and answers grow it back, in slow start up to half
    of what was out at the loss. Losses within ``min_timeout`` of a cut (one round trip's) cut once.
    """
    cap = max(1, options.max_in_flight if cap is None else cap)
    settings = WindowSettings(initial=cap, minimum=min(32, cap), maximum=cap, hold=options.min_timeout)
    return CongestionWindow(settings, clock)


class RateLimiter:
    """A token bucket: ``rate`` probes per second with bursts of at most ``burst``."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(
        self, rate: float | None, burst: int = 64, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = float(max(1, burst if rate is None else min(burst, max(1, int(rate / 20)))))
        self.tokens = self.burst
        self.stamp = clock()

    def allowance(self, now: float) -> int:
        """How many probes may go now (a large number when unlimited)."""
        if self.rate is None:
            return 1 << 30
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return int(self.tokens)

    def spend(self, count: int) -> None:
        if self.rate is not None:
            self.tokens -= count

    def wait(self) -> float:
        """Seconds until the next probe may go."""
        if self.rate is None or self.tokens >= 1:
            return 0.0
        return (1 - self.tokens) / self.rate


@dataclass(eq=False)
class HostState:
    """Mutable bookkeeping for one host while its probes are out (engine-internal)."""

    target: Target
    ip: str
    pending: int
    timing: RttEstimator
    open_ports: list[int] = field(default_factory=list)
    refused_ports: list[int] = field(default_factory=list)
    unanswered: int = 0
    unreachable: bool = False
    #: The host answered faster than we could look (loopback): timeouts go to the floor.
    instant: bool = False
    #: Its result has been handed out.
    finished: bool = False
    #: Sends the kernel refused (ENOBUFS and the like), and why it was given up once over budget.
    send_refusals: int = 0
    incomplete: str | None = None

    def refused_send(self, error_number: int | None, budget: int) -> bool:
        """Count one send the kernel refused; ``True`` (and ``incomplete`` set) once over ``budget``."""
        self.send_refusals += 1
        if self.send_refusals <= budget:
            return False
        self.incomplete = send_refused_reason(self.send_refusals, error_number)
        return True

    def give_up(self, current: HostState | None, cursor: int, port_count: int) -> int:
        """Settle the refused probe of a host given up and, when it is the host being sent
        (``current``), its ports not sent yet; returns the feed's new cursor."""
        undecided = 1
        if self is current and cursor < port_count:
            undecided += port_count - cursor
            cursor = port_count
        self.pending -= undecided
        return cursor

    def timeout(self, fallback: RttEstimator) -> float:
        if self.timing.samples:
            return self.timing.timeout()
        if self.instant:
            return self.timing.floor
        return fallback.timeout()

    def result(self, engine: str) -> HostScan:
        return HostScan(
            address=self.target.address,
            host_name=self.target.host_name,
            open_ports=tuple(sorted(self.open_ports)),
            refused_ports=tuple(sorted(self.refused_ports)),
            unanswered=self.unanswered,
            unreachable=self.unreachable,
            engine=engine,
            incomplete=self.incomplete,
        )


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (a connect scan holds thousands of sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return soft
    return hard

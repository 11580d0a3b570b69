"""Choosing a TCP scan engine (SYN when raw sockets work, else connect) and running it from a thread,
or from asyncio through the one bounded bridge (``scan_async``: the engine in a child process when it
may run apart, ``probes/tcpscan/child.py``)."""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import AsyncGenerator, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from midprobe.capabilities.errors import NetworkError, ProbeParameterError
from midprobe.probes.targets import Target
from midprobe.probes.tcpscan.child import ChildScan, separable
from midprobe.probes.tcpscan.common import HostScan, ScanEngine, ScanOptions, StopFlag
from midprobe.probes.tcpscan.syn import SynScanner, raw_sockets_allowed

__all__ = ["DEFAULT_QUEUE_SIZE", "ENGINE_CHOICES", "scan", "scan_async", "select_engine"]

#: What a caller may ask for: ``auto`` picks ``syn`` when raw sockets are allowed, else ``connect``.
ENGINE_CHOICES: Final = ("auto", "syn", "connect")


def _connect_scanner() -> ScanEngine:
    """The unprivileged engine, its module loaded only for a scan that uses it."""
    from midprobe.probes.tcpscan.connect import ConnectScanner

    return ConnectScanner()


def select_engine(choice: str = "auto") -> ScanEngine:
    """The engine for ``choice``; asking for ``syn`` without raw-socket rights is an error."""
    if choice == "connect":
        return _connect_scanner()
    if choice == "syn":
        if not raw_sockets_allowed():
            raise NetworkError("engine 'syn' needs raw sockets (root or CAP_NET_RAW); use engine 'connect'")
        return SynScanner()
    if choice == "auto":
        return SynScanner() if raw_sockets_allowed() else _connect_scanner()
    raise ProbeParameterError(f"unknown engine {choice!r} (choose auto, syn or connect)", parameter="engine")


def scan(
    targets: Iterable[Target],
    ports: Sequence[int],
    options: ScanOptions | None = None,
    *,
    engine: str | ScanEngine = "auto",
    stop: StopFlag | None = None,
) -> Generator[HostScan, None, None]:
    """Scan in the calling thread; each host is yielded as soon as all its ports are decided."""
    chosen = select_engine(engine) if isinstance(engine, str) else engine
    return chosen.scan(targets, ports, options or ScanOptions(), stop=stop)


#: Finished hosts the scan thread may hand over before it waits for the consumer to take one.
DEFAULT_QUEUE_SIZE: Final = 1024
#: How often (seconds) a scan thread waiting for room looks whether it was told to stop.
_STOP_POLL = 0.2


@dataclass(frozen=True)
class _Finished:
    """The end of the stream, with the error that ended the scan (if any)."""

    error: BaseException | None = None


async def scan_async(
    targets: Iterable[Target],
    ports: Sequence[int],
    options: ScanOptions | None = None,
    *,
    engine: str | ScanEngine = "auto",
    queue_size: int = DEFAULT_QUEUE_SIZE,
    thread_name: str | None = None,
) -> AsyncGenerator[HostScan, None]:
    """Scan from a worker thread and yield hosts into the event loop as they finish.

    This is the one bridge from an engine to asyncio (Shazzam and ``midprobe scan`` use it). An
    engine that may run apart (``separable``: the real engines) runs in a child process the worker
    forks and reads (``probes/tcpscan/child.py``), so its sends and reads do not wait for the
    interpreter lock while this process encodes and reports; any other engine runs on the worker
    itself. At most ``queue_size`` finished hosts wait for the consumer; then the engine waits too,
    so the scan runs at the consumer's pace and a /16 never piles up in memory. The worker is
    started from the calling thread, so it (and the child) is in that thread's network namespace.
    Leaving the ``async for`` early (or cancelling) stops the scan, closes its sockets (ends the
    child) and waits for the thread to end.
    """
    if queue_size < 1:
        raise ValueError("queue_size must be at least 1")
    chosen = select_engine(engine) if isinstance(engine, str) else engine
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[HostScan | _Finished] = asyncio.Queue()  # bounded by ``room``
    room = threading.Semaphore(queue_size)
    stop = threading.Event()
    # Hosts handed over and not yet in ``queue``: the loop is woken once for all that come while it
    # is busy (a wake-up per host costs the scan thread a pipe write and the loop an epoll round,
    # and each fights for the interpreter lock: about a tenth of a /18 scan's time).
    handed: collections.deque[HostScan | _Finished] = collections.deque()
    waking = threading.Lock()
    wake_pending = False

    def take_handed() -> None:  # on the loop
        nonlocal wake_pending
        with waking:
            wake_pending = False
            items = list(handed)
            handed.clear()
        for item in items:
            queue.put_nowait(item)

    def deliver(item: HostScan | _Finished) -> bool:
        nonlocal wake_pending
        with waking:
            handed.append(item)
            if wake_pending:
                return True
            wake_pending = True
        try:
            loop.call_soon_threadsafe(take_handed)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            return False
        return True

    def hand_over(host: HostScan) -> bool:
        while not room.acquire(timeout=_STOP_POLL):
            if stop.is_set():
                return False
        return not stop.is_set() and deliver(host)

    given = options or ScanOptions()
    child = ChildScan(chosen, targets, ports, given) if separable(chosen) else None

    def work() -> None:
        try:
            hosts = child.hosts(stop) if child is not None else chosen.scan(targets, ports, given, stop=stop)
        except BaseException as error:  # handed to the consumer, raised there
            deliver(_Finished(error))
            return
        outcome = _Finished()
        try:
            for host in hosts:
                if not hand_over(host):
                    return
        except BaseException as error:
            outcome = _Finished(error)
        finally:
            hosts.close()  # closes the engine's sockets now, not when garbage collected
        deliver(outcome)

    name = thread_name or f"midprobe-{chosen.name}-scan"
    worker = threading.Thread(target=work, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = await queue.get()
            if isinstance(item, _Finished):
                if item.error is not None:
                    raise item.error
                return
            room.release()
            yield item
    finally:
        stop.set()
        if child is not None:
            child.end()  # a worker waiting for the child's next host returns
        await asyncio.to_thread(worker.join)

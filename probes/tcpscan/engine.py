"""Choosing a TCP scan engine (SYN when raw sockets work, else connect) and running it from a thread or asyncio."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Generator, Iterable, Sequence
from typing import Final

from midprobe.capabilities.errors import NetworkError, ProbeParameterError
from midprobe.probes.targets import Target
from midprobe.probes.tcpscan.common import HostScan, ScanEngine, ScanOptions, StopFlag
from midprobe.probes.tcpscan.connect import ConnectScanner
from midprobe.probes.tcpscan.syn import SynScanner, raw_sockets_allowed

__all__ = ["ENGINE_CHOICES", "scan", "scan_async", "select_engine"]

#: What a caller may ask for: ``auto`` picks ``syn`` when raw sockets are allowed, else ``connect``.
ENGINE_CHOICES: Final = ("auto", "syn", "connect")


def select_engine(choice: str = "auto") -> ScanEngine:
    """The engine for ``choice``; asking for ``syn`` without raw-socket rights is an error."""
    if choice == "connect":
        return ConnectScanner()
    if choice == "syn":
        if not raw_sockets_allowed():
            raise NetworkError("engine 'syn' needs raw sockets (root or CAP_NET_RAW); use engine 'connect'")
        return SynScanner()
    if choice == "auto":
        return SynScanner() if raw_sockets_allowed() else ConnectScanner()
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


_DONE = object()


async def scan_async(
    targets: Iterable[Target],
    ports: Sequence[int],
    options: ScanOptions | None = None,
    *,
    engine: str | ScanEngine = "auto",
) -> AsyncIterator[HostScan]:
    """Scan on a worker thread and yield hosts into the event loop as they finish.

    The worker is started from the calling thread, so it inherits that thread's network namespace.
    Leaving the ``async for`` early (or cancelling) stops the scan and closes its sockets.
    """
    chosen = select_engine(engine) if isinstance(engine, str) else engine
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    stop = threading.Event()

    def deliver(item: object) -> bool:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            return False
        return True

    def work() -> None:
        outcome: object = _DONE
        hosts = chosen.scan(targets, ports, options or ScanOptions(), stop=stop)
        try:
            for host in hosts:
                if not deliver(host) or stop.is_set():
                    break
        except BaseException as error:  # handed to the consumer, raised there
            outcome = error
        finally:
            hosts.close()  # closes the engine's sockets now, not when garbage collected
        deliver(outcome)

    worker = threading.Thread(target=work, name=f"midprobe-{chosen.name}-scan", daemon=True)
    worker.start()
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, HostScan)
            yield item
    finally:
        stop.set()
        await asyncio.to_thread(worker.join)

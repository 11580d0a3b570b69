"""The bounds of SSH work: connection slots per host and in all, the thread pool, deadlines.

Every paramiko call blocks, so it runs in one bounded thread pool of its own
(``MAX_CONNECTIONS`` threads, the same number as connection slots per event loop), never on
the event loop and never in the loop's default pool: a command may hold its thread for its
whole ``command_timeout``, and the default pool must stay free for the short blocking calls of
the rest of midprobe (queue drivers, python-nmap). Since a connection holds a slot from connect
to close and runs one call at a time, a call holding a slot normally finds a free thread (with
several event loops in one process calls may queue; the wait counts against their deadline).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from midprobe.capabilities.errors import ProbeTimeout, ReadTimeout
from midprobe.probes.concurrency import KeyedLimiter

T = TypeVar("T")

#: At most 7 SSH connections per host, as the MID Server (docs/ssh.md).
MAX_CONNECTIONS_PER_HOST = 7
#: Connections (and so pool threads) in flight per event loop, over all hosts.
MAX_CONNECTIONS = 64
#: Extra time the event loop grants a pool call beyond its own deadline before closing the transport.
GRACE_S = 1.0

_EXECUTOR_LOCK = threading.Lock()
_EXECUTOR: ThreadPoolExecutor | None = None


def executor() -> ThreadPoolExecutor:
    """The SSH thread pool (``MAX_CONNECTIONS`` threads, made on first use, shared by the process)."""
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = ThreadPoolExecutor(max_workers=MAX_CONNECTIONS, thread_name_prefix="midprobe-ssh")
        return _EXECUTOR


class ConnectionLimits:
    """The slots of one event loop: ``MAX_CONNECTIONS_PER_HOST`` per host, ``MAX_CONNECTIONS`` in all."""

    def __init__(self) -> None:
        self.total = asyncio.Semaphore(MAX_CONNECTIONS)
        self.per_host: KeyedLimiter[tuple[str, int]] = KeyedLimiter(MAX_CONNECTIONS_PER_HOST)

    @contextlib.asynccontextmanager
    async def slot(self, host: str, port: int) -> AsyncIterator[None]:
        async with self.per_host.slot((host, port)), self.total:
            yield


_LIMITS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ConnectionLimits] = weakref.WeakKeyDictionary()


def connection_limits() -> ConnectionLimits:
    """The running event loop's ``ConnectionLimits``."""
    loop = asyncio.get_running_loop()
    limits = _LIMITS.get(loop)
    if limits is None:
        limits = _LIMITS[loop] = ConnectionLimits()
    return limits


async def in_pool(function: Callable[[], T], *, what: str, limit: float, abort: Callable[[], None]) -> T:
    """Run blocking ``function`` in the SSH pool; past ``limit`` seconds (+ grace) call ``abort`` and raise.

    ``function`` keeps its own deadlines; ``abort`` (closing the transport) is the backstop
    that unblocks whatever paramiko call would otherwise still be waiting.
    """
    future = asyncio.get_running_loop().run_in_executor(executor(), function)
    try:
        return await asyncio.wait_for(future, limit + GRACE_S)
    except TimeoutError:
        abort()
        raise ReadTimeout(what, limit) from None
    except asyncio.CancelledError:
        abort()
        raise


class Deadline:
    """The probe's absolute deadline; hands out step timeouts cut to it."""

    def __init__(self, deadline: float, total: float) -> None:
        self.deadline = deadline
        self.total = total

    def step(self, limit: float, what: str) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise ProbeTimeout(what, self.total)
        return min(limit, remaining)

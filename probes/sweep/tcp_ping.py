"""TCP-connect "ping": the sweep without raw sockets. Any answer on any port means alive.

Each address gets a connection attempt on every ping port at once; the first port that answers
(connected = ``open``, reset = ``refused``) decides, the others are cancelled. An ICMP error or a
missing neighbour (EHOSTUNREACH) means unreachable; silence is retried. Workers pull addresses
from the target iterator, so a huge range is never held in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import struct
import time
from collections.abc import Iterable, Sequence
from typing import Literal

from midprobe.probes.sweep.common import Answer, EngineOptions, Tally, TokenGate, WindowGate, run_workers
from midprobe.probes.targets import Target
from midprobe.probes.tcpscan.common import raise_open_file_limit

__all__ = ["DEFAULT_PING_PORTS", "TcpPinger"]

#: SSH, HTTP, HTTPS, MS-RPC, SMB, RDP: one of them answers (or resets) on almost every host.
DEFAULT_PING_PORTS: tuple[int, ...] = (22, 80, 443, 135, 445, 3389)

_LINGER_RESET = struct.pack("ii", 1, 0)  # close an accepted connection with RST: no TIME_WAIT
_UNREACHABLE = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN})
_REFUSED = frozenset({errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED})

_Knock = tuple[Literal["open", "refused", "unreachable", "silent"], int, float]


class TcpPinger:
    """One TCP-connect sweep. ``await pinger.run(targets)`` on the loop's thread."""

    def __init__(self, ports: Sequence[int], options: EngineOptions) -> None:
        if not ports:
            raise ValueError("a TCP ping needs at least one port")
        self.ports = tuple(ports)
        self.options = options
        self.tally = Tally()
        self.gate = TokenGate(options.rate)
        limit = raise_open_file_limit()
        self.max_sockets = max(len(self.ports), min(options.max_sockets, limit - 256))
        self.window = WindowGate(self.max_sockets, hold=min(options.min_wait, options.wait))

    async def run(self, targets: Iterable[Target]) -> Tally:
        """Sweep ``targets`` until each is decided or the deadline comes (then ``complete`` is False)."""
        workers = self.max_sockets // len(self.ports)
        await run_workers(self._ping, targets, workers, self.options, self.tally)
        return self.tally

    async def _ping(self, target: Target) -> None:
        for attempt in range(self.options.retries + 1):
            state, port, rtt = await self._knock(target, self.options.wait, retry=attempt > 0)
            if state in ("open", "refused"):
                self.tally.alive.append(
                    Answer(target, "tcp-connect", round(rtt * 1000, 3), port=port, port_state=state)
                )
                return
            if state == "unreachable":
                self.tally.unreachable += 1
                return
        self.tally.silent += 1

    async def _knock(self, target: Target, wait: float, *, retry: bool = False) -> _Knock:
        """One attempt on every port at once; the first decisive answer wins."""
        await self.gate.take(len(self.ports))
        await self.window.take(len(self.ports))
        outcome: _Knock = ("silent", 0, 0.0)
        try:
            outcome = await self._first_answer(target, wait)
        finally:
            self.window.give_back(len(self.ports), answered=outcome[0] in ("open", "refused"), retry=retry)
        return outcome

    async def _first_answer(self, target: Target, wait: float) -> _Knock:
        family = socket.AF_INET if target.address.version == 4 else socket.AF_INET6
        address = str(target.address)
        started = time.monotonic()
        attempts = [asyncio.ensure_future(self._connect(family, address, port)) for port in self.ports]
        self.tally.sent += len(attempts)
        outcome: _Knock = ("silent", 0, 0.0)
        try:
            pending: set[asyncio.Future[_Knock]] = set(attempts)
            deadline = started + wait
            while pending:
                done, pending = await asyncio.wait(
                    pending,
                    timeout=max(0.0, deadline - time.monotonic()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not done:
                    break
                for future in done:
                    state, port, rtt = future.result()
                    if state in ("open", "refused"):
                        return state, port, rtt
                    if state == "unreachable":
                        outcome = (state, port, rtt)
            return outcome
        finally:
            for future in attempts:
                future.cancel()
            await asyncio.gather(*attempts, return_exceptions=True)

    async def _connect(self, family: int, address: str, port: int) -> _Knock:
        loop = asyncio.get_running_loop()
        sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        started = time.monotonic()
        try:
            await loop.sock_connect(sock, (address, port))
        except OSError as error:
            if error.errno in _REFUSED:
                return "refused", port, time.monotonic() - started
            if error.errno in _UNREACHABLE:
                return "unreachable", port, time.monotonic() - started
            return "silent", port, time.monotonic() - started
        else:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            return "open", port, time.monotonic() - started
        finally:
            sock.close()

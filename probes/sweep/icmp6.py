"""The IPv6 sweep: ICMPv6 echo on a raw socket, the kernel doing neighbour discovery for on-link addresses.

For an address on a directly attached IPv6 network the kernel first sends a neighbour
solicitation; the echo request goes only when a neighbour advertisement came back, so a
host that answers neither never sees a packet beyond ND. Workers pull addresses from the
target iterator (a /64 is never held in memory); each attempt waits ``wait`` seconds for its
echo reply, matched by the echo identifier, sequence number and source address.
Sockets are made on the calling thread, so a thread inside a network namespace sweeps that
namespace.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import random
import socket
import struct
import time
from collections.abc import Callable, Iterable
from functools import partial

from midprobe.capabilities.errors import NetworkError
from midprobe.probes.sweep.common import Answer, EngineOptions, Tally, TokenGate, WindowGate, run_workers
from midprobe.probes.targets import Target
from midprobe.probes.tcpscan.common import SEND_RETRY_BUDGET, send_refused_reason

__all__ = ["Icmp6Pinger", "echo_request", "open_icmp6_socket", "parse_echo_reply"]

_ECHO_REQUEST, _ECHO_REPLY = 128, 129
_HEADER = struct.Struct("!BBHHH")  # type, code, checksum (the kernel fills it in), identifier, sequence
_UNREACHABLE = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN})
_BUSY = frozenset({errno.EAGAIN, errno.ENOBUFS, errno.ENOMEM})  # e.g. too many neighbours unresolved
_BUSY_PAUSE = 0.005
#: Addresses waiting for their echo reply at once, at most: the congestion window's ceiling. Kept
#: under the kernel's default neighbour table size (gc_thresh3, 1,024) for on-link sweeps.
_WORKERS = 256


def echo_request(identifier: int, sequence: int, payload: bytes = b"midprobe") -> bytes:
    """An ICMPv6 echo request with checksum 0: on a raw ICMPv6 socket the kernel computes it."""
    return _HEADER.pack(_ECHO_REQUEST, 0, 0, identifier, sequence) + payload


def parse_echo_reply(data: bytes) -> tuple[int, int] | None:
    """``(identifier, sequence)`` of an ICMPv6 echo reply (a raw socket's datagram), else ``None``."""
    if len(data) < _HEADER.size:
        return None
    kind, code, _, identifier, sequence = _HEADER.unpack_from(data)
    if kind != _ECHO_REPLY or code != 0:
        return None
    return identifier, sequence


def open_icmp6_socket() -> socket.socket:
    """A non-blocking raw ICMPv6 socket."""
    return socket.socket(socket.AF_INET6, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.IPPROTO_ICMPV6)


class Icmp6Pinger:
    """One ICMPv6 echo sweep of IPv6 targets. ``await pinger.run(targets)`` on the loop's thread.

    ``open_socket`` makes the raw socket (a test's may refuse sends as a full kernel does); an
    address whose requests the kernel refuses more than ``send_retry_budget`` times is given up as
    incomplete (``Tally.incomplete``), not counted silent.
    """

    def __init__(
        self,
        options: EngineOptions,
        *,
        open_socket: Callable[[], socket.socket] = open_icmp6_socket,
        send_retry_budget: int = SEND_RETRY_BUDGET,
    ) -> None:
        self.options = options
        self.open_socket = open_socket
        self.send_retry_budget = send_retry_budget
        self.tally = Tally()
        self.gate = TokenGate(options.rate)
        self.window = WindowGate(min(_WORKERS, options.max_pending), hold=min(options.min_wait, options.wait))
        self.identifier = random.SystemRandom().randrange(1 << 16)  # as secrets.randbelow draws it
        self._sequence = 0
        self._waiting: dict[tuple[str, int], asyncio.Future[float]] = {}
        self._unreachable = False

    async def run(self, targets: Iterable[Target]) -> Tally:
        """Sweep ``targets`` until each is decided or the deadline comes (then ``complete`` is False)."""
        try:
            sock = self.open_socket()
        except OSError as error:
            raise NetworkError(f"ICMPv6 socket: {error.strerror}") from error
        loop = asyncio.get_running_loop()
        loop.add_reader(sock.fileno(), self._read, sock)
        try:
            await run_workers(partial(self._ping, sock), targets, _WORKERS, self.options, self.tally)
        finally:
            loop.remove_reader(sock.fileno())
            sock.close()
        return self.tally

    async def _ping(self, sock: socket.socket, target: Target) -> None:
        address = str(target.address)
        loop = asyncio.get_running_loop()
        refused = 0
        for attempt in range(self.options.retries + 1):
            await self.gate.take(1)
            await self.window.take(1)
            self._sequence = (self._sequence + 1) & 0xFFFF
            key = (address, self._sequence)
            answered: asyncio.Future[float] = loop.create_future()
            self._waiting[key] = answered
            started = time.monotonic()
            try:
                while busy := self._send(sock, address):
                    self.window.refused()
                    refused += 1
                    if refused > self.send_retry_budget:  # not down: never asked
                        self.tally.incomplete.append((target, send_refused_reason(refused, busy)))
                        return
                    await asyncio.sleep(_BUSY_PAUSE)  # the kernel signals no event when it has room
                if self._unreachable:
                    self._unreachable = False
                    self.tally.unreachable += 1
                    return
                self.tally.sent += 1
                try:
                    received = await asyncio.wait_for(answered, self.options.wait)
                except TimeoutError:
                    continue
                self.tally.alive.append(Answer(target, "icmp", round((received - started) * 1000, 3)))
                return
            finally:
                self._waiting.pop(key, None)
                self.window.give_back(
                    1, answered=answered.done() and not answered.cancelled(), retry=attempt > 0
                )
        self.tally.silent += 1

    def _send(self, sock: socket.socket, address: str) -> int:
        """Send the echo request; 0 when done, else the errno of a kernel too busy to take it. An
        unreachable address sets ``_unreachable`` (read right after, on the same loop turn)."""
        try:
            sock.sendto(echo_request(self.identifier, self._sequence), (address, 0))
        except OSError as error:
            if error.errno in _BUSY:
                return int(error.errno)
            if error.errno in _UNREACHABLE:
                self._unreachable = True
                return 0
            raise NetworkError(f"{address}: ICMPv6 echo: {error.strerror}") from error
        return 0

    def _read(self, sock: socket.socket) -> None:
        now = time.monotonic()
        while True:
            try:
                data, source = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # an ICMP error queued on the socket: the attempt times out and retries
            echoed = parse_echo_reply(data)
            if echoed is None or echoed[0] != self.identifier:
                continue
            host = str(ipaddress.IPv6Address(str(source[0]).split("%", 1)[0]))
            waiting = self._waiting.get((host, echoed[1]))
            if waiting is not None and not waiting.done():
                waiting.set_result(now)

"""The raw-socket sweep engine: ARP to neighbours, ICMP echo to everything else, on one event loop.

Requests go out in batches under a token-bucket rate; replies are read by ``add_reader`` callbacks
and matched to the waiting address (ICMP by identifier, cookie and echoed address; ARP by sender
address). An address nobody answered is retried with an RTT-based timeout that doubles per
attempt; after the last attempt it is silent. Sockets are made on the calling thread, so a thread
inside a network namespace sweeps that namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import heapq
import os
import random
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial

from midprobe.capabilities.errors import NetworkError, ProbeError
from midprobe.probes.congestion import CongestionWindow, WindowSettings
from midprobe.probes.sweep import packets
from midprobe.probes.sweep.common import Answer, EngineOptions, Method, Tally
from midprobe.probes.sweep.routes import Route, Routing, source_address
from midprobe.probes.targets import Target
from midprobe.probes.tcpscan.common import SEND_RETRY_BUDGET, RateLimiter, RttEstimator, send_refused_reason

__all__ = ["ArpInterface", "RawSweeper", "open_icmp_socket", "raw_sockets_allowed"]

_BATCH = 256  # requests between looks at the clock and the replies
_BUFFER = 4 << 20
_BUSY_PAUSE = 0.005  # after the kernel said "queue full"
_ARPHRD_ETHER = 1
_PACKET_OUTGOING = 4
_TICK = 0.05  # longest sleep of the send loop
# Socket options Python does not name, as numbered on architectures using asm-generic/socket.h:
# SO_SNDBUFFORCE/SO_RCVBUFFORCE let root pass the wmem_max/rmem_max caps (requests to unresolved
# neighbours sit in the send buffer until ARP gives up); SO_TIMESTAMPNS stamps each reply on
# arrival, so its RTT does not include the time we were busy sending.
_GENERIC_MACHINES = frozenset({"x86_64", "amd64", "i386", "i686", "aarch64", "arm64", "riscv64"})
_SO_SNDBUFFORCE = 32
_SO_RCVBUFFORCE = 33
_SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@qq")
_ANCILLARY_SIZE = socket.CMSG_SPACE(_TIMESPEC.size)

# sendto() failures that mean "this address cannot be reached", and "try again in a moment".
_UNREACHABLE = frozenset(
    {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.EACCES, errno.EPERM, errno.EINVAL}
)
_BUSY = frozenset({errno.EAGAIN, errno.ENOBUFS, errno.ENOMEM})


def _tune(sock: socket.socket) -> None:
    """Large send/receive buffers and kernel receive timestamps, where the machine allows."""
    generic = os.uname().machine.lower() in _GENERIC_MACHINES  # platform.machine(), without its import
    for force, plain in ((_SO_SNDBUFFORCE, socket.SO_SNDBUF), (_SO_RCVBUFFORCE, socket.SO_RCVBUF)):
        try:
            if not generic:
                raise OSError
            sock.setsockopt(socket.SOL_SOCKET, force, _BUFFER)
        except OSError:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, plain, _BUFFER)
    if generic:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)


def _received_ns(ancillary: list[tuple[int, int, bytes]]) -> int:
    """The kernel's receive time (``time.time_ns()`` scale), or now when it gave none."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return int(seconds) * 1_000_000_000 + int(nanoseconds)
    return time.time_ns()


def open_icmp_socket() -> socket.socket:
    """A non-blocking raw ICMP socket (``PermissionError`` without root or CAP_NET_RAW)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.IPPROTO_ICMP)
    _tune(sock)
    return sock


def raw_sockets_allowed() -> tuple[bool, str | None]:
    """Whether this thread may open raw sockets; when not, why (for the result's fallback note)."""
    try:
        open_icmp_socket().close()
    except PermissionError:
        return False, "raw sockets are not permitted (needs root or CAP_NET_RAW)"
    except OSError as error:
        return False, f"raw sockets are not available: {error.strerror or error}"
    return True, None


@dataclass(frozen=True)
class ArpInterface:
    """An Ethernet interface we ARP on: its name, hardware address and our address on it."""

    name: str
    mac: bytes
    source: int


def _close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def _open_arp_socket(interface: str) -> tuple[socket.socket, bytes] | None:
    """A packet socket bound to ``interface`` for ARP, and the interface's MAC (None: not Ethernet)."""
    # Protocol 0 until bound: the kernel then hooks the socket up once, at bind, instead of at
    # creation and again at bind (each re-hook waits out an RCU grace period: ~10 ms).
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_NONBLOCK, 0)
    try:
        sock.bind((interface, packets.ETH_P_ARP))
        _, _, _, hardware_type, mac = sock.getsockname()
        if hardware_type != _ARPHRD_ETHER or len(mac) != 6:
            sock.close()
            return None
        _tune(sock)
    except OSError:
        sock.close()
        raise
    return sock, mac


class _Pending:
    """An address waiting for an answer."""

    __slots__ = ("arp", "attempt", "method", "refused", "sent_ns", "target")

    def __init__(self, target: Target, method: Method, arp: ArpInterface | None) -> None:
        self.target = target
        self.method = method
        self.arp = arp
        self.attempt = 0
        #: Requests the kernel refused (ENOBUFS and the like).
        self.refused = 0
        #: ``time.time_ns()`` of the latest request (wall clock, the kernel's timestamp scale).
        self.sent_ns = 0


class RawSweeper:
    """One sweep over raw sockets. Use ``await sweeper.run(targets)`` once, on the loop's thread.

    ``open_icmp`` makes the ICMP socket (a test's may refuse sends as a full kernel does); an address
    whose requests the kernel refuses more than ``send_retry_budget`` times is given up as
    incomplete (``Tally.incomplete``), not counted silent.
    """

    def __init__(
        self,
        routing: Routing,
        options: EngineOptions,
        *,
        use_arp: bool = True,
        arp_only: bool = False,
        open_icmp: Callable[[], socket.socket] = open_icmp_socket,
        send_retry_budget: int = SEND_RETRY_BUDGET,
    ) -> None:
        self.routing = routing
        self.open_icmp = open_icmp
        self.send_retry_budget = send_retry_budget
        self.options = options
        self.use_arp = use_arp or arp_only
        #: ARP was asked for explicitly: a neighbour we cannot ARP for is an error, not a ping.
        self.arp_only = arp_only
        self.tally = Tally()
        # Unguessable, from the system's source as ``secrets`` draws them (without its hmac/hashlib).
        system_random = random.SystemRandom()
        self.identifier = system_random.getrandbits(16)
        self.cookie = system_random.getrandbits(32)
        self.echo_requests = packets.EchoRequests(self.identifier, self.cookie)
        self.pending: dict[int, _Pending] = {}
        self.expiry: list[tuple[float, int, int, int]] = []  # (when, sequence, address, attempt)
        self.retry: deque[int] = deque()
        self.sequence = 0
        self.rate = RateLimiter(options.rate)
        #: Requests out at once: open at ``max_pending`` (silent addresses are no loss), halved on
        #: losses (a retry answered, a send refused), grown back by answers.
        self.window = CongestionWindow(
            WindowSettings(
                initial=options.max_pending,
                minimum=min(32, options.max_pending),
                maximum=options.max_pending,
                hold=min(options.min_wait, options.wait),
            )
        )
        self.timing: dict[Method, RttEstimator] = {
            method: RttEstimator(options.wait, min(options.min_wait, options.wait), options.wait)
            for method in ("arp", "icmp")
        }
        self.icmp: socket.socket | None = None
        self.arp_sockets: dict[str, socket.socket] = {}
        self.arp_interfaces: dict[Route, ArpInterface | None] = {}
        self.methods_used: set[Method] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._readers: list[int] = []
        #: Set when an answer leaves nothing pending: the send loop, waiting on the last answers,
        #: ends at once instead of at its next tick.
        self._all_answered = asyncio.Event()

    # --- planning: which method for which address ------------------------------------------------

    def method_for(self, address: int) -> tuple[Method, ArpInterface | None]:
        """ARP when the address is a neighbour on an Ethernet link (and not our own), else ICMP."""
        if not self.use_arp or address in self.routing.local:
            return "icmp", None
        route = self.routing.route(address)
        if route is None or not route.on_link:
            return "icmp", None
        interface = self._arp_interface(route, address)
        if interface is not None:
            return "arp", interface
        if self.arp_only:
            raise NetworkError(f"cannot ARP on {route.interface} (not Ethernet, or no address of ours on it)")
        return "icmp", None

    def _arp_interface(self, route: Route, address: int) -> ArpInterface | None:
        if route in self.arp_interfaces:
            return self.arp_interfaces[route]
        interface: ArpInterface | None = None
        source = source_address(address)
        if source is not None:
            sock = self.arp_sockets.get(route.interface)
            mac: bytes | None = None
            if sock is None:
                try:
                    opened = _open_arp_socket(route.interface)
                except OSError:
                    opened = None
                if opened is not None:
                    sock, mac = opened
                    self.arp_sockets[route.interface] = sock
                    self._watch(sock, partial(self._read_arp, sock))
            else:
                mac = sock.getsockname()[4]
            if mac is not None:
                interface = ArpInterface(route.interface, mac, source)
        self.arp_interfaces[route] = interface
        return interface

    # --- the run -----------------------------------------------------------------------------------

    async def run(self, targets: Iterable[Target]) -> Tally:
        """Sweep ``targets`` (IPv4 only) until every address is decided or the deadline comes."""
        self._loop = asyncio.get_running_loop()
        try:
            self.icmp = self.open_icmp()
        except PermissionError as error:
            raise ProbeError("raw sockets are not permitted (needs root or CAP_NET_RAW)") from error
        except OSError as error:
            raise NetworkError(f"cannot open a raw ICMP socket: {error.strerror or error}") from error
        self._watch(self.icmp, self._read_icmp)
        try:
            await self._send_loop(iter(targets))
        finally:
            self._close()
        return self.tally

    async def _send_loop(self, feed: Iterator[Target]) -> None:
        options = self.options
        exhausted = False
        while True:
            now = time.monotonic()
            if now >= options.deadline:
                self.tally.complete = exhausted and not self.pending and not self.retry
                return
            self._expire(now)
            busy = False
            budget = min(_BATCH, self.rate.allowance(now))
            if budget > 0 and (self.retry or not exhausted):
                sent, exhausted, busy = self._send(budget, feed, exhausted)
                self.rate.spend(sent)
            if exhausted and not self.pending and not self.retry:
                return
            if busy:
                delay = _BUSY_PAUSE
            elif self.retry or (not exhausted and self.window.room(len(self.pending)) > 0):
                delay = self.rate.wait()
            else:
                delay = self.expiry[0][0] - time.monotonic() if self.expiry else _TICK
            pause = min(max(delay, 0.0), _TICK, max(0.0, options.deadline - time.monotonic()))
            if exhausted and not self.retry:
                # Only answers (or their expiry) end the sweep now: the last answer wakes the loop.
                self._all_answered.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._all_answered.wait(), pause)
            else:
                await asyncio.sleep(pause)

    def _send(self, budget: int, feed: Iterator[Target], exhausted: bool) -> tuple[int, bool, bool]:
        """Send up to ``budget`` requests (retries first); returns (sent, feed exhausted, kernel busy)."""
        sent = 0
        while sent < budget:
            if self.retry:
                address = self.retry.popleft()
                entry = self.pending.get(address)
                if entry is None:
                    continue
                entry.attempt += 1
            else:
                if exhausted or self.window.room(len(self.pending)) <= 0:
                    break
                target = next(feed, None)
                if target is None:
                    exhausted = True
                    break
                if target.address.version != 4:
                    raise ProbeError(f"{target.address}: ARP and ICMP sweeps are IPv4 only (use method=tcp)")
                address = int(target.address)
                if address in self.pending:  # listed twice: one probe is enough
                    continue
                method, arp = self.method_for(address)
                entry = _Pending(target, method, arp)
                self.pending[address] = entry
                self.methods_used.add(method)
            outcome = self._transmit(address, entry)
            if isinstance(outcome, int):  # the kernel's queue is full: this one goes first next time
                self.window.lost(len(self.pending))
                entry.refused += 1
                if entry.refused > self.send_retry_budget:  # not down: never asked
                    del self.pending[address]
                    self.tally.incomplete.append((entry.target, send_refused_reason(entry.refused, outcome)))
                else:
                    entry.attempt -= 1
                    self.retry.appendleft(address)
                self.tally.sent += sent
                return sent, exhausted, True
            if outcome == "unreachable":
                del self.pending[address]
                self.tally.unreachable += 1
                continue
            sent += 1
        self.tally.sent += sent
        return sent, exhausted, False

    def _transmit(self, address: int, entry: _Pending) -> str | int:
        """Send one request: ``sent``, ``unreachable``, or the errno of a kernel too busy to take it."""
        now = time.monotonic()
        sent_ns = time.time_ns()
        try:
            if entry.arp is not None:
                frame = packets.arp_request(entry.arp.mac, entry.arp.source, address)
                self.arp_sockets[entry.arp.name].send(frame)
            else:
                assert self.icmp is not None
                packet = self.echo_requests.build(entry.attempt & 0xFFFF, address, sent_ns)
                # The dotted quad from the integer: a tenth of IPv4Address.__str__'s cost, per request.
                self.icmp.sendto(packet, (socket.inet_ntoa(address.to_bytes(4, "big")), 0))
        except OSError as error:
            if error.errno in _BUSY:
                return int(error.errno)
            if error.errno in _UNREACHABLE or entry.arp is None:
                return "unreachable"
            raise NetworkError(f"cannot send ARP on {entry.arp.name}: {error.strerror or error}") from error
        entry.sent_ns = sent_ns
        timeout = min(self.options.wait, self.timing[entry.method].timeout() * (1 << entry.attempt))
        self.sequence += 1
        heapq.heappush(self.expiry, (now + timeout, self.sequence, address, entry.attempt))
        return "sent"

    def _expire(self, now: float) -> None:
        expiry = self.expiry
        while expiry and expiry[0][0] <= now:
            _, _, address, attempt = heapq.heappop(expiry)
            entry = self.pending.get(address)
            if entry is None or entry.attempt != attempt:
                continue  # answered, or a later attempt is out
            if attempt < self.options.retries:
                self.retry.append(address)
            else:
                del self.pending[address]
                self.tally.silent += 1

    # --- replies -----------------------------------------------------------------------------------

    def _answered(self, address: int, method: Method, rtt: float, mac: bytes | None = None) -> None:
        entry = self.pending.pop(address)
        if not self.pending:
            self._all_answered.set()
        if entry.attempt > 0:  # the answer to a retry: an earlier request (or its answer) was lost
            self.window.lost(len(self.pending) + 1)
        self.window.answered()
        if entry.attempt == 0:
            self.timing[method].sample(rtt)
        self.tally.alive.append(
            Answer(
                target=entry.target,
                method=method,
                rtt_ms=round(rtt * 1000, 3),
                mac=packets.format_mac(mac) if mac is not None else None,
            )
        )

    def _read_icmp(self) -> None:
        assert self.icmp is not None
        for _ in range(4096):
            try:
                data, ancillary, _, _ = self.icmp.recvmsg(2048, _ANCILLARY_SIZE)
            except OSError:  # BlockingIOError: all read
                return
            message = packets.parse_icmp_datagram(data)
            if message is None or message.identifier != self.identifier:
                continue
            if isinstance(message, packets.EchoReply):
                payload = packets.parse_echo_payload(message.payload)
                if payload is None or payload.cookie != self.cookie or payload.target != message.source:
                    continue
                entry = self.pending.get(message.source)
                if entry is not None and entry.method == "icmp":
                    rtt = max(0, _received_ns(ancillary) - payload.sent_ns) / 1e9
                    self._answered(message.source, "icmp", rtt)
            else:
                entry = self.pending.get(message.original_destination)
                if entry is not None and entry.method == "icmp":
                    del self.pending[message.original_destination]
                    self.tally.unreachable += 1
                    if not self.pending:
                        self._all_answered.set()

    def _read_arp(self, sock: socket.socket) -> None:
        for _ in range(4096):
            try:
                frame, ancillary, _, where = sock.recvmsg(128, _ANCILLARY_SIZE)
            except OSError:  # BlockingIOError: all read
                return
            if where[2] == _PACKET_OUTGOING:
                continue
            reply = packets.parse_arp_reply(frame)
            if reply is None:
                continue
            entry = self.pending.get(reply.sender)
            if entry is None or entry.arp is None or entry.arp.source != reply.target:
                continue
            rtt = max(0, _received_ns(ancillary) - entry.sent_ns) / 1e9
            self._answered(reply.sender, "arp", rtt, reply.sender_mac)

    # --- plumbing ----------------------------------------------------------------------------------

    def _watch(self, sock: socket.socket, callback: Callable[[], None]) -> None:
        assert self._loop is not None
        self._loop.add_reader(sock.fileno(), callback)
        self._readers.append(sock.fileno())

    def _close(self) -> None:
        if self._loop is not None:
            for fd in self._readers:
                self._loop.remove_reader(fd)
        self._readers.clear()
        if self.icmp is not None:
            self.icmp.close()
        if self.arp_sockets:
            # Closing a packet socket waits out an RCU grace period (~10 ms each): the sweep's answer
            # need not wait for it, a thread closes them.
            arp = list(self.arp_sockets.values())
            threading.Thread(target=_close_all, args=(arp,), name="midprobe-arp-close", daemon=True).start()
        self.icmp = None
        self.arp_sockets.clear()

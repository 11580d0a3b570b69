"""TCP SYN scanner on raw sockets (root or CAP_NET_RAW): half-open probes, answers matched asynchronously.

The SYN segment is built once per host; each probe patches only the destination port and the checksum
(updated from a precomputed partial sum) and goes out with one ``sendto``. Replies arrive on the same
raw socket, narrowed by a BPF filter to our reserved source port, and are matched statelessly: the
acknowledgement number must be the host's sequence number plus one. SYN/ACK means open, RST refused.
The kernel answers each SYN/ACK with a RST, which closes the half-open connection (as with nmap -sS).
"""

from __future__ import annotations

import array
import contextlib
import errno
import random
import select
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from midprobe.capabilities.errors import NetworkError, ProbeTimeout
from midprobe.probes.checksum import fold, word_sum
from midprobe.probes.congestion import CongestionWindow
from midprobe.probes.targets import Target
from midprobe.probes.tcpscan.common import (
    SEND_RETRY_BUDGET,
    HostScan,
    HostState,
    RateLimiter,
    RttEstimator,
    ScanOptions,
    StopFlag,
    congestion_window,
)

__all__ = [
    "SenderFactory",
    "SynScanner",
    "build_syn_segment",
    "open_raw_sender",
    "raw_sockets_allowed",
    "tcp_checksum",
]

_SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)
_SEND_BUFFER = 32 << 20
_IPV6_CHECKSUM = getattr(socket, "IPV6_CHECKSUM", 7)
_RECEIVE_BUFFER = 32 << 20
_BATCH = 512
_SYN = 0x02
_RST = 0x04
_ACK = 0x10
_WINDOW = 1024
_MSS_OPTION = b"\x02\x04\x05\xb4"  # MSS 1460, as nmap sends
_SYN_ACK = _SYN | _ACK
_HEADER_LENGTH = 24
# source address, then source port, destination port, acknowledgement number, flags
_IPV4_TCP = struct.Struct("!12x4s4xHH4xIxB")
_TCP = struct.Struct("!HH4xIxB")
# The network cannot carry a probe there (EACCES: a broadcast address): no host to answer.
_UNREACHABLE = frozenset(
    {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN, errno.EACCES, errno.EPERM}
)
_RETRY_LATER = frozenset({errno.EAGAIN, errno.ENOBUFS, errno.ENOMEM})

#: Makes the raw socket that sends a family's SYNs (``open_raw_sender``; a test's may refuse sends).
SenderFactory = Callable[[int], socket.socket]


def open_raw_sender(family: int) -> socket.socket:
    """A non-blocking raw TCP socket of ``family`` for sending SYNs."""
    return socket.socket(family, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.IPPROTO_TCP)


def build_syn_segment(source_port: int, destination_port: int, sequence: int) -> bytearray:
    """A 24-byte TCP SYN header (MSS option, checksum zero) to patch per probe."""
    header = struct.pack(
        "!HHIIBBHHH",
        source_port,
        destination_port,
        sequence,
        0,
        (_HEADER_LENGTH // 4) << 4,
        _SYN,
        _WINDOW,
        0,
        0,
    )
    return bytearray(header + _MSS_OPTION)


def tcp_checksum(source: bytes, destination: bytes, segment: bytes) -> int:
    """The TCP checksum of ``segment`` (checksum field zero) over the IPv4 or IPv6 pseudo-header."""
    if len(source) == 4:
        pseudo = source + destination + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(segment))
    else:
        pseudo = source + destination + struct.pack("!IxxxB", len(segment), socket.IPPROTO_TCP)
    return fold(word_sum(pseudo) + word_sum(segment))


def raw_sockets_allowed() -> bool:
    """Whether this process may open raw TCP sockets (root, or CAP_NET_RAW)."""
    try:
        probe = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    except OSError:
        return False
    probe.close()
    return True


def _attach_filter(sock: socket.socket, port: int | None, *, ip_header: bool) -> None:
    """Let only segments to ``port`` reach the socket, or none when ``port`` is None (classic BPF).

    Best effort: the Python-side checks reject foreign segments anyway.
    """
    if port is None:
        program = [(0x06, 0, 0, 0)]  # ret #0
    else:
        program = [
            (0x48, 0, 0, 2),  # ldh [x + 2]    (x = IPv4 header length, or 0)
            (0x15, 0, 1, port),  # jeq #port, accept, drop
            (0x06, 0, 0, 0xFFFF),  # ret #65535
            (0x06, 0, 0, 0),  # ret #0
        ]
        if ip_header:
            program.insert(0, (0xB1, 0, 0, 0))  # ldxb 4 * ([0] & 0xf)
    code = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
    buffer = array.array(
        "B", code
    )  # its address for the sock_fprog, as ctypes would give (without its import)
    fprog = struct.pack("HL", len(program), buffer.buffer_info()[0])
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)


def _large_buffer(sock: socket.socket, options: tuple[int, int], size: int) -> None:
    for option in options:
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, size)
            return
        except OSError:
            continue


@dataclass(eq=False)
class _SynHost(HostState):
    """Host bookkeeping plus what its probes need: packet template, checksum base, probes out."""

    key: bytes = b""
    source: bytes = b""
    sequence: int = 0
    segment: bytearray = field(default_factory=bytearray)
    checksum_base: int = 0
    #: port -> (sent at, attempt) for probes waiting for an answer.
    waiting: dict[int, tuple[float, int]] = field(default_factory=dict)


class SynScanner:
    """The privileged engine: raw-socket SYN scan in the calling thread.

    ``open_sender`` makes the sending sockets (a test's may refuse sends as a full kernel does);
    a host whose sends the kernel refuses more than ``send_retry_budget`` times is given up and
    reported ``incomplete``, the others are scanned on.
    """

    name = "syn"

    def __init__(
        self, open_sender: SenderFactory = open_raw_sender, send_retry_budget: int = SEND_RETRY_BUDGET
    ) -> None:
        self.open_sender = open_sender
        self.send_retry_budget = send_retry_budget

    @property
    def separable(self) -> bool:
        """It may scan in a child process (``probes/tcpscan/child.py``): with its own raw sockets it
        touches nothing of the caller's (a test's sender may count what it is given)."""
        return self.open_sender is open_raw_sender

    def scan(
        self,
        targets: Iterable[Target],
        ports: Sequence[int],
        options: ScanOptions,
        *,
        stop: StopFlag | None = None,
    ) -> Generator[HostScan, None, None]:
        """Scan every port of every target; yield each host once all its ports are decided."""
        run = _SynRun(tuple(ports), options, stop, self.open_sender, self.send_retry_budget)
        try:
            yield from run.loop(iter(targets))
        finally:
            run.close()


class _SynRun:
    """One SYN scan: raw sockets, reserved source port, hosts and probes in flight."""

    def __init__(
        self,
        ports: tuple[int, ...],
        options: ScanOptions,
        stop: StopFlag | None,
        open_sender: SenderFactory = open_raw_sender,
        send_retry_budget: int = SEND_RETRY_BUDGET,
    ) -> None:
        self.ports = ports
        self.open_sender = open_sender
        self.send_retry_budget = send_retry_budget
        self.options = options
        self.stop = stop
        self.timing = RttEstimator(options.connect_wait, options.min_timeout, options.connect_wait)
        self.rate = RateLimiter(options.rate)
        #: Probes out at once: grows while answers come, halves when they stop (losses).
        self.window: CongestionWindow = congestion_window(options)
        self.hosts: dict[bytes, _SynHost] = {}
        #: (expires, host, ports sent together, attempt), in sending order.
        self.expiry: deque[tuple[float, _SynHost, tuple[int, ...], int]] = deque()
        self.retry: deque[tuple[_SynHost, int, int]] = deque()
        self.finished: deque[HostScan] = deque()
        self.in_flight = 0
        self.backoff = 0.0
        self.paused_until = 0.0
        self.targets: Iterator[Target] = iter(())
        self.current: _SynHost | None = None
        self.cursor = 0
        self.started = time.monotonic()
        self.epoll = select.epoll()
        self.raw: dict[int, socket.socket] = {}
        self.senders: dict[tuple[int, bytes], socket.socket] = {}
        self.reservation, self.source_port = self._reserve_port()
        self.buffer = bytearray(4096)
        try:
            self._open_raw(socket.AF_INET)
        except PermissionError as error:
            self.close()
            raise NetworkError(f"the syn engine needs raw sockets (root or CAP_NET_RAW): {error}") from None

    # --- sockets -----------------------------------------------------------------------------------

    @staticmethod
    def _reserve_port() -> tuple[socket.socket, int]:
        """Hold a source port so no other local socket uses it; the kernel RSTs SYN/ACKs to it."""
        try:
            holder = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            holder.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            holder.bind(("::", 0))
        except OSError:
            holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            holder.bind(("0.0.0.0", 0))  # noqa: S104 - reserves a port, never listens
        return holder, int(holder.getsockname()[1])

    def _open_raw(self, family: int) -> None:
        """The receiving raw socket of ``family``, filtered to our source port."""
        receiver = socket.socket(family, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.IPPROTO_TCP)
        self.raw[family] = receiver
        _attach_filter(receiver, self.source_port, ip_header=family == socket.AF_INET)
        _large_buffer(receiver, (_SO_RCVBUFFORCE, socket.SO_RCVBUF), _RECEIVE_BUFFER)
        self.epoll.register(receiver.fileno(), select.EPOLLIN)

    def _sender_for(self, host: _SynHost) -> socket.socket | None:
        """A raw socket connected to ``host`` (a cached route, no address per send), or None.

        One per source address: a connected socket keeps the source address of its first route.
        """
        family = socket.AF_INET if len(host.key) == 4 else socket.AF_INET6
        if family not in self.raw:
            self._open_raw(family)
        sender = self.senders.get((family, host.source))
        if sender is None:
            sender = self.open_sender(family)
            self.senders[family, host.source] = sender
            _attach_filter(sender, None, ip_header=False)  # it only sends: keep its receive queue empty
            # SYNs to a silent neighbour wait (up to ~3 s) for ARP holding send-buffer space.
            _large_buffer(sender, (_SO_SNDBUFFORCE, socket.SO_SNDBUF), _SEND_BUFFER)
            if family == socket.AF_INET6:
                sender.setsockopt(socket.IPPROTO_IPV6, _IPV6_CHECKSUM, 16)
        try:
            sender.connect((host.ip, 0))
        except OSError as error:
            if error.errno not in _UNREACHABLE:
                raise NetworkError(f"cannot send to {host.ip}: {error.strerror or error}") from None
            host.unreachable = True
            return None
        return sender

    # --- hosts -------------------------------------------------------------------------------------

    def _new_host(self, target: Target) -> _SynHost:
        address = target.address
        ip = str(address)
        options = self.options
        host = _SynHost(
            target=target,
            ip=ip,
            pending=len(self.ports),
            timing=RttEstimator(options.connect_wait, options.min_timeout, options.connect_wait),
            key=address.packed,
            sequence=random.getrandbits(32),
        )
        host.segment = build_syn_segment(self.source_port, 0, host.sequence)
        family = socket.AF_INET if address.version == 4 else socket.AF_INET6
        try:
            # A UDP "connect" sends nothing; it asks the routing table for our source address.
            # (A fresh socket each time: a connected one keeps its first source address.)
            with socket.socket(family, socket.SOCK_DGRAM) as route:
                route.connect((ip, 9))
                host.source = socket.inet_pton(family, route.getsockname()[0].partition("%")[0])
        except OSError as error:
            if error.errno in _UNREACHABLE:
                host.unreachable = True
                return host
            raise NetworkError(f"no route to {ip}: {error.strerror or error}") from None
        if family == socket.AF_INET:
            pseudo = host.source + host.key + struct.pack("!BBH", 0, socket.IPPROTO_TCP, _HEADER_LENGTH)
            host.checksum_base = word_sum(pseudo) + word_sum(bytes(host.segment))
        # IPv6: the kernel fills the checksum in (IPV6_CHECKSUM), checksum_base stays 0
        return host

    def _next_host(self) -> _SynHost | None:
        """The host whose ports are sent next, or ``None`` when the targets are exhausted."""
        while self.current is None or self.cursor >= len(self.ports):
            target = next(self.targets, None)
            if target is None:
                return None
            host = self._new_host(target)
            self.current, self.cursor = host, 0
            # Replies are matched by address, so an address already in flight is not scanned twice
            # at once (a TargetSpec never yields one twice; other iterables might).
            if host.key in self.hosts:
                self.cursor = len(self.ports)
                continue
            if host.unreachable or not self.ports:
                host.unanswered = len(self.ports)
                self.cursor = len(self.ports)
                self._finish(host)
                continue
            self.hosts[host.key] = host
        return self.current

    def _finish(self, host: _SynHost) -> None:
        host.finished = True
        if self.hosts.get(host.key) is host:
            del self.hosts[host.key]
        self.finished.append(host.result(SynScanner.name))

    def _decided(self, host: _SynHost) -> None:
        host.pending -= 1
        if host.pending == 0:
            self._finish(host)

    # --- sending -----------------------------------------------------------------------------------

    def _checksum(self, host: _SynHost, port: int) -> None:
        if host.checksum_base:
            struct.pack_into("!H", host.segment, 16, fold(host.checksum_base + port))

    def _send_one(self, host: _SynHost, port: int, attempt: int, now: float) -> bool:
        """Send one probe (the general path, used for retransmissions); ``False`` = try later."""
        if host.incomplete is not None:  # given up: a queued retransmission is not sent
            host.unanswered += 1
            self._decided(host)
            return True
        sender = self._sender_for(host) if not host.unreachable else None
        if sender is None:
            host.unanswered += 1
            self._decided(host)
            return True
        struct.pack_into("!H", host.segment, 2, port)
        self._checksum(host, port)
        try:
            sender.send(host.segment)
        except OSError as error:
            if error.errno in _RETRY_LATER:
                self._refused(host, port, attempt, error, now)
                return False
            if error.errno in _UNREACHABLE:
                host.unreachable = True
            host.unanswered += 1
            self._decided(host)
            return True
        host.waiting[port] = (now, attempt)
        self.in_flight += 1
        timeout = min(self.options.connect_wait, host.timeout(self.timing) * (1 << attempt))
        self.expiry.append((now + timeout, host, (port,), attempt))
        return True

    def _send(self, budget: int) -> tuple[int, bool]:
        """Send up to ``budget`` probes, retransmissions first; returns (sent, targets exhausted)."""
        sent = 0
        now = time.monotonic()
        retry = self.retry
        while retry and sent < budget:
            host, port, attempt = retry.popleft()
            if not self._send_one(host, port, attempt, now):
                return sent, False
            sent += 1
        pack_into = struct.pack_into
        ports = self.ports
        while sent < budget:
            next_host = self._next_host()
            if next_host is None:
                return sent, True
            host = next_host
            # (Re)connect the sender for every chunk: a retransmission may have pointed it elsewhere.
            sender = None if host.unreachable else self._sender_for(host)
            begin = self.cursor
            batch = ports[begin : begin + budget - sent]
            if sender is None:
                self.cursor = len(ports)
                host.unanswered += len(ports) - begin
                host.pending -= len(ports) - begin
                if host.pending == 0:
                    self._finish(host)
                continue
            stamp = (now, 0)
            waiting = host.waiting
            segment = host.segment
            base = host.checksum_base
            send = sender.send
            count = 0
            try:
                # The hot loop: patch the port and the checksum, send, remember.
                for port in batch:
                    pack_into("!H", segment, 2, port)
                    if base:
                        total = base + port
                        total = (total & 0xFFFF) + (total >> 16)
                        total = (total & 0xFFFF) + (total >> 16)
                        pack_into("!H", segment, 16, ~total & 0xFFFF)
                    send(segment)
                    waiting[port] = stamp
                    count += 1
            except OSError as error:
                failed = batch[count]
                self.cursor = begin + count + 1
                self._sent_batch(host, batch[:count], now)
                if error.errno in _RETRY_LATER:
                    self._refused(host, failed, 0, error, now)
                else:
                    if error.errno in _UNREACHABLE:
                        host.unreachable = True
                    host.unanswered += 1
                    self._decided(host)
                return sent + count, False
            self.cursor = begin + count
            self._sent_batch(host, batch, now)
            sent += count
        return sent, False

    def _refused(self, host: _SynHost, port: int, attempt: int, error: OSError, now: float) -> None:
        """The kernel refused a send (ENOBUFS: neighbour table or send buffer full): try the probe
        again after a pause, unless the host is over its budget; then it is given up as incomplete,
        with the ports not sent yet, and the scan goes on with the other hosts."""
        self._back_off(now)
        self.window.lost(self.in_flight)
        if not host.refused_send(error.errno, self.send_retry_budget):
            self.retry.appendleft((host, port, attempt))
            return
        self.cursor = host.give_up(self.current, self.cursor, len(self.ports))
        if host.pending == 0:
            self._finish(host)

    def _back_off(self, now: float) -> None:
        """The send buffer is full (SYNs parked waiting for ARP): pause sending, longer each time."""
        self.backoff = min(0.05, max(0.002, self.backoff * 2))
        self.paused_until = now + self.backoff

    def _sent_batch(self, host: _SynHost, batch: tuple[int, ...], now: float) -> None:
        if batch:
            self.in_flight += len(batch)
            self.expiry.append((now + host.timeout(self.timing), host, batch, 0))

    # --- receiving ---------------------------------------------------------------------------------

    def _drain(self) -> None:
        """Read every segment waiting on the raw sockets and settle the probes they answer."""
        now = time.monotonic()
        buffer = self.buffer
        hosts = self.hosts
        own_port = self.source_port
        answered = 0
        lost = False
        sampled: set[int] = set()
        for family, sock in self.raw.items():
            receive = sock.recv_into if family == socket.AF_INET else None
            receive_from = sock.recvfrom_into
            while True:
                try:
                    if receive is not None:
                        size = receive(buffer)
                    else:
                        size, origin = receive_from(buffer)
                except (BlockingIOError, InterruptedError):
                    break
                if receive is not None:
                    header = (buffer[0] & 0x0F) * 4
                    if size < header + 14:
                        continue
                    if header == 20:
                        key, port, destination, acknowledged, flags = _IPV4_TCP.unpack_from(buffer)
                    else:
                        key = bytes(buffer[12:16])
                        port, destination, acknowledged, flags = _TCP.unpack_from(buffer, header)
                else:
                    if size < 14:
                        continue
                    key = socket.inet_pton(socket.AF_INET6, origin[0].partition("%")[0])
                    port, destination, acknowledged, flags = _TCP.unpack_from(buffer, 0)
                if destination != own_port:
                    continue
                host = hosts.get(key)
                if host is None or acknowledged != (host.sequence + 1) & 0xFFFFFFFF:
                    continue
                probe = host.waiting.pop(port, None)
                if probe is None:  # a duplicate, or an answer after we gave up
                    continue
                if flags & _SYN_ACK == _SYN_ACK:
                    host.open_ports.append(port)
                elif flags & _RST:
                    host.refused_ports.append(port)
                else:
                    host.waiting[port] = probe
                    continue
                answered += 1
                # The answer to a retransmission: an earlier probe (or its answer) was lost.
                lost = lost or probe[1] > 0
                if probe[1] == 0 and id(host) not in sampled:  # one RTT sample per host per read
                    sampled.add(id(host))
                    host.timing.sample(now - probe[0])
                    self.timing.sample(now - probe[0])
                host.pending -= 1
                if host.pending == 0:
                    self._finish(host)
        self.in_flight -= answered
        if lost:
            self.window.lost(self.in_flight + answered)
        self.window.answered(answered)

    def _expire(self, now: float) -> None:
        """Retransmit (or give up on) probes whose batch timed out without an answer."""
        expiry = self.expiry
        retries = self.options.retries
        while expiry and expiry[0][0] <= now:
            _, host, batch, attempt = expiry.popleft()
            waiting = host.waiting
            if not waiting:
                continue
            for port in batch:
                probe = waiting.get(port)
                if probe is None or probe[1] != attempt:
                    continue
                del waiting[port]
                self.in_flight -= 1
                if attempt < retries and not host.unreachable:
                    self.retry.append((host, port, attempt + 1))
                else:
                    host.unanswered += 1
                    self._decided(host)

    # --- the loop ----------------------------------------------------------------------------------

    def loop(self, targets: Iterator[Target]) -> Generator[HostScan, None, None]:
        self.targets = targets
        exhausted = False
        deadline = self.options.deadline
        window = self.window
        while True:
            now = time.monotonic()
            if self.stop is not None and self.stop.is_set():
                return
            if deadline is not None and now >= deadline:
                raise ProbeTimeout("TCP SYN scan", round(deadline - self.started, 3))
            paused = now < self.paused_until
            if (not exhausted or self.retry) and not paused:
                budget = min(_BATCH, window.room(self.in_flight), self.rate.allowance(now))
                if budget > 0:
                    sent, exhausted = self._send(budget)
                    self.rate.spend(sent)
                    if sent and now >= self.paused_until:
                        self.backoff = 0.0
            self._drain()
            self._expire(time.monotonic())
            while self.finished:
                yield self.finished.popleft()
            if exhausted and not self.retry and not self.in_flight:
                return
            if paused or now < self.paused_until:
                wait = self.paused_until - time.monotonic()
            elif (not exhausted or self.retry) and window.room(self.in_flight) > 0:
                wait = self.rate.wait()
            else:
                wait = self.expiry[0][0] - time.monotonic() if self.expiry else 0.0
            wait = min(max(wait, 0.0), 0.05)
            if wait > 0:
                self.epoll.poll(wait, 4)

    def close(self) -> None:
        for sock in (*self.raw.values(), *self.senders.values()):
            sock.close()
        self.raw.clear()
        self.senders.clear()
        self.epoll.close()
        self.reservation.close()

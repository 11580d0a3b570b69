"""TCP connect scanner: non-blocking sockets and one epoll loop in one thread (no privileges needed).

Each probe is a non-blocking ``connect``; a second ``connect`` on the same socket asks the kernel for
the outcome at once (on loopback and fast links the answer is usually already there), otherwise the
socket waits in epoll. A refused socket is reused for the next probe, which halves the system calls
per port. Unanswered probes are retried with an RTT-based timeout; a connection that our own scanner
made to itself (TCP simultaneous open, possible on local addresses) is recognised and not reported.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import select
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from midprobe.capabilities.errors import ProbeTimeout
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
    raise_open_file_limit,
)

__all__ = ["ConnectScanner", "SocketFactory"]

_LINGER_RESET = struct.pack("ii", 1, 0)  # close with RST: no TIME_WAIT left behind per open port
_EPOLL_FLAGS = select.EPOLLOUT | select.EPOLLONESHOT
_BATCH = 1024  # probes between looks at the clock, the stop flag and finished hosts
_POOL_LIMIT = 256
_SOCKET_TYPE = socket.SOCK_STREAM | socket.SOCK_NONBLOCK

# connect() outcomes, grouped by what they mean for the port.
_CONNECTED = frozenset({0, errno.EISCONN})
_REFUSED = frozenset({errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED})
_WAITING = frozenset({errno.EALREADY, errno.EINPROGRESS})
_UNREACHABLE = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN})
_LOCAL_SHORTAGE = frozenset(
    {errno.EADDRNOTAVAIL, errno.EAGAIN, errno.ENOBUFS, errno.EMFILE, errno.ENFILE, errno.ENOMEM}
)
_NO_ANSWER = frozenset({errno.ETIMEDOUT})

#: Makes one probe's socket from (family, type): ``socket.socket``, or a test's that refuses connects.
SocketFactory = Callable[[int, int], socket.socket]


@dataclass(eq=False)
class _ConnectHost(HostState):
    """Host bookkeeping plus the endpoints of successful connects (for the self-connect check)."""

    family: int = socket.AF_INET
    successes: list[tuple[int, tuple[str, int], tuple[str, int]]] = field(default_factory=list)


@dataclass(eq=False)
class _Attempt:
    """One connect waiting in epoll."""

    host: _ConnectHost
    port: int
    sock: socket.socket
    sent: float
    attempt: int
    done: bool = False


class ConnectScanner:
    """The unprivileged engine: ``scan`` runs an epoll loop in the calling thread.

    ``open_socket`` makes the probes' sockets (a test's may refuse connects as a full kernel does);
    a host whose probes fail for want of local resources (ENOBUFS, EAGAIN, EMFILE, ...) more than
    ``send_retry_budget`` times is given up and reported ``incomplete``, the others are scanned on.
    """

    name = "connect"

    def __init__(
        self, open_socket: SocketFactory = socket.socket, send_retry_budget: int = SEND_RETRY_BUDGET
    ) -> None:
        self.open_socket = open_socket
        self.send_retry_budget = send_retry_budget

    @property
    def separable(self) -> bool:
        """It may scan in a child process (``probes/tcpscan/child.py``): with its own sockets it
        touches nothing of the caller's (a test's socket factory may count what it is given)."""
        return self.open_socket is socket.socket

    def scan(
        self,
        targets: Iterable[Target],
        ports: Sequence[int],
        options: ScanOptions,
        *,
        stop: StopFlag | None = None,
    ) -> Generator[HostScan, None, None]:
        """Scan every port of every target; yield each host once all its ports are decided."""
        limit = raise_open_file_limit()
        run = _ConnectRun(
            tuple(ports),
            options,
            stop,
            max_in_flight=min(options.max_in_flight, limit - 128),
            open_socket=self.open_socket,
            send_retry_budget=self.send_retry_budget,
        )
        try:
            yield from run.loop(iter(targets))
        finally:
            run.close()


class _ConnectRun:
    """The state of one scan (kept out of the generator so ``close`` always runs)."""

    def __init__(
        self,
        ports: tuple[int, ...],
        options: ScanOptions,
        stop: StopFlag | None,
        max_in_flight: int,
        open_socket: SocketFactory = socket.socket,
        send_retry_budget: int = SEND_RETRY_BUDGET,
    ) -> None:
        self.ports = ports
        self.open_socket = open_socket
        self.send_retry_budget = send_retry_budget
        self.options = options
        self.stop = stop
        #: Connects out at once: grows while answers come, shrinks on losses and shortages.
        self.window = congestion_window(options, max_in_flight)
        self.epoll = select.epoll()
        self.inflight: dict[int, _Attempt] = {}
        self.expiry: list[tuple[float, int, _Attempt]] = []
        self.sequence = 0
        self.registered: set[int] = set()
        self.pools: dict[int, list[socket.socket]] = {socket.AF_INET: [], socket.AF_INET6: []}
        self.retry: deque[tuple[_ConnectHost, int, int]] = deque()
        self.finished: deque[HostScan] = deque()
        self.timing = RttEstimator(options.connect_wait, options.min_timeout, options.connect_wait)
        self.rate = RateLimiter(options.rate)
        self.shortages = 0
        self.started = time.monotonic()
        self.targets: Iterator[Target] = iter(())
        self.current: _ConnectHost | None = None
        self.cursor = 0

    # --- the feed: hosts created lazily, ports walked with a cursor (host-major order) ---------------

    def _next_host(self) -> _ConnectHost | None:
        """The host whose ports are sent next, or ``None`` when the targets are exhausted."""
        ports = self.ports
        options = self.options
        while self.current is None or self.cursor >= len(ports):
            target = next(self.targets, None)
            if target is None:
                return None
            address = target.address
            host = _ConnectHost(
                target=target,
                ip=str(address),
                pending=len(ports),
                timing=RttEstimator(options.connect_wait, options.min_timeout, options.connect_wait),
                family=socket.AF_INET if address.version == 4 else socket.AF_INET6,
            )
            self.current, self.cursor = host, 0
            if not ports:
                self._finish(host)
        return self.current

    # --- outcomes ----------------------------------------------------------------------------------

    def _decided(self, host: _ConnectHost) -> None:
        host.pending -= 1
        if host.pending == 0:
            self._finish(host)

    def _finish(self, host: _ConnectHost) -> None:
        host.finished = True
        if host.successes:
            # A connect whose peer is one of our own sockets is TCP simultaneous open with ourselves
            # (self-connect, or two probes crossing). The kernel only lends a source port that no
            # listener holds, so that port was really closed.
            own = {local for _, local, _ in host.successes}
            for port, _, peer in host.successes:
                (host.refused_ports if peer in own else host.open_ports).append(port)
        self.finished.append(host.result(ConnectScanner.name))

    def _connected(self, host: _ConnectHost, port: int, sock: socket.socket) -> None:
        try:
            local = sock.getsockname()[:2]
            peer = sock.getpeername()[:2]
        except OSError:
            # Reset between the handshake and now (a service that accepts and drops at once, a
            # full accept queue with tcp_abort_on_overflow): the handshake completed, so something
            # listens there. Open, as nmap -sT says and as the SYN engine sees it (a SYN-ACK).
            host.open_ports.append(port)
        else:
            host.successes.append((port, local, peer))
        self._discard(sock, reset=True)
        self._decided(host)

    def _unanswered(self, host: _ConnectHost, port: int, attempt: int) -> None:
        if attempt < self.options.retries and not host.unreachable:
            self.retry.append((host, port, attempt + 1))
            return
        host.unanswered += 1
        self._decided(host)

    def _discard(self, sock: socket.socket, *, reset: bool = False) -> None:
        self.registered.discard(sock.fileno())
        if reset:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        sock.close()

    def _recycle(self, host: _ConnectHost, sock: socket.socket) -> None:
        pool = self.pools[host.family]
        if len(pool) < _POOL_LIMIT:
            pool.append(sock)
        else:
            self._discard(sock)

    def _outcome(self, host: _ConnectHost, port: int, sock: socket.socket, err: int, attempt: int) -> None:
        """Settle a probe whose connect returned ``err`` (not a waiting code)."""
        if err in _REFUSED:
            host.refused_ports.append(port)
            self._recycle(host, sock)
            self._decided(host)
        elif err in _CONNECTED:
            self._connected(host, port, sock)
        elif err in _UNREACHABLE:
            host.unreachable = True
            self._discard(sock)
            host.unanswered += 1
            self._decided(host)
        elif err in _NO_ANSWER:
            self._discard(sock)
            self._unanswered(host, port, attempt)
        else:  # EACCES/EPERM (a local firewall) and anything odd: this port gets no answer
            self._discard(sock)
            host.unanswered += 1
            self._decided(host)

    # --- sending -----------------------------------------------------------------------------------

    def _probe(self, host: _ConnectHost, port: int, attempt: int) -> bool:
        """Start one probe (the general path); ``False`` when out of sockets or source ports."""
        if host.unreachable or host.incomplete is not None:
            host.unanswered += 1
            self._decided(host)
            return True
        pool = self.pools[host.family]
        try:
            sock = pool.pop() if pool else self.open_socket(host.family, _SOCKET_TYPE)
        except OSError as error:
            self._shortage(host, port, attempt, error)
            return False
        address = (host.ip, port)
        err = sock.connect_ex(address)
        if err == errno.EINPROGRESS:
            err = sock.connect_ex(address)  # the outcome, when the kernel already has it
        if err == errno.EALREADY:
            self._wait(host, port, sock, attempt)
            return True
        if err in _LOCAL_SHORTAGE:
            self._discard(sock)
            self._shortage(host, port, attempt, OSError(err, errno.errorcode.get(err, str(err))))
            return False
        host.instant = True
        self._outcome(host, port, sock, err, attempt)
        return True

    def _skip_rest_if_unreachable(self, host: _ConnectHost, sent_up_to: int) -> bool:
        """When the network said the host is unreachable, its unsent ports cannot answer either."""
        if not host.unreachable:
            return False
        remaining = len(self.ports) - sent_up_to
        self.cursor = len(self.ports)
        host.unanswered += remaining
        host.pending -= remaining
        if host.pending == 0 and not host.finished:
            self._finish(host)
        return True

    def _send(self, budget: int) -> tuple[int, bool]:
        """Start up to ``budget`` probes, retries first; returns (probes started, targets exhausted)."""
        started = 0
        retry = self.retry
        while retry and started < budget:
            host, port, attempt = retry.popleft()
            if not self._probe(host, port, attempt):
                return started, False
            started += 1
        ports = self.ports
        pools = self.pools
        inflight = self.inflight
        open_socket = self.open_socket
        refused = errno.ECONNREFUSED
        in_progress = errno.EINPROGRESS
        already = errno.EALREADY
        while started < budget:
            next_host = self._next_host()
            if next_host is None:
                return started, True
            host = next_host
            if self._skip_rest_if_unreachable(host, self.cursor):
                continue
            pool = pools[host.family]
            ip = host.ip
            begin = index = self.cursor
            stop_at = min(len(ports), begin + budget - started)
            # The hot loop: one port per turn, the refused outcome handled inline.
            while index < stop_at:
                port = ports[index]
                index += 1
                if pool:
                    sock = pool.pop()
                else:
                    try:
                        sock = open_socket(host.family, _SOCKET_TYPE)
                    except OSError as error:
                        self.cursor = index
                        self._shortage(host, port, 0, error)
                        return started + index - begin - 1, False
                address = (ip, port)
                err = sock.connect_ex(address)
                if err == in_progress:
                    err = sock.connect_ex(address)  # the outcome, when the kernel already has it
                if err == refused:
                    host.refused_ports.append(port)
                    host.pending -= 1
                    pool.append(sock)
                    continue
                if err == already:
                    self._wait(host, port, sock, 0)
                    if len(inflight) >= self.window.size:
                        break
                    continue
                if err in _LOCAL_SHORTAGE:
                    self._discard(sock)
                    self.cursor = index
                    self._shortage(host, port, 0, OSError(err, errno.errorcode.get(err, str(err))))
                    return started + index - begin - 1, False
                host.instant = True
                self._outcome(host, port, sock, err, 0)
                if self._skip_rest_if_unreachable(host, index):
                    break
            started += index - begin
            self.cursor = max(self.cursor, index)
            if host.refused_ports:
                host.instant = True
            if len(pool) > _POOL_LIMIT:
                for sock in pool[_POOL_LIMIT:]:
                    self._discard(sock)
                del pool[_POOL_LIMIT:]
            if host.pending == 0 and not host.finished:
                self._finish(host)
            if len(inflight) >= self.window.size:
                break
        return started, False

    def _wait(self, host: _ConnectHost, port: int, sock: socket.socket, attempt: int) -> None:
        fd = sock.fileno()
        if fd in self.registered:
            self.epoll.modify(fd, _EPOLL_FLAGS)
        else:
            self.epoll.register(fd, _EPOLL_FLAGS)
            self.registered.add(fd)
        now = time.monotonic()
        entry = _Attempt(host, port, sock, now, attempt)
        self.inflight[fd] = entry
        timeout = min(self.options.connect_wait, host.timeout(self.timing) * (1 << attempt))
        self.sequence += 1
        heapq.heappush(self.expiry, (now + timeout, self.sequence, entry))

    def _shortage(self, host: _ConnectHost, port: int, attempt: int, error: OSError) -> None:
        """Out of sockets, buffers or source ports: send less until some answer, and put the probe
        back, unless its host is over its budget: then the host is given up as incomplete (with
        its ports not tried yet) and the scan goes on with the others. Only a shortage with no
        probe waiting counts (a waiting probe frees its socket when it ends; then the loop
        pauses 20 ms between tries)."""
        self.shortages += 1
        self.window.lost(len(self.inflight))
        if self.inflight or not host.refused_send(error.errno, self.send_retry_budget):
            self.retry.appendleft((host, port, attempt))
            return
        self.cursor = host.give_up(self.current, self.cursor, len(self.ports))
        if host.pending == 0 and not host.finished:
            self._finish(host)

    # --- receiving ---------------------------------------------------------------------------------

    def _collect(self, timeout: float) -> None:
        events = self.epoll.poll(timeout, min(4096, max(1, len(self.inflight))))
        if not events:
            return
        now = time.monotonic()
        answered = 0
        lost = False
        for fd, _ in events:
            entry = self.inflight.pop(fd, None)
            if entry is None:
                continue
            entry.done = True
            host = entry.host
            address = (host.ip, entry.port)
            err = entry.sock.connect_ex(address)
            if err in _WAITING:  # woken early; wait again
                entry.done = False
                self.inflight[fd] = entry
                self.epoll.modify(fd, _EPOLL_FLAGS)
                continue
            if err in _REFUSED or err in _CONNECTED:
                answered += 1
                # The answer to a retried connect: an earlier attempt (or its answer) was lost.
                lost = lost or entry.attempt > 0
                if entry.attempt == 0:
                    rtt = now - entry.sent
                    host.timing.sample(rtt)
                    self.timing.sample(rtt)
            self._outcome(host, entry.port, entry.sock, err, entry.attempt)
        self.shortages = 0
        if lost:
            self.window.lost(len(self.inflight) + answered)
        self.window.answered(answered)

    def _expire(self, now: float) -> None:
        expiry = self.expiry
        while expiry and (expiry[0][2].done or expiry[0][0] <= now):
            _, _, entry = heapq.heappop(expiry)
            if entry.done:
                continue
            entry.done = True
            del self.inflight[entry.sock.fileno()]
            self._discard(entry.sock)
            self._unanswered(entry.host, entry.port, entry.attempt)

    # --- the loop ----------------------------------------------------------------------------------

    def loop(self, targets: Iterator[Target]) -> Generator[HostScan, None, None]:
        self.targets = targets
        exhausted = False
        deadline = self.options.deadline
        while True:
            now = time.monotonic()
            if self.stop is not None and self.stop.is_set():
                return
            if deadline is not None and now >= deadline:
                raise ProbeTimeout("TCP connect scan", round(deadline - self.started, 3))
            sendable = not exhausted or bool(self.retry)
            if sendable:
                room = self.window.room(len(self.inflight))
                budget = min(_BATCH, room, self.rate.allowance(now))
                if budget > 0:
                    started, exhausted = self._send(budget)
                    self.rate.spend(started)
            while self.finished:
                yield self.finished.popleft()
            if not self.inflight and not self.retry and exhausted:
                return
            # Wait for answers: not at all while there is more to send and room to send it.
            if self.shortages and not self.inflight:  # nothing will free a socket but time
                wait = 0.02
            elif (not exhausted or self.retry) and self.window.room(len(self.inflight)) > 0:
                wait = self.rate.wait()
            else:
                wait = self.expiry[0][0] - time.monotonic() if self.expiry else 0.0
            wait = min(max(wait, 0.0), 0.05)
            if self.inflight:
                self._collect(wait)
            elif wait > 0:
                time.sleep(wait)
            self._expire(time.monotonic())
            while self.finished:
                yield self.finished.popleft()

    def close(self) -> None:
        for entry in self.inflight.values():
            entry.sock.close()
        self.inflight.clear()
        for pool in self.pools.values():
            for sock in pool:
                sock.close()
            pool.clear()
        self.epoll.close()

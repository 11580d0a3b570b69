"""Sockets that refuse sends to one address as a kernel whose neighbour table is full does (ENOBUFS).

The scan and sweep engines take them through their seams: ``SynScanner(open_sender=...)``,
``ConnectScanner(open_socket=...)``, ``RawSweeper(open_icmp=...)``, ``Icmp6Pinger(open_socket=...)``.
Each is a real socket of the kind the engine makes. Sends to the refused address fail with ENOBUFS
(at most ``limit`` times, then they go through) and are counted. The other sends go out for real
with ``passthrough`` (inside a namespace of the test's own); without it nothing leaves at all: a
SYN or an echo request is swallowed and a connect is answered "refused" on the spot, so a test in
the machine's own namespace sends nothing.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
from typing import Any


class Refusals:
    """Makes the refusing sockets and counts the sends they refused."""

    def __init__(self, refused: str, *, passthrough: bool = False, limit: int | None = None) -> None:
        self.refused = refused
        self.passthrough = passthrough
        self.limit = limit
        #: Sends to ``refused`` that failed with ENOBUFS.
        self.count = 0
        self._lock = threading.Lock()

    def refuses(self, address: object) -> bool:
        """Whether this send to ``address`` fails (and count it)."""
        if str(address).partition("%")[0] != self.refused:
            return False
        with self._lock:
            if self.limit is not None and self.count >= self.limit:
                return False
            self.count += 1
        return True

    @staticmethod
    def error() -> OSError:
        return OSError(errno.ENOBUFS, os.strerror(errno.ENOBUFS))

    # --- the factories the engines take -------------------------------------------------------

    def syn_sender(self, family: int) -> socket.socket:
        sock = _RawSender(family, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.IPPROTO_TCP)
        sock.refusals = self
        return sock

    def stream_socket(self, family: int, kind: int) -> socket.socket:
        sock = _Stream(family, kind)
        sock.refusals = self
        return sock

    def icmp_socket(self) -> socket.socket:
        sock = _Datagram(socket.AF_INET, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.IPPROTO_ICMP)
        sock.refusals = self
        return sock

    def icmp6_socket(self) -> socket.socket:
        sock = _Datagram(socket.AF_INET6, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.IPPROTO_ICMPV6)
        sock.refusals = self
        return sock


class _RawSender(socket.socket):
    """The SYN engine's sender: connected to one host at a time, then ``send``."""

    refusals: Refusals
    peer = ""

    def connect(self, address: Any) -> None:
        self.peer = str(address[0])
        super().connect(address)  # a raw socket's connect sends nothing

    def send(self, data: Any, flags: int = 0) -> int:
        if self.refusals.refuses(self.peer):
            raise self.refusals.error()
        if self.refusals.passthrough:
            return super().send(data, flags)
        return len(data)


class _Stream(socket.socket):
    """The connect engine's probe socket: ``connect_ex`` gives ENOBUFS for the refused address."""

    refusals: Refusals

    def connect_ex(self, address: Any) -> int:
        if self.refusals.refuses(address[0]):
            return errno.ENOBUFS
        if self.refusals.passthrough:
            return super().connect_ex(address)
        return errno.ECONNREFUSED


class _Datagram(socket.socket):
    """A sweep's raw ICMP/ICMPv6 socket: ``sendto`` fails for the refused address."""

    refusals: Refusals

    def sendto(self, data: Any, *rest: Any) -> int:
        if self.refusals.refuses(rest[-1][0]):
            raise self.refusals.error()
        if self.refusals.passthrough:
            return super().sendto(data, *rest)
        return len(data)

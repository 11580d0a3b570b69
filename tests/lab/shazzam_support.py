"""A private network namespace for the Shazzam scanner tests (and nothing else in it).

The namespace holds its loopback plus a veth pair ``mpsa``/``mpsb`` with 198.18.9.1/24 on
``mpsa``; 198.18.9.50 has a permanent neighbour entry whose MAC nobody owns, so SYNs to it leave
(and can be counted on ``mpsa``) and are never answered: a silent host.
"""

from __future__ import annotations

import atexit
import functools
import secrets
import socket
import struct
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from midprobe.runner.lab import NamespaceThread, namespace_thread
from midprobe.runner.lab.netns import add_namespace, delete_namespace

T = TypeVar("T")

SILENT_ADDRESS = "198.18.9.50"
LINK_ADDRESS = "198.18.9.1"
UNROUTED_ADDRESS = "198.18.77.7"  # no route in the namespace: connect fails at once
_ETH_P_ALL = 0x0003
_PACKET_OUTGOING = 4


@dataclass
class PrivateNamespace:
    """A namespace of our own, with a thread inside it and the listeners the test opened."""

    name: str
    thread: NamespaceThread
    listeners: list[socket.socket] = field(default_factory=list)

    def call(self, fn: Callable[[], T]) -> T:
        return self.thread.call(fn)

    def ip(self, *args: str) -> None:
        subprocess.run(["ip", "-n", self.name, *args], check=True, capture_output=True, timeout=20)

    def listen(self, address: str, port: int) -> None:
        """Open a TCP listener inside the namespace (closed when the namespace goes)."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET

        def open_listener() -> socket.socket:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(64)
            return sock

        self.listeners.append(self.call(open_listener))

    def close_listeners(self) -> None:
        for sock in self.listeners:
            sock.close()
        self.listeners.clear()

    def count_syns(self, interface: str, destination: str, work: Callable[[], T]) -> tuple[T, int]:
        """Run ``work`` in the namespace; count the SYNs (no ACK) it sent to ``destination``."""

        def measured() -> tuple[T, int]:
            capture = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
            capture.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            capture.bind((interface, 0))
            try:
                result = work()
                capture.setblocking(False)
                count = 0
                wanted = socket.inet_aton(destination)
                while True:
                    try:
                        frame, origin = capture.recvfrom(256)
                    except BlockingIOError:
                        break
                    if origin[2] != _PACKET_OUTGOING or len(frame) < 14 + 20 + 14:
                        continue
                    if frame[12:14] != b"\x08\x00" or frame[14 + 9] != socket.IPPROTO_TCP:
                        continue
                    if frame[14 + 16 : 14 + 20] != wanted:
                        continue
                    header = (frame[14] & 0x0F) * 4
                    (flags,) = struct.unpack_from("!B", frame, 14 + header + 13)
                    if flags & 0x12 == 0x02:
                        count += 1
                return result, count
            finally:
                capture.close()

        return self.call(measured)


@contextmanager
def private_namespace() -> Iterator[PrivateNamespace]:
    """A fresh namespace ``mpsz<hex>`` with loopback up and a silent neighbour; always deleted."""
    name = f"mpsz{secrets.token_hex(4)}"
    cleanup = functools.partial(delete_namespace, name)
    atexit.register(cleanup)
    add_namespace(name)
    namespace: PrivateNamespace | None = None
    try:
        namespace = PrivateNamespace(name, thread=namespace_thread(name))
        namespace.ip("link", "add", "mpsa", "type", "veth", "peer", "name", "mpsb")
        namespace.ip("addr", "add", f"{LINK_ADDRESS}/24", "dev", "mpsa")
        namespace.ip("link", "set", "mpsa", "up")
        namespace.ip("link", "set", "mpsb", "up")
        namespace.ip(
            "neigh", "add", SILENT_ADDRESS, "lladdr", "02:00:5e:00:00:01", "dev", "mpsa", "nud", "permanent"
        )
        yield namespace
    finally:
        if namespace is not None:
            namespace.close_listeners()
            namespace.thread.close()
        delete_namespace(name)
        atexit.unregister(cleanup)

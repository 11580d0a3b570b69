"""Private network namespaces for the Shazzam tests (and nothing else in them).

``private_namespace``: its loopback plus a veth pair ``mpsa``/``mpsb`` with 198.18.9.1/24 on
``mpsa``; 198.18.9.50 has a permanent neighbour entry whose MAC nobody owns, so SYNs to it leave
(and can be counted on ``mpsa``) and are never answered: a silent host.
``snmp_only_agent``: the SNMP harness's snmpd (``snmpd_harness.SnmpdTestBed``) also answering the
community ``public``, with TCP to its ports 22 and 80 dropped, so the SNMP tap is all that answers.
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

from midprobe.runner.lab import NamespaceThread, load_profile, namespace_thread
from midprobe.runner.lab.netns import add_namespace, delete_namespace
from tests.lab.snmpd_harness import SnmpdTestBed

T = TypeVar("T")

SILENT_ADDRESS = "198.18.9.50"
LINK_ADDRESS = "198.18.9.1"
UNROUTED_ADDRESS = "198.18.77.7"  # no route in the namespace: connect fails at once
_ETH_P_ALL = 0x0003
_PACKET_OUTGOING = 4
SNMP_IN_PKTS = "1.3.6.1.2.1.11.1.0"
#: TCP ports of the SNMP-only agent's address that never answer (their SYNs are dropped).
DROPPED_TCP_PORTS = (22, 80)


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


def openssh_version() -> str:
    """``OpenSSH_9.2p1 Debian-2+deb12u10``: what ``ssh -V`` prints (``sshd -V`` leaves out the
    distribution part; client and server are built from one source package)."""
    done = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False, timeout=10)
    return (done.stderr or done.stdout).split(",")[0].strip()


def listener_banner(profile: str, port: int) -> str:
    """The ``Server`` header a lab profile's HTTP listener sends."""
    listener = next(item for item in load_profile().profiles[profile].listeners if item.port == port)
    assert listener.banner is not None
    return listener.banner


@contextmanager
def snmp_only_agent() -> Iterator[SnmpdTestBed]:
    """A real snmpd on 127.0.0.1:161 of a private namespace that answers ``public`` (and the
    harness's generated community), where TCP to DROPPED_TCP_PORTS is dropped; always torn down."""
    bed = SnmpdTestBed(extra_config=["rocommunity public 127.0.0.1"])
    try:
        ports = ", ".join(map(str, DROPPED_TCP_PORTS))
        rules = (
            "table inet mpshazzam {\n"
            f"  chain input {{ type filter hook input priority 0; policy accept; tcp dport {{ {ports} }} drop; }}\n"
            "}\n"
        )
        subprocess.run(
            ["ip", "netns", "exec", bed.namespace, "nft", "-f", "-"],
            input=rules,
            text=True,
            check=True,
            capture_output=True,
            timeout=20,
        )
        yield bed
    finally:
        bed.close()


def snmp_packets_in(bed: SnmpdTestBed) -> int:
    """snmpInPkts of the agent: every SNMP message it received (this query included)."""
    done = bed.snmp_tool(
        ["snmpget", "-v2c", "-c", bed.community, "-On", "-Oqv", "-t", "1", "-r", "2",
         f"{bed.address}:{bed.port}", SNMP_IN_PKTS]
    )  # fmt: skip
    return int(done.stdout.strip())

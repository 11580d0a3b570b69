"""A private dnsmasq in a network namespace of our own, for the DNS tests and bench/bench_dns.py.

The namespace holds only its loopback: dnsmasq answers on 127.0.0.53, and 127.0.0.54:53 is a
UDP socket that reads nothing (a silent server); dnsmasq also listens on ::1. Everything is removed on exit.
"""

from __future__ import annotations

import atexit
import secrets
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message

from midprobe.runner.lab import NamespaceThread, namespace_thread
from midprobe.runner.lab.netns import add_namespace, delete_namespace

DNSMASQ = "/usr/sbin/dnsmasq"
ZONE = "lab.example.test"
SERVER = "127.0.0.53"
SERVER6 = "::1"  # the same dnsmasq over IPv6
SILENT_SERVER = "127.0.0.54"
READY_TIMEOUT = 10.0


@dataclass
class PrivateDns:
    namespace: str
    thread: NamespaceThread  # runs code (sockets, asyncio) inside the namespace
    process: subprocess.Popen[bytes]
    silent: socket.socket  # bound to SILENT_SERVER:53, never read by anyone but the tests
    server: str = SERVER
    server6: str = SERVER6
    silent_server: str = SILENT_SERVER

    def received_by_silent_server(self) -> int:
        """How many datagrams reached the silent server (and drains them)."""
        count = 0
        while True:
            try:
                self.silent.recv(4096)
            except BlockingIOError:
                return count
            count += 1

    def udp_receive_errors(self) -> int:
        """``RcvbufErrors`` of UDP in the namespace: datagrams dropped for a full socket buffer."""
        lines = [line.split() for line in Path(f"/proc/{self.process.pid}/net/snmp").read_text().splitlines()]
        head, values = (line for line in lines if line[0] == "Udp:")
        return int(values[head.index("RcvbufErrors")])


def host_records(count: int, *, first_octet: int = 4) -> list[tuple[str, str]]:
    """``count`` records ``h<i>.<ZONE>`` -> 198.18.<first_octet + i // 256>.<i % 256>."""
    return [(f"h{i}.{ZONE}", f"198.18.{first_octet + i // 256}.{i % 256}") for i in range(count)]


@contextmanager
def private_dns(
    records: Sequence[tuple[str, str]],
    *,
    cnames: Sequence[tuple[str, str]] = (),
    txt_records: Sequence[tuple[str, str]] = (),
    ptr_records: Sequence[tuple[str, str]] = (),
    reverse_zones: Sequence[str] = ("18.198.in-addr.arpa", "8.b.d.0.1.0.0.2.ip6.arpa"),
) -> Iterator[PrivateDns]:
    """dnsmasq authoritative for ``ZONE`` and ``reverse_zones`` (unknown names get NXDOMAIN).

    ``records`` (name, address) come from a hosts file, so each gives a forward and a reverse
    record; a name listed with several addresses answers with all of them.
    """
    namespace = f"mpdns{secrets.token_hex(4)}"
    workdir = Path(tempfile.mkdtemp(prefix="mpdns-"))
    hosts = workdir / "hosts"
    hosts.write_text("".join(f"{address} {name}\n" for name, address in records))
    argv = [
        DNSMASQ,
        "--keep-in-foreground",  # not --no-daemon: that serves TCP inline and stalls UDP meanwhile
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--no-poll",
        "--pid-file",
        "--user=root",
        "--group=root",
        "--bind-interfaces",
        f"--listen-address={SERVER}",
        f"--listen-address={SERVER6}",
        "--port=53",
        f"--addn-hosts={hosts}",
        f"--local=/{ZONE}/",
        *(f"--local=/{zone}/" for zone in reverse_zones),
        *(f"--cname={alias},{target}" for alias, target in cnames),
        *(f"--txt-record={name},{text}" for name, text in txt_records),
        *(f"--ptr-record={name},{target}" for name, target in ptr_records),
        f"--log-facility={workdir / 'dnsmasq.log'}",
    ]
    atexit.register(delete_namespace, namespace)
    add_namespace(namespace)
    process: subprocess.Popen[bytes] | None = None
    thread: NamespaceThread | None = None
    silent: socket.socket | None = None
    try:
        thread = namespace_thread(namespace)
        silent = thread.call(_silent_socket)
        process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _wait_ready(thread, process, records[0][0] if records else f"ready.{ZONE}")
        yield PrivateDns(namespace, thread, process, silent)
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
            if process.stderr is not None:
                process.stderr.close()
        if silent is not None:
            silent.close()
        if thread is not None:
            thread.close()
        delete_namespace(namespace)
        atexit.unregister(delete_namespace)
        for path in workdir.iterdir():
            path.unlink()
        workdir.rmdir()


def _silent_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((SILENT_SERVER, 53))
    sock.setblocking(False)
    return sock


def _wait_ready(thread: NamespaceThread, process: subprocess.Popen[bytes], name: str) -> None:
    """Until dnsmasq answers a query (bounded); its stderr in the error when it died."""
    deadline = time.monotonic() + READY_TIMEOUT

    async def answered() -> bool:
        try:
            await dns.asyncquery.udp(dns.message.make_query(name, "A"), SERVER, timeout=0.2)
        except (OSError, dns.exception.DNSException):
            return False
        return True

    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"dnsmasq exited with {process.returncode}: {stderr.strip()}")
        if thread.run_async(answered):
            return
        time.sleep(0.05)
    raise RuntimeError(f"dnsmasq did not answer within {READY_TIMEOUT:g} s")

"""The transport layer of SSH: TCP connect, the paramiko handshake with its host key check, and
the translation of paramiko's and the socket's exceptions into the midprobe hierarchy.

The TCP socket is opened on the event loop's thread, so it belongs to that thread's network
namespace; the handshake is blocking and runs in the SSH pool (``pool.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from typing import Literal

import paramiko
from paramiko.ssh_exception import IncompatiblePeer

from midprobe.capabilities.errors import (
    ConnectTimeout,
    HostKeyMismatch,
    NetworkError,
    ProbeError,
    ProtocolError,
    ReadTimeout,
)
from midprobe.probes.ssh.known_hosts import HostKey, KnownHostsStore, keys_by_type

HostKeyStatus = Literal["new", "known", "changed"]
#: paramiko's banner and handshake time-outs are ours plus this, so ours fires first.
PARAMIKO_TIMEOUT_SLACK_SECONDS = 1.0


def translate_error(error: BaseException, what: str, timeout: float) -> ProbeError:
    """A paramiko/socket exception as a midprobe ``ProbeError``."""
    if isinstance(error, ProbeError):
        return error
    if isinstance(error, socket.timeout | TimeoutError):
        return ReadTimeout(what, timeout)
    if isinstance(error, ConnectionRefusedError):
        return NetworkError(f"{what}: connection refused")
    if isinstance(error, ConnectionResetError | BrokenPipeError | EOFError):
        return NetworkError(f"{what}: the server closed the connection")
    if isinstance(error, OSError):
        return NetworkError(f"{what}: {error.strerror or errno.errorcode.get(error.errno or 0, error)}")
    if isinstance(error, IncompatiblePeer):
        return ProtocolError(f"{what}: no algorithm in common with the server ({error})")
    if isinstance(error, paramiko.SSHException):
        underlying = error.__cause__ or error.__context__
        if isinstance(underlying, socket.timeout | TimeoutError):
            # paramiko's own banner or packet time-out (it raises SSHException from the timeout):
            # the same ReadTimeout as ours, whichever of the two fired first.
            return ReadTimeout(what, timeout)
        text = str(error) or type(error).__name__
        if "banner" in text.lower():
            return ProtocolError(f"{what}: the server did not send an SSH banner ({text})")
        return ProtocolError(f"{what}: {text}")
    return ProtocolError(f"{what}: {type(error).__name__}: {error}")


def close_transport(transport: paramiko.Transport) -> None:
    """Close now: shut the socket down first, so the FIN goes out at once.

    A plain close() waits for paramiko's reader thread to leave its recv(), up to 0.1 s, and
    the connection would outlive the per-host slot it held.
    """
    with contextlib.suppress(OSError):
        transport.sock.shutdown(socket.SHUT_RDWR)
    transport.close()


class OpenedTransports:
    """Every transport a login opened, so an abort (timeout, cancellation) closes them all.

    A handshake still running in the pool when the abort comes closes its transport on arrival.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._transports: list[paramiko.Transport] = []
        self._aborted = False

    def add(self, transport: paramiko.Transport) -> None:
        with self._lock:
            self._transports.append(transport)
            aborted = self._aborted
        if aborted:
            close_transport(transport)

    def abort(self) -> None:
        with self._lock:
            self._aborted = True
            transports = list(self._transports)
        for transport in transports:
            close_transport(transport)


async def tcp_connect(host: str, port: int, limit: float) -> socket.socket:
    """Connect on the event loop's thread, so the socket lives in that thread's network namespace."""
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    where = f"TCP connect to {host}:{port}"
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (host, port)), limit)
    except TimeoutError:
        sock.close()
        raise ConnectTimeout(where, limit) from None
    except OSError as error:
        sock.close()
        raise translate_error(error, where, limit) from None
    except BaseException:
        sock.close()
        raise
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(True)
    return sock


def handshake(
    sock: socket.socket,
    host: str,
    port: int,
    known_hosts: KnownHostsStore,
    strict: bool,
    timeout: float,
    on_transport: Callable[[paramiko.Transport], None],
) -> tuple[paramiko.Transport, HostKey, HostKeyStatus]:
    """Banner, key exchange and the host key check on ``sock`` (blocking: runs in the SSH pool)."""
    what = f"SSH handshake with {host}:{port}"
    try:
        transport = paramiko.Transport(sock)
    except Exception as error:
        sock.close()
        raise translate_error(error, what, timeout) from None
    on_transport(transport)
    try:
        # Ours is the time-out that counts; paramiko's own (which ends the handshake with an
        # EOFError, indistinguishable from a server that hung up) only backs it up.
        transport.banner_timeout = timeout + PARAMIKO_TIMEOUT_SLACK_SECONDS
        transport.handshake_timeout = timeout + PARAMIKO_TIMEOUT_SLACK_SECONDS
        recorded = keys_by_type(known_hosts.lookup(host, port))
        if recorded:
            _prefer_host_key_types(transport, tuple(recorded))
        done = threading.Event()
        started = time.monotonic()
        transport.start_client(event=done)
        if not done.wait(timeout):
            raise ReadTimeout(what, timeout)
        if not transport.is_active():
            if time.monotonic() - started >= timeout:  # this thread woke late: still our time-out
                raise ReadTimeout(what, timeout)
            raise translate_error(transport.get_exception() or EOFError(), what, timeout)
        offered = HostKey.from_pkey(transport.get_remote_server_key())
        status: HostKeyStatus
        if offered.key_type in recorded and recorded[offered.key_type] == offered:
            status = "known"
        elif recorded:
            if strict:
                previous = recorded.get(offered.key_type) or next(iter(recorded.values()))
                raise HostKeyMismatch(f"{host}:{port}", previous.describe(), offered.describe())
            status = "changed"
            known_hosts.remember(host, port, offered)
        else:
            status = "new"
            known_hosts.remember(host, port, offered)
        return transport, offered, status
    except BaseException as error:
        close_transport(transport)
        if isinstance(error, Exception):
            raise translate_error(error, what, timeout) from None
        raise


def _prefer_host_key_types(transport: paramiko.Transport, key_types: tuple[str, ...]) -> None:
    """Ask first for the host key type(s) we recorded, as OpenSSH does, so a known key is compared."""
    options = transport.get_security_options()
    available = list(options.key_types)
    wanted: list[str] = []
    for key_type in key_types:
        if key_type == "ssh-rsa":
            wanted.extend(name for name in ("rsa-sha2-512", "rsa-sha2-256") if name in available)
        elif key_type in available:
            wanted.append(key_type)
    if wanted:
        options.key_types = tuple(wanted + [name for name in available if name not in wanted])

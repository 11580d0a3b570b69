"""The paramiko side of SSH: one authenticated connection, its commands, and every bound on them.

The TCP socket is opened on the event loop's thread (so it belongs to that thread's
network namespace); the handshake, authentication and commands then run in a
bounded thread pool, each with its own deadline, and at most
``MAX_CONNECTIONS_PER_HOST`` connections per host at once. paramiko's
exceptions are translated here into the midprobe hierarchy.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import ipaddress
import re
import select
import shlex
import socket
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import paramiko
from paramiko.ssh_exception import IncompatiblePeer

from midprobe.capabilities.errors import (
    AuthenticationFailed,
    ConnectTimeout,
    HostKeyMismatch,
    NetworkError,
    ProbeError,
    ProbeTimeout,
    ProtocolError,
    ReadTimeout,
    SudoFailed,
)
from midprobe.probes.credentials import (
    PROTOCOL_SSH,
    CredentialStore,
    SSHPasswordCredential,
    SSHPrivateKeyCredential,
)
from midprobe.probes.ssh.known_hosts import HostKey, KnownHostsStore, keys_by_type

T = TypeVar("T")

#: ECC.md section 4: at most 7 SSH connections per host.
MAX_CONNECTIONS_PER_HOST = 7
#: Connections (and so pool threads) in flight per event loop, over all hosts.
MAX_CONNECTIONS = 64
#: ``set_path`` default of the SSHCommand probe.
DEFAULT_PATH = "/usr/sbin:/usr/bin:/bin:/sbin"
#: Combined stdout + stderr kept per command; the command is stopped past it.
DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024
#: sudo's password prompt, chosen so it cannot be mistaken for command output.
SUDO_PROMPT = "[midprobe-sudo-password]"
#: The root shell prints this line on stderr before the command: sudo let it run.
SUDO_STARTED = "[midprobe-sudo-started]"
#: Extra time the event loop grants a pool call beyond its own deadline before closing the transport.
_GRACE_S = 1.0
_READ_CHUNK = 65536
_PATH_PATTERN = re.compile(r"^[A-Za-z0-9_./:+-]+$")
_STARTED_LINE = SUDO_STARTED.encode() + b"\n"
_PROMPT_PATTERN = re.compile(re.escape(SUDO_PROMPT.encode()) + b"\n?")

HostKeyStatus = Literal["new", "known", "changed"]
SSHCredential = SSHPasswordCredential | SSHPrivateKeyCredential


@dataclass(frozen=True)
class SSHTimeouts:
    """Seconds allowed for each step; every step is also cut to the probe's deadline."""

    connect: float = 15.0  # TCP connect, and the SSH handshake (banner + key exchange)
    auth: float = 30.0  # one authentication attempt
    command: float = 300.0  # one command from exec to exit
    channel: float = 300.0  # opening a channel, and the longest silence while a command runs


@dataclass(frozen=True)
class CommandOutput:
    """What one command printed and how it ended."""

    command: str
    stdout: str
    stderr: str
    #: None when the server sent no exit status (killed by a signal, or stopped by the output cap).
    exit_status: int | None
    truncated: bool
    elapsed_ms: float


@dataclass(frozen=True)
class ConnectionInfo:
    """Who we talked to and how we got in (no secrets)."""

    host: str
    port: int
    credential_id: str
    user: str
    host_key: HostKey
    host_key_status: HostKeyStatus
    server_version: str
    #: Credential ids offered in order, the working one last.
    credentials_tried: tuple[str, ...]


def compose_command(command: str, *, set_path: str | None, must_sudo: bool, sudo_with_password: bool) -> str:
    """The command line sent to the server (pure).

    ``set_path`` puts those directories first on PATH. ``must_sudo`` runs the command
    as root: with a password credential, ``sudo -S`` reads the password we send on
    its prompt (the command itself gets /dev/null as stdin); with a key, ``sudo -n``.
    Under sudo the root shell first prints ``SUDO_STARTED`` on stderr, so everything
    on stderr before it is sudo's own (prompts, refusals) and everything after is the command's.
    """
    line = command
    if set_path:
        if not _PATH_PATTERN.match(set_path):
            raise ValueError("set_path may hold only letters, digits and _ . / : + -")
        line = f"PATH={set_path}:$PATH; export PATH; {command}"
    if not must_sudo:
        return line
    started = f"printf '%s\\n' {shlex.quote(SUDO_STARTED)} >&2; "
    if sudo_with_password:
        script = shlex.quote(f"{started}exec </dev/null; {line}")
        return f"sudo -S -p {shlex.quote(SUDO_PROMPT)} -- sh -c {script}"
    return f"sudo -n -- sh -c {shlex.quote(started + line)}"


def split_sudo_stderr(stderr: bytes) -> tuple[bytes, bytes | None]:
    """sudo's own stderr text without its prompts, and the command's stderr (None: not started) (pure).

    An unanswered prompt (sudo read end of input) is followed by the newline sudo then prints;
    it goes with the prompt.
    """
    head, found, tail = stderr.partition(_STARTED_LINE)
    return _PROMPT_PATTERN.sub(b"", head), (tail if found else None)


def sudo_failure_reason(sudo_text: str, *, with_password: bool, prompts: int, exit_status: int | None) -> str:
    """Why sudo did not start the command, from what it printed (pure)."""
    lines = [line.strip() for line in sudo_text.splitlines() if line.strip()]
    said = "; ".join(lines) or f"sudo ended with exit status {exit_status} and said nothing"
    if prompts > 1:
        return f"the password was not accepted ({said})"
    if not with_password and "password is required" in said:
        return f"{said} (a key login has no password to give sudo: it takes a NOPASSWD rule)"
    return said


# -- translation of foreign exceptions -----------------------------------------------------------


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


class _Rejected(Exception):
    """The server refused one credential; ``counts`` says whether it was a wrong secret."""

    def __init__(self, reason: str, *, counts: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.counts = counts


# -- limits: per-host slots and the thread pool ---------------------------------------------------

_EXECUTOR_LOCK = threading.Lock()
_EXECUTOR: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = ThreadPoolExecutor(max_workers=MAX_CONNECTIONS, thread_name_prefix="midprobe-ssh")
        return _EXECUTOR


class _Limits:
    """Semaphores of one event loop: ``MAX_CONNECTIONS_PER_HOST`` per host, ``MAX_CONNECTIONS`` in all."""

    def __init__(self) -> None:
        self.total = asyncio.Semaphore(MAX_CONNECTIONS)
        self.per_host: dict[tuple[str, int], asyncio.Semaphore] = {}
        self.users: dict[tuple[str, int], int] = {}

    @contextlib.asynccontextmanager
    async def slot(self, host: str, port: int) -> AsyncIterator[None]:
        key = (host, port)
        semaphore = self.per_host.setdefault(key, asyncio.Semaphore(MAX_CONNECTIONS_PER_HOST))
        self.users[key] = self.users.get(key, 0) + 1
        try:
            async with semaphore, self.total:
                yield
        finally:
            self.users[key] -= 1
            if not self.users[key]:
                del self.users[key], self.per_host[key]


_LIMITS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Limits] = weakref.WeakKeyDictionary()


def _limits() -> _Limits:
    loop = asyncio.get_running_loop()
    limits = _LIMITS.get(loop)
    if limits is None:
        limits = _LIMITS[loop] = _Limits()
    return limits


async def _in_pool(function: Callable[[], T], *, what: str, limit: float, abort: Callable[[], None]) -> T:
    """Run blocking ``function`` in the SSH pool; past ``limit`` seconds (+ grace) call ``abort`` and raise.

    ``function`` keeps its own deadlines; ``abort`` (closing the transport) is the backstop
    that unblocks whatever paramiko call would otherwise still be waiting.
    """
    future = asyncio.get_running_loop().run_in_executor(_executor(), function)
    try:
        return await asyncio.wait_for(future, limit + _GRACE_S)
    except TimeoutError:
        abort()
        raise ReadTimeout(what, limit) from None
    except asyncio.CancelledError:
        abort()
        raise


class _OpenedTransports:
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


class _Deadline:
    """The probe's absolute deadline; hands out step timeouts cut to it."""

    def __init__(self, deadline: float, total: float) -> None:
        self.deadline = deadline
        self.total = total

    def step(self, limit: float, what: str) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise ProbeTimeout(what, self.total)
        return min(limit, remaining)


# -- the blocking halves (pool threads) ----------------------------------------------------------


async def _tcp_connect(host: str, port: int, limit: float) -> socket.socket:
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


def _handshake(
    sock: socket.socket,
    host: str,
    port: int,
    known_hosts: KnownHostsStore,
    strict: bool,
    timeout: float,
    on_transport: Callable[[paramiko.Transport], None],
) -> tuple[paramiko.Transport, HostKey, HostKeyStatus]:
    what = f"SSH handshake with {host}:{port}"
    try:
        transport = paramiko.Transport(sock)
    except Exception as error:
        sock.close()
        raise translate_error(error, what, timeout) from None
    on_transport(transport)
    try:
        transport.banner_timeout = timeout
        transport.handshake_timeout = timeout
        recorded = keys_by_type(known_hosts.lookup(host, port))
        if recorded:
            _prefer_host_key_types(transport, tuple(recorded))
        done = threading.Event()
        transport.start_client(event=done)
        if not done.wait(timeout):
            raise ReadTimeout(what, timeout)
        if not transport.is_active():
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


def _authenticate(transport: paramiko.Transport, credential: SSHCredential, timeout: float) -> None:
    transport.auth_timeout = timeout
    try:
        if isinstance(credential, SSHPasswordCredential):
            remaining = transport.auth_password(credential.user, credential.password.reveal())
        else:
            remaining = transport.auth_publickey(credential.user, credential.key)
    except paramiko.BadAuthenticationType as error:
        allowed = ", ".join(error.allowed_types) or "nothing"
        raise _Rejected(
            f"the server does not offer this method (it allows {allowed})", counts=False
        ) from None
    except paramiko.AuthenticationException as error:
        if str(error) == "Authentication timeout.":
            raise ReadTimeout("SSH authentication", timeout) from None
        raise _Rejected("rejected", counts=True) from None
    except Exception as error:
        raise translate_error(error, "SSH authentication", timeout) from None
    if remaining or not transport.is_authenticated():
        raise _Rejected("the server asks for a further authentication step", counts=False)


@dataclass(frozen=True)
class _Sudo:
    """A command to run under sudo: as whom (for messages) and the password to answer its prompt with."""

    user: str
    host: str
    password: str | None = field(default=None, repr=False)


def _run_command(
    transport: paramiko.Transport,
    command: str,
    line: str,
    *,
    sudo: _Sudo | None,
    timeout: float,
    channel_timeout: float,
    max_output: int,
) -> CommandOutput:
    started = time.monotonic()
    what = f"command {command!r}"
    try:
        channel = transport.open_session(timeout=channel_timeout)
    except Exception as error:
        raise translate_error(error, f"opening a channel for {what}", channel_timeout) from None
    try:
        return _drive_channel(channel, command, line, started, sudo, timeout, channel_timeout, max_output)
    except ProbeError:
        raise
    except Exception as error:
        raise translate_error(error, what, timeout) from None
    finally:
        channel.close()


def _drive_channel(
    channel: paramiko.Channel,
    command: str,
    line: str,
    started: float,
    sudo: _Sudo | None,
    timeout: float,
    channel_timeout: float,
    max_output: int,
) -> CommandOutput:
    channel.exec_command(line)
    # Input stays open only for sudo's password prompt; otherwise the command sees end of input
    # at once, as with ``ssh -n``.
    password = sudo.password if sudo is not None else None
    input_open = password is not None
    if not input_open:
        channel.shutdown_write()
    prompt = SUDO_PROMPT.encode()
    sudo_started = sudo is None
    stdout, stderr = bytearray(), bytearray()
    deadline = started + timeout
    last_activity = time.monotonic()
    truncated = False
    while True:
        progressed = False
        while channel.recv_ready():
            stdout += channel.recv(_READ_CHUNK)
            progressed = True
        while channel.recv_stderr_ready():
            stderr += channel.recv_stderr(_READ_CHUNK)
            progressed = True
        if not sudo_started and _STARTED_LINE in stderr:
            sudo_started = True
        if input_open and (sudo_started or prompt in stderr):
            # Answer sudo's first prompt, and only before the command started (with NOPASSWD the
            # marker comes first and the password is never sent); a second prompt (a refused
            # password) then reads end of input.
            if password is not None and not sudo_started and not channel.closed:
                channel.sendall((password + "\n").encode())
            channel.shutdown_write()
            input_open = False
        if len(stdout) + len(stderr) > max_output:
            truncated = True
            stdout = stdout[:max_output]
            stderr = stderr[: max_output - len(stdout)]
            break
        if channel.closed or (
            channel.eof_received and not channel.recv_ready() and not channel.recv_stderr_ready()
        ):
            break
        now = time.monotonic()
        if progressed:
            last_activity = now
        waiting = ""
        if not sudo_started:
            unanswered = ", nor shown the password prompt midprobe answers" if input_open else ""
            waiting = f" (sudo had not started it{unanswered})"
        if now >= deadline:
            raise ReadTimeout(f"command {command!r}{waiting}", timeout)
        if now - last_activity >= channel_timeout:
            raise ReadTimeout(f"waiting for output of {command!r}{waiting}", channel_timeout)
        select.select([channel], [], [], max(0.0, min(deadline - now, last_activity + channel_timeout - now)))
    exit_status: int | None = None
    if not truncated:
        channel.status_event.wait(max(0.0, min(deadline - time.monotonic(), 5.0)))
        if channel.status_event.is_set() and channel.exit_status >= 0:
            exit_status = channel.exit_status
    if sudo is not None:
        sudo_text, command_stderr = split_sudo_stderr(bytes(stderr))
        if command_stderr is None and not truncated:
            reason = sudo_failure_reason(
                sudo_text.decode("utf-8", errors="replace"),
                with_password=sudo.password is not None,
                prompts=stderr.count(prompt),
                exit_status=exit_status,
            )
            raise SudoFailed(command, sudo.user, sudo.host, reason)
        # sudo's own warnings (e.g. "unable to resolve host") stay; its prompts and our marker go.
        stderr = bytearray(sudo_text + (command_stderr or b""))
    return CommandOutput(
        command=command,
        stdout=stdout.decode("utf-8", errors="replace"),
        stderr=stderr.decode("utf-8", errors="replace"),
        exit_status=exit_status,
        truncated=truncated,
        elapsed_ms=round((time.monotonic() - started) * 1000.0, 3),
    )


# -- the async surface ---------------------------------------------------------------------------


class SSHConnection:
    """An authenticated connection; run commands on it one after another."""

    def __init__(
        self,
        transport: paramiko.Transport,
        credential: SSHCredential,
        info: ConnectionInfo,
        timeouts: SSHTimeouts,
        deadline: _Deadline,
    ) -> None:
        self._transport = transport
        self._credential = credential
        self.info = info
        self._timeouts = timeouts
        self._deadline = deadline
        self._lock = asyncio.Lock()

    async def run(
        self,
        command: str,
        *,
        must_sudo: bool = False,
        set_path: str | None = DEFAULT_PATH,
        max_output: int = DEFAULT_MAX_OUTPUT_BYTES,
        command_timeout: float | None = None,
        channel_timeout: float | None = None,
    ) -> CommandOutput:
        sudo: _Sudo | None = None
        if must_sudo:
            password = (
                self._credential.password.reveal()
                if isinstance(self._credential, SSHPasswordCredential)
                else None
            )
            sudo = _Sudo(self.info.user, self.info.host, password)
        line = compose_command(
            command,
            set_path=set_path,
            must_sudo=must_sudo,
            sudo_with_password=sudo is not None and sudo.password is not None,
        )
        what = f"command {command!r}"
        limit = self._deadline.step(command_timeout or self._timeouts.command, what)
        idle_timeout = min(channel_timeout or self._timeouts.channel, limit)
        async with self._lock:
            return await _in_pool(
                functools.partial(
                    _run_command,
                    self._transport,
                    command,
                    line,
                    sudo=sudo,
                    timeout=limit,
                    channel_timeout=idle_timeout,
                    max_output=max_output,
                ),
                what=what,
                limit=limit,
                abort=functools.partial(close_transport, self._transport),
            )

    def close(self) -> None:
        close_transport(self._transport)


@contextlib.asynccontextmanager
async def ssh_connection(
    host: str,
    port: int,
    *,
    store: CredentialStore,
    known_hosts: KnownHostsStore,
    strict_host_keys: bool = False,
    timeouts: SSHTimeouts = SSHTimeouts(),
    deadline: float,
    restrict_id: str | None = None,
    restrict_tag: str | None = None,
) -> AsyncIterator[SSHConnection]:
    """Connect and log in with the first credential that works (ECC.md section 5 order).

    Raises ``AuthenticationFailed`` when every credential is rejected (the address is
    then skipped for a while), ``ConnectTimeout``/``ReadTimeout``/``NetworkError``/
    ``ProtocolError``/``HostKeyMismatch`` for everything else.
    """
    host = str(ipaddress.ip_address(host))
    clock = _Deadline(deadline, max(0.0, deadline - time.monotonic()))
    skipped = store.skip_remaining(host, PROTOCOL_SSH)
    if skipped > 0:
        raise AuthenticationFailed(
            f"{host}: every SSH credential failed recently; skipped for another {skipped:.0f} s"
        )
    candidates = [
        credential
        for credential in store.candidates(
            host, PROTOCOL_SSH, restrict_id=restrict_id, restrict_tag=restrict_tag
        )
        if isinstance(credential, SSHPasswordCredential | SSHPrivateKeyCredential)
    ]
    if not candidates:
        restriction = (
            f" (restricted to id={restrict_id!r} tag={restrict_tag!r})" if restrict_id or restrict_tag else ""
        )
        raise AuthenticationFailed(
            f"{host}: no SSH credential applies{restriction} (scope, or failure budgets spent)"
        )
    async with _limits().slot(host, port):
        connection = await _log_in(
            host, port, candidates, store, known_hosts, strict_host_keys, timeouts, clock
        )
        try:
            yield connection
        finally:
            connection.close()


async def _log_in(
    host: str,
    port: int,
    candidates: list[SSHCredential],
    store: CredentialStore,
    known_hosts: KnownHostsStore,
    strict: bool,
    timeouts: SSHTimeouts,
    clock: _Deadline,
) -> SSHConnection:
    tried: list[str] = []
    rejections: list[str] = []
    transport: paramiko.Transport | None = None
    host_key: HostKey | None = None
    status: HostKeyStatus = "new"
    user: str | None = None
    opened = _OpenedTransports()
    abort = opened.abort

    try:
        for credential in candidates:
            # sshd refuses a change of user on one connection, and may have closed it.
            if transport is None or not transport.is_active() or credential.user != user:
                if transport is not None:
                    close_transport(transport)
                connect_timeout = clock.step(timeouts.connect, f"TCP connect to {host}:{port}")
                sock = await _tcp_connect(host, port, connect_timeout)
                handshake_timeout = clock.step(timeouts.connect, f"SSH handshake with {host}:{port}")
                transport, offered, offered_status = await _in_pool(
                    functools.partial(
                        _handshake, sock, host, port, known_hosts, strict, handshake_timeout, opened.add
                    ),
                    what=f"SSH handshake with {host}:{port}",
                    limit=handshake_timeout,
                    abort=abort,
                )
                if host_key is None:  # the first contact of this probe decides new/known/changed
                    host_key, status = offered, offered_status
                user = credential.user
            assert transport is not None
            auth_timeout = clock.step(timeouts.auth, "SSH authentication")
            tried.append(credential.id)
            try:
                await _in_pool(
                    functools.partial(_authenticate, transport, credential, auth_timeout),
                    what="SSH authentication",
                    limit=auth_timeout,
                    abort=abort,
                )
            except _Rejected as rejected:
                rejections.append(f"{credential.id}: {rejected.reason}")
                if rejected.counts:
                    store.record_failure(host, PROTOCOL_SSH, credential.id)
                continue
            store.record_success(host, PROTOCOL_SSH, credential.id)
            assert host_key is not None
            info = ConnectionInfo(
                host=host,
                port=port,
                credential_id=credential.id,
                user=credential.user,
                host_key=host_key,
                host_key_status=status,
                server_version=transport.remote_version,
                credentials_tried=tuple(tried),
            )
            return SSHConnection(transport, credential, info, timeouts, clock)
    except BaseException:
        abort()
        raise
    abort()
    store.record_exhausted(host, PROTOCOL_SSH)
    raise AuthenticationFailed(f"{host}:{port}: every SSH credential was rejected ({'; '.join(rejections)})")

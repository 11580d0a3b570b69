"""The session layer of SSH: log in with the first credential that works, then run commands.

``ssh_connection`` takes a connection slot (``pool.py``), connects and checks the host key
(``transport.py``), tries the credentials in the store's order, and yields an ``SSHConnection``
whose ``run`` drives one command at a time on a fresh channel (``channel.py``). Every blocking
step runs in the SSH pool under its own deadline, cut to the probe's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import paramiko

from midprobe.capabilities.errors import AuthenticationFailed, ChannelOpenFailed, ReadTimeout
from midprobe.probes.credentials import (
    PROTOCOL_SSH,
    CredentialStore,
    SSHPasswordCredential,
    SSHPrivateKeyCredential,
)
from midprobe.probes.ssh.channel import (
    DEFAULT_MAX_OUTPUT_BYTES,
    DEFAULT_PATH,
    SUDO_PROMPT,
    SUDO_STARTED,
    ChannelHolder,
    CommandLimits,
    CommandOutput,
    Sudo,
    compose_command,
    run_command,
    split_sudo_stderr,
    sudo_failure_reason,
)
from midprobe.probes.ssh.known_hosts import HostKey, KnownHostsStore
from midprobe.probes.ssh.pool import (
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_HOST,
    Deadline,
    connection_limits,
    in_pool,
)
from midprobe.probes.ssh.transport import (
    HostKeyStatus,
    OpenedTransports,
    close_transport,
    handshake,
    tcp_connect,
    translate_error,
)

# The names other modules imported from here before the layers were split stay importable.
__all__ = [
    "DEFAULT_MAX_OUTPUT_BYTES",
    "DEFAULT_PATH",
    "MAX_CONNECTIONS",
    "MAX_CONNECTIONS_PER_HOST",
    "SUDO_PROMPT",
    "SUDO_STARTED",
    "CommandOutput",
    "ConnectionInfo",
    "HostKeyStatus",
    "SSHConnection",
    "SSHCredential",
    "SSHTimeouts",
    "compose_command",
    "log_in",
    "split_sudo_stderr",
    "ssh_candidates",
    "ssh_connection",
    "sudo_failure_reason",
    "translate_error",
]

SSHCredential = SSHPasswordCredential | SSHPrivateKeyCredential


@dataclass(frozen=True)
class SSHTimeouts:
    """Seconds allowed for each step; every step is also cut to the probe's deadline."""

    connect: float = 15.0  # TCP connect, and the SSH handshake (banner + key exchange)
    auth: float = 30.0  # one authentication attempt
    command: float = 300.0  # one command from exec to exit
    channel: float = 300.0  # opening a channel, and the longest silence while a command runs


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


class _Rejected(Exception):
    """The server refused one credential; ``counts`` says whether it was a wrong secret."""

    def __init__(self, reason: str, *, counts: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.counts = counts


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


# -- the async surface ---------------------------------------------------------------------------


class SSHConnection:
    """An authenticated connection; run commands on it one after another."""

    def __init__(
        self,
        transport: paramiko.Transport,
        credential: SSHCredential,
        info: ConnectionInfo,
        timeouts: SSHTimeouts,
        deadline: Deadline,
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
        sudo: Sudo | None = None
        if must_sudo:
            password = (
                self._credential.password.reveal()
                if isinstance(self._credential, SSHPasswordCredential)
                else None
            )
            sudo = Sudo(self.info.user, self.info.host, password)
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
            while True:
                holder = ChannelHolder()
                try:
                    return await in_pool(
                        functools.partial(
                            run_command,
                            self._transport,
                            command,
                            line,
                            sudo=sudo,
                            limits=CommandLimits(limit, idle_timeout, max_output),
                            holder=holder,
                        ),
                        what=what,
                        limit=limit,
                        abort=functools.partial(self._abort, holder),
                    )
                except ChannelOpenFailed:
                    if not await self._reconnect():
                        raise

    def _abort(self, holder: ChannelHolder) -> None:
        """A command was cancelled or ran past its limit inside paramiko: unblock it. This
        connection is the command's own, so it is closed (a pooled lease ends only the channel)."""
        close_transport(self._transport)

    async def _reconnect(self) -> bool:
        """No channel could be opened, so the command did not start: whether it may run again,
        on another connection this method put in place (a pooled connection's lease does)."""
        return False

    @property
    def transport(self) -> paramiko.Transport:
        return self._transport

    @property
    def credential(self) -> SSHCredential:
        return self._credential

    def is_active(self) -> bool:
        """Whether the connection still stands (paramiko has seen no close, reset or EOF)."""
        return bool(self._transport.is_active())

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
    """Connect and log in with the first credential that works (docs/ecc-reference.md section 5 order).

    Raises ``AuthenticationFailed`` when every credential is rejected (the address is
    then skipped for a while), ``ConnectTimeout``/``ReadTimeout``/``NetworkError``/
    ``ProtocolError``/``HostKeyMismatch`` for everything else.
    """
    host = str(ipaddress.ip_address(host))
    clock = Deadline(deadline, max(0.0, deadline - time.monotonic()))
    candidates = ssh_candidates(host, store, restrict_id, restrict_tag)
    async with connection_limits().slot(host, port):
        connection = await log_in(
            host, port, candidates, store, known_hosts, strict_host_keys, timeouts, clock
        )
        try:
            yield connection
        finally:
            connection.close()


def ssh_candidates(
    host: str, store: CredentialStore, restrict_id: str | None, restrict_tag: str | None
) -> list[SSHCredential]:
    """The SSH credentials to try on ``host``, in order (its affinity first); raises
    ``AuthenticationFailed`` when the address is being skipped or no credential applies."""
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
    return candidates


async def log_in(
    host: str,
    port: int,
    candidates: list[SSHCredential],
    store: CredentialStore,
    known_hosts: KnownHostsStore,
    strict: bool,
    timeouts: SSHTimeouts,
    clock: Deadline,
) -> SSHConnection:
    tried: list[str] = []
    rejections: list[str] = []
    transport: paramiko.Transport | None = None
    host_key: HostKey | None = None
    status: HostKeyStatus = "new"
    user: str | None = None
    opened = OpenedTransports()
    abort = opened.abort

    try:
        for credential in candidates:
            # sshd refuses a change of user on one connection, and may have closed it.
            if transport is None or not transport.is_active() or credential.user != user:
                if transport is not None:
                    close_transport(transport)
                connect_timeout = clock.step(timeouts.connect, f"TCP connect to {host}:{port}")
                sock = await tcp_connect(host, port, connect_timeout)
                handshake_timeout = clock.step(timeouts.connect, f"SSH handshake with {host}:{port}")
                transport, offered, offered_status = await in_pool(
                    functools.partial(
                        handshake, sock, host, port, known_hosts, strict, handshake_timeout, opened.add
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
                await in_pool(
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

"""Reused SSH connections: one authenticated connection per host and credential, a channel per command.

An ``SSHConnectionPool`` belongs to one agent (the probe runner makes it, hands it to the SSH
probes in ``ProbeContext.ssh_pool`` and closes it when the agent stops). Requests for the same
host, port, user and credential share a logged-in paramiko transport: each request leases it and
runs its commands on channels of their own, up to ``channels_per_connection`` at once; more
requests open more connections, at most ``connections_per_host`` per host (over every credential),
and past that they wait for a channel. A connection nobody uses is closed after
``idle_seconds``. A connection found dead is dropped; a command whose channel could not be opened
on a reused connection (so it never started) runs once more on a fresh one, and the connection
that refused it takes no new lease and is closed once the commands still running on it are done
(a server that refuses one channel, at its ``MaxSessions`` for instance, keeps the others).

The pool key names the credential by its id and a SHA-256 digest of its secret, never the secret,
and includes the known-hosts store and host key policy the connection was checked under, so a
request only reuses a connection whose host key was checked the way it would have checked it.
The pool serves one event loop (the agent's).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import ipaddress
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from midprobe.capabilities.errors import ConfigError, ProbeError, ProbeTimeout
from midprobe.probes.credentials import CredentialStore, SSHPasswordCredential
from midprobe.probes.ssh.channel import ChannelHolder
from midprobe.probes.ssh.known_hosts import KnownHostsStore
from midprobe.probes.ssh.pool import MAX_CONNECTIONS, MAX_CONNECTIONS_PER_HOST, Deadline
from midprobe.probes.ssh.session import (
    ConnectionInfo,
    SSHConnection,
    SSHCredential,
    SSHTimeouts,
    log_in,
    ssh_candidates,
)

#: How long an unused connection stays open by default (seconds).
DEFAULT_IDLE_SECONDS = 5.0
#: Channels at once on one connection; OpenSSH's sshd allows 10 (``MaxSessions``) by default.
DEFAULT_CHANNELS_PER_CONNECTION = 8


@dataclass(frozen=True)
class PoolSettings:
    """How the pool reuses connections."""

    idle_seconds: float = DEFAULT_IDLE_SECONDS
    channels_per_connection: int = DEFAULT_CHANNELS_PER_CONNECTION
    connections_per_host: int = MAX_CONNECTIONS_PER_HOST

    def __post_init__(self) -> None:
        if not self.idle_seconds >= 0:
            raise ConfigError("must be 0 or more seconds", field="idle_seconds")
        if self.channels_per_connection < 1:
            raise ConfigError("must be at least 1", field="channels_per_connection")
        if not 1 <= self.connections_per_host <= MAX_CONNECTIONS_PER_HOST:
            raise ConfigError(
                f"must be between 1 and {MAX_CONNECTIONS_PER_HOST}", field="connections_per_host"
            )


@dataclass(frozen=True)
class PoolKey:
    """What a connection can be reused for (no secret: the credential is named by a digest)."""

    host: str
    port: int
    user: str
    #: The credential's id and the SHA-256 of its secret (a changed secret is another credential).
    credential: str
    #: ``id()`` of the known-hosts store the host key was checked against, and the policy used.
    known_hosts: int
    strict_host_keys: bool


def credential_identity(credential: SSHCredential) -> str:
    """``id:digest``: the credential's id and the first 16 hex digits of SHA-256 over its secret."""
    if isinstance(credential, SSHPasswordCredential):
        secret = credential.password.reveal().encode()
    else:
        secret = credential.key.asbytes()
    digest = hashlib.sha256(credential.user.encode() + b"\0" + secret).hexdigest()[:16]
    return f"{credential.id}:{digest}"


class _Entry:
    """One pooled connection and how many leases use it now."""

    def __init__(self, key: PoolKey, connection: SSHConnection) -> None:
        self.key = key
        self.connection = connection
        self.channels = 0
        self.leases = 0
        self.closed = False
        #: Refused a channel: no new lease takes it, and it is closed when its last lease ends.
        self.retired = False
        self.idle_timer: asyncio.TimerHandle | None = None

    def alive(self) -> bool:
        return not self.closed and self.connection.is_active()


@dataclass(frozen=True)
class _Request:
    """What one lease asks for: where, with which credentials, under which checks and deadline."""

    host: str
    port: int
    store: CredentialStore
    known_hosts: KnownHostsStore
    strict: bool
    timeouts: SSHTimeouts
    clock: Deadline
    restrict_id: str | None
    restrict_tag: str | None

    def candidates(self) -> list[SSHCredential]:
        return ssh_candidates(self.host, self.store, self.restrict_id, self.restrict_tag)

    def key(self, credential: SSHCredential) -> PoolKey:
        return PoolKey(
            self.host,
            self.port,
            credential.user,
            credential_identity(credential),
            id(self.known_hosts),
            self.strict,
        )


class PooledConnection(SSHConnection):
    """A lease on a pooled connection: ``run`` as on any ``SSHConnection``, under this lease's deadline.

    A command whose channel could not be opened (the connection died under it, so the command
    did not start) runs once more on a fresh connection.
    """

    def __init__(self, pool: SSHConnectionPool, entry: _Entry, request: _Request) -> None:
        self._pool = pool
        self._entry = entry
        self._request = request
        self._retried = False
        shared = entry.connection
        super().__init__(
            shared.transport, shared.credential, _info_of(entry), request.timeouts, request.clock
        )

    async def _reconnect(self) -> bool:
        if self._retried or self._pool.closed:
            return False
        self._retried = True
        self._entry = await self._pool._replace(self._entry, self._request)
        shared = self._entry.connection
        self._transport, self._credential = shared.transport, shared.credential
        self.info = _info_of(self._entry)
        return True

    def _abort(self, holder: ChannelHolder) -> None:
        """End only the command's channel: the connection carries other leases' commands too."""
        holder.close()

    def close(self) -> None:
        """Drop this connection from the pool and close it (the lease itself ends with its block)."""
        self._pool._discard(self._entry)


def _info_of(entry: _Entry) -> ConnectionInfo:
    """What a lease of ``entry`` reports: the first lease the login (host key new/known/changed,
    credentials tried); later ones the key checked then as known, and the credential used."""
    info = entry.connection.info
    if entry.leases > 1:
        info = dataclasses.replace(info, host_key_status="known", credentials_tried=(info.credential_id,))
    return info


class SSHConnectionPool:
    """The agent's SSH connections (see the module docstring); ``await close()`` when the agent stops."""

    def __init__(self, settings: PoolSettings | None = None) -> None:
        self.settings = settings or PoolSettings()
        self._entries: dict[PoolKey, list[_Entry]] = {}
        self._per_host: dict[tuple[str, int], int] = {}
        self._opening: dict[PoolKey, asyncio.Task[_Entry]] = {}
        self._changed: asyncio.Event | None = None
        self._leases: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False
        #: Connections logged in over the pool's life (a measure of reuse).
        self.opened = 0

    def open_connections(self, host: str, port: int = 22) -> int:
        """Connections to ``host``:``port`` open or being opened now."""
        return self._per_host.get((str(ipaddress.ip_address(host)), port), 0)

    @contextlib.asynccontextmanager
    async def lease(
        self,
        host: str,
        port: int,
        *,
        store: CredentialStore,
        known_hosts: KnownHostsStore,
        strict_host_keys: bool = False,
        timeouts: SSHTimeouts,
        deadline: float,
        restrict_id: str | None = None,
        restrict_tag: str | None = None,
    ) -> AsyncIterator[SSHConnection]:
        """A logged-in connection to ``host`` as ``ssh_connection`` gives one, shared with other leases.

        Raises what ``ssh_connection`` raises, and ``ProbeTimeout`` when no channel came free
        before ``deadline``.
        """
        request = _Request(
            host=str(ipaddress.ip_address(host)),
            port=port,
            store=store,
            known_hosts=known_hosts,
            strict=strict_host_keys,
            timeouts=timeouts,
            clock=Deadline(deadline, max(0.0, deadline - time.monotonic())),
            restrict_id=restrict_id,
            restrict_tag=restrict_tag,
        )
        leases = self._on_this_loop()
        async with leases:
            entry = await self._acquire(request)
            connection = PooledConnection(self, entry, request)
            try:
                yield connection
            finally:
                self._release(connection._entry)

    async def close(self) -> None:
        """Close every connection and stop every login under way (the agent is stopping)."""
        self.closed = True
        opening = list(self._opening.values())
        for task in opening:
            task.cancel()
        await asyncio.gather(*opening, return_exceptions=True)
        for entries in list(self._entries.values()):
            for entry in list(entries):
                self._discard(entry)
        self._notify()

    # -- internals -------------------------------------------------------------------------------

    def _on_this_loop(self) -> asyncio.Semaphore:
        """The lease slots of the running loop. A pool serves one loop; when another loop takes it
        over (the first one ended), what the first one held is closed and the pool starts afresh."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._leases is None:
            for entries in list(self._entries.values()):
                for entry in list(entries):
                    self._discard(entry)
            self._opening.clear()
            self._per_host.clear()
            self._changed = None
            self._loop = loop
            # Each lease runs its commands in the SSH thread pool, one at a time: at most as many
            # leases as that pool has threads.
            self._leases = asyncio.Semaphore(MAX_CONNECTIONS)
        return self._leases

    async def _acquire(self, request: _Request, *, avoid: _Entry | None = None) -> _Entry:
        where = (request.host, request.port)
        while True:
            if self.closed:
                raise ProbeError("the agent is stopping: its SSH connections are closed")
            candidates = request.candidates()
            key = request.key(candidates[0])
            entry = self._free_entry(key, avoid)
            if entry is not None:
                self._take(entry)
                return entry
            pending = self._opening.get(key)
            if pending is None and self._per_host.get(where, 0) < self.settings.connections_per_host:
                self._per_host[where] = self._per_host.get(where, 0) + 1
                pending = self._opening[key] = asyncio.create_task(self._open(key, request, candidates))
                pending.add_done_callback(_retrieve)
            if pending is None:
                idle = self._idle_entry(where)
                if idle is not None:  # the host is full, but one of its connections is unused
                    self._discard(idle)
                    continue
                await self._wait(self._changed_event(), request, "a free SSH channel")
                continue
            await self._wait(pending, request, f"SSH login to {request.host}:{request.port}")
            if pending.done() and not pending.cancelled() and pending.exception() is not None:
                raise pending.exception()  # type: ignore[misc]

    async def _wait(
        self, awaitable: asyncio.Event | asyncio.Task[_Entry], request: _Request, what: str
    ) -> None:
        remaining = request.clock.step(request.clock.total, what)
        waiter = (
            asyncio.ensure_future(awaitable.wait()) if isinstance(awaitable, asyncio.Event) else awaitable
        )
        done, _ = await asyncio.wait([waiter], timeout=remaining)
        if isinstance(awaitable, asyncio.Event) and not done:
            waiter.cancel()
        if not done:
            raise ProbeTimeout(f"waiting for {what}", request.clock.total)

    async def _open(self, key: PoolKey, request: _Request, candidates: list[SSHCredential]) -> _Entry:
        where = (request.host, request.port)
        try:
            connection = await log_in(
                request.host,
                request.port,
                candidates,
                request.store,
                request.known_hosts,
                request.strict,
                request.timeouts,
                request.clock,
            )
        except BaseException:
            self._per_host[where] -= 1
            raise
        finally:
            self._opening.pop(key, None)
            self._notify()
        # The login may have got in with a later credential than the first: pool it under that one.
        entry = _Entry(request.key(connection.credential), connection)
        if self.closed:
            self._per_host[where] -= 1
            connection.close()
            raise ProbeError("the agent is stopping: its SSH connections are closed")
        self._entries.setdefault(entry.key, []).append(entry)
        self.opened += 1
        self._idle(entry)
        return entry

    def _free_entry(self, key: PoolKey, avoid: _Entry | None) -> _Entry | None:
        for entry in list(self._entries.get(key, ())):
            if not entry.alive():
                self._discard(entry)
            elif (
                entry is not avoid
                and not entry.retired
                and entry.channels < self.settings.channels_per_connection
            ):
                return entry
        return None

    def _idle_entry(self, where: tuple[str, int]) -> _Entry | None:
        for key, entries in self._entries.items():
            if (key.host, key.port) == where:
                for entry in entries:
                    if entry.channels == 0:
                        return entry
        return None

    def _take(self, entry: _Entry) -> None:
        entry.channels += 1
        entry.leases += 1
        if entry.idle_timer is not None:
            entry.idle_timer.cancel()
            entry.idle_timer = None

    def _release(self, entry: _Entry) -> None:
        entry.channels -= 1
        if not entry.closed and entry.channels == 0:
            if entry.retired:
                self._discard(entry)
            else:
                self._idle(entry)
        self._notify()

    def _idle(self, entry: _Entry) -> None:
        """Close ``entry`` after the idle time unless a lease takes it first."""
        if entry.channels == 0 and entry.idle_timer is None:
            loop = asyncio.get_running_loop()
            entry.idle_timer = loop.call_later(self.settings.idle_seconds, self._expire, entry)

    def _expire(self, entry: _Entry) -> None:
        entry.idle_timer = None
        if entry.channels == 0:
            self._discard(entry)

    async def _replace(self, entry: _Entry, request: _Request) -> _Entry:
        """``entry`` refused a channel under a lease: lease a fresh connection instead. ``entry``
        takes no new lease and is closed when the last command still running on it ends (now, if
        none is); a dead one is closed by whoever finds it so."""
        entry.retired = True
        self._release(entry)
        return await self._acquire(request, avoid=entry)

    def _discard(self, entry: _Entry) -> None:
        if entry.closed:
            return
        entry.closed = True
        if entry.idle_timer is not None:
            entry.idle_timer.cancel()
            entry.idle_timer = None
        entries = self._entries.get(entry.key, [])
        if entry in entries:
            entries.remove(entry)
        if not entries:
            self._entries.pop(entry.key, None)
        where = (entry.key.host, entry.key.port)
        self._per_host[where] -= 1
        if not self._per_host[where]:
            del self._per_host[where]
        entry.connection.close()
        self._notify()

    def _changed_event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _notify(self) -> None:
        """Wake every lease waiting for a channel; they look again."""
        if self._changed is not None:
            self._changed.set()
            self._changed = None


def _retrieve(task: asyncio.Task[_Entry]) -> None:
    """A login nobody waits for any more still has its error read (no 'never retrieved' warning)."""
    if not task.cancelled():
        task.exception()

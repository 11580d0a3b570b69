"""The SNMP client: get, walk and bulk walk against one agent, v1/v2c/v3, bounded everywhere.

v1/v2c go through the native codec (``native.py``), v3 through the native USM session
(``v3_session.py``), and pysnmp (``pysnmp_backend.py``) when asked for or for a protocol the
native USM lacks; the retry, adaptation and walking logic here is the same for all. The bulk size (varbinds
asked per GETBULK) is learnt per agent address: it shrinks on ``tooBig`` or a lost answer,
grows while full answers come back fast, and is remembered in a ``BulkSizeMemory`` shared
across runs. A walk stops at the end of its subtree, at ``endOfMibView``, and on an OID that
does not increase (a broken agent would otherwise loop forever).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Protocol

from midprobe.capabilities.errors import ConfigError
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.snmp.auth import CommunityAuth, SnmpAuth, UsmAuth
from midprobe.probes.snmp.codec import (
    ERROR_STATUS_NAMES,
    GET_BULK_REQUEST,
    GET_NEXT_REQUEST,
    GET_REQUEST,
    NO_SUCH_NAME,
    TOO_BIG,
    Reply,
    SnmpDecodeError,
)
from midprobe.probes.snmp.errors import (
    SnmpAuthenticationFailed,
    SnmpDeadlineExceeded,
    SnmpDecryptionFailed,
    SnmpErrorStatus,
    SnmpProtocolError,
    SnmpTimeout,
)
from midprobe.probes.snmp.native import NativeSession
from midprobe.probes.snmp.signals import NoResponse, TooBigLocally
from midprobe.probes.snmp.values import (
    Oid,
    SnmpType,
    SnmpValue,
    VarBind,
    format_oid,
)

if TYPE_CHECKING:
    from midprobe.probes.snmp.pysnmp_backend import PysnmpEngines

Backend = Literal["auto", "native", "pysnmp"]


@dataclass(frozen=True)
class ClientOptions:
    """Per-request behaviour. ``timeout`` is one attempt's wait; ``retries`` extra attempts."""

    timeout: float = 1.5
    retries: int = 2
    use_bulk: bool = True
    #: Varbinds asked per GETBULK before anything is known about the agent (then: learnt per address).
    initial_bulk: int = 25
    max_bulk: int = 200
    #: An answer faster than this (and complete) lets the bulk size grow.
    fast_response: float = 0.1
    #: Upper bound of varbinds one walk collects (a runaway agent cannot fill memory).
    max_varbinds: int = 500_000
    #: ``auto``: the native codec (v1/v2c, and v3 with the protocols ``usm.py`` implements), else pysnmp.
    backend: Backend = "auto"

    def __post_init__(self) -> None:
        if not 0 < self.timeout <= 600:
            raise ConfigError("must be between 0 and 600 seconds", field="timeout")
        if not 0 <= self.retries <= 20:
            raise ConfigError("must be between 0 and 20", field="retries")
        if not 1 <= self.initial_bulk <= self.max_bulk <= 10_000:
            raise ConfigError("need 1 <= initial_bulk <= max_bulk <= 10000", field="initial_bulk")
        if self.max_varbinds < 1:
            raise ConfigError("must be at least 1", field="max_varbinds")


@dataclass
class _BulkState:
    size: int
    good: int = 0  # the largest size the agent answered
    bad: int | None = None  # the smallest size it called tooBig


class BulkSizeMemory:
    """The bulk size (varbinds per GETBULK) learnt for each agent address; shared by runs and threads.

    Grows by half while full answers come back fast, halves on tooBig, and never grows back
    past a size that was too big: it bisects between the largest size answered and the
    smallest one refused, so an agent with a size limit costs a few tooBigs, not one per walk.
    """

    def __init__(self) -> None:
        self._states: dict[str, _BulkState] = {}
        self._lock = threading.Lock()

    def get(self, address: str) -> int | None:
        with self._lock:
            state = self._states.get(address)
            return state.size if state is not None else None

    def set(self, address: str, size: int) -> None:
        with self._lock:
            self._states.setdefault(address, _BulkState(size)).size = size

    def too_big(self, address: str, size: int) -> int:
        """``size`` was refused with tooBig: the size to try instead."""
        with self._lock:
            state = self._states.setdefault(address, _BulkState(size))
            state.bad = size if state.bad is None else min(state.bad, size)
            state.size = state.good if 0 < state.good < size else max(1, size // 2)
            return state.size

    def answered(self, address: str, size: int, *, grow: bool, limit: int) -> int:
        """``size`` was answered (quickly and in full when ``grow``): the size for next time."""
        with self._lock:
            state = self._states.setdefault(address, _BulkState(size))
            state.good = max(state.good, size)
            following = size
            if grow:
                following = min(limit, size + size // 2 + 1)
                if state.bad is not None and following >= state.bad:
                    following = max(size, (size + state.bad) // 2)
            state.size = following
            return following

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {address: state.size for address, state in self._states.items()}


@dataclass
class ClientStats:
    """What the client did; for logs, benchmarks and tests."""

    requests: int = 0
    retries: int = 0
    timeouts: int = 0
    too_big: int = 0
    bulk_sizes: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class WalkResult:
    """The varbinds under ``root`` in OID order; ``stopped`` says why a walk ended early."""

    root: Oid
    varbinds: tuple[VarBind, ...]
    stopped: str | None = None

    @property
    def complete(self) -> bool:
        return self.stopped is None


class SnmpSession(Protocol):
    """One open conversation with an agent: the native codec, pysnmp, or a replayed walk (tests)."""

    target: str

    @property
    def malformed(self) -> SnmpDecodeError | None: ...

    def send(self, pdu_type: int, oids: Sequence[Oid], max_repetitions: int) -> asyncio.Future[Reply]: ...

    async def close(self) -> None: ...


class SessionOpener(Protocol):
    """Opens the session a client talks through (injected: ``replay.ReplayAgent`` in tests)."""

    async def __call__(self, address: str, port: int, auth: SnmpAuth) -> SnmpSession: ...


@dataclass
class _Attempt:
    future: asyncio.Future[Reply]
    oids: Sequence[Oid]
    repetitions: int
    sent_at: float


#: sysUpTime.0, what a diagnosis asks for.
_SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)


class SnmpClient:
    """Talks to one agent. Use ``async with SnmpClient(...) as client``.

    The address is checked against ``policy`` before any packet is sent; ``deadline``
    (a ``time.monotonic()`` value) bounds every wait. ``opener`` replaces the backends
    (the native codec, pysnmp) with another session, e.g. a replayed walk.
    """

    def __init__(
        self,
        address: str,
        auth: SnmpAuth,
        *,
        port: int = 161,
        options: ClientOptions | None = None,
        policy: TargetPolicy | None = None,
        deadline: float | None = None,
        memory: BulkSizeMemory | None = None,
        engines: PysnmpEngines | None = None,
        opener: SessionOpener | None = None,
    ) -> None:
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            raise ConfigError(f"{address!r} is not an IP address (resolve host names first)") from None
        if not 0 < port < 65536:
            raise ConfigError(f"{port} is not a UDP port", field="port")
        (policy or TargetPolicy.unrestricted()).check(parsed)
        self.address = str(parsed)
        self.port = port
        self.auth = auth
        self.options = options or ClientOptions()
        self.deadline = deadline
        self.memory = memory if memory is not None else BulkSizeMemory()
        self.stats = ClientStats()
        self._engines = engines
        self._opener = opener
        self._own_engines = False
        self._session: SnmpSession | None = None
        self._memory_key = self.address
        self._diagnose = True
        self.target = f"[{self.address}]:{port}" if parsed.version == 6 else f"{self.address}:{port}"

    @property
    def learnt_bulk_size(self) -> int | None:
        """Varbinds per GETBULK this agent is known to take well (None: not learnt yet)."""
        return self.memory.get(self._memory_key)

    # --- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> SnmpClient:
        await self._open()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def _open(self) -> SnmpSession:
        if self._session is not None:
            return self._session
        if self._opener is not None:
            self._session = await self._opener(self.address, self.port, self.auth)
            return self._session
        backend = self.options.backend
        native = backend in ("auto", "native")
        if isinstance(self.auth, CommunityAuth) and native:
            self._session = await NativeSession.open(self.address, self.port, self.auth)
        elif isinstance(self.auth, UsmAuth) and native and _native_usm(self.auth):
            from midprobe.probes.snmp.v3_session import NativeV3Session

            self._session = await NativeV3Session.open(self.address, self.port, self.auth)
        elif backend == "native":
            raise ConfigError(
                f"the native backend does not implement {self.auth.describe()}'s protocols", field="backend"
            )
        else:
            from midprobe.probes.snmp.pysnmp_backend import PysnmpEngines, PysnmpSession

            if self._engines is None:
                self._engines = PysnmpEngines()
                self._own_engines = True
            self._session = await PysnmpSession.open(
                self._engines, self.address, self.port, self.auth, self.options.timeout
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._own_engines and self._engines is not None:
            self._engines.close()
            self._engines = None

    # --- one request, with retries -------------------------------------------------------------

    def _remaining(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.monotonic()

    def _check_deadline(self) -> None:
        if self._remaining() <= 0:
            raise SnmpDeadlineExceeded(f"SNMP exchange with {self.target}", self.options.timeout)

    def _send(self, session: SnmpSession, pdu_type: int, oids: Sequence[Oid], repetitions: int) -> _Attempt:
        self.stats.requests += 1
        loop = asyncio.get_running_loop()
        return _Attempt(session.send(pdu_type, oids, repetitions), oids, repetitions, loop.time())

    async def _exchange(
        self, pdu_type: int, oids: Sequence[Oid], repetitions: int, first: _Attempt | None = None
    ) -> tuple[Reply, int, float]:
        """One request with retries: ``(reply, repetitions used, seconds it took)``.

        ``first`` is an attempt already sent (a walk sends its next request before it
        decodes the current answer). A lost GETBULK is retried with half the repetitions
        (devices that drop big answers are common); an answer to any earlier attempt of
        the same request still counts.
        """
        session = await self._open()
        loop = asyncio.get_running_loop()
        attempts: list[_Attempt] = []
        try:
            for number in range(self.options.retries + 1):
                self._check_deadline()
                if number == 0 and first is not None:
                    attempt = first
                else:
                    if number:
                        self.stats.retries += 1
                        if pdu_type == GET_BULK_REQUEST:
                            repetitions = max(1, repetitions // 2)
                    attempt = self._send(session, pdu_type, oids, repetitions)
                attempts.append(attempt)
                window_end = attempt.sent_at + min(self.options.timeout, self._remaining())
                while attempts:
                    wait = window_end - loop.time()
                    if wait <= 0:
                        break
                    done, _ = await asyncio.wait(
                        [each.future for each in attempts], timeout=wait, return_when=asyncio.FIRST_COMPLETED
                    )
                    if not done:
                        break
                    for each in list(attempts):
                        if not each.future.done():
                            continue
                        error = each.future.exception()
                        if error is None:
                            return each.future.result(), each.repetitions, loop.time() - each.sent_at
                        if isinstance(error, NoResponse):
                            attempts.remove(each)
                            continue
                        raise error
                self.stats.timeouts += 1
            self._check_deadline()
        finally:
            for each in attempts:
                if not each.future.done():
                    each.future.cancel()
                elif not each.future.cancelled():
                    each.future.exception()  # retrieved: a late failure is not "never retrieved"
        malformed = session.malformed
        if malformed is not None:
            raise SnmpProtocolError(f"SNMP agent {self.target} sent a malformed answer: {malformed}")
        timeout = SnmpTimeout(
            self.target,
            self.options.timeout,
            self.options.retries + 1,
            community_based=isinstance(self.auth, CommunityAuth),
        )
        if isinstance(self.auth, UsmAuth) and self.auth.priv_protocol is not None and self._diagnose:
            await self._diagnose_privacy(self.auth)
        raise timeout

    async def _diagnose_privacy(self, auth: UsmAuth) -> None:
        """After an authPriv request went unanswered: is the privacy key the culprit?

        net-snmp drops a request it cannot decrypt without a report, so a wrong privacy key
        looks like a dead agent. If the same user, same auth key, *without* privacy gets an
        answer (even ``authorizationError``), the agent is alive and the user and auth key
        are right: the privacy key or protocol is wrong. One extra request, failures only.
        """
        self._diagnose = False
        plain = dataclasses.replace(auth, priv_protocol=None, priv_key=None)
        options = dataclasses.replace(self.options, retries=0)
        probe = SnmpClient(
            self.address,
            plain,
            port=self.port,
            options=options,
            deadline=self.deadline,
            engines=self._engines,
            opener=self._opener,
        )
        probe._diagnose = False
        try:
            async with probe:
                await probe.get([_SYS_UPTIME])
        except SnmpErrorStatus:
            pass  # answered with an error-status: authenticated, hence alive
        except (SnmpTimeout, SnmpAuthenticationFailed, SnmpProtocolError, SnmpDeadlineExceeded):
            return
        raise SnmpDecryptionFailed(
            self.target,
            auth.user,
            detail="the agent dropped the encrypted request but answered the same user without privacy",
        )

    def _status_error(self, reply: Reply, oids: Sequence[Oid]) -> SnmpErrorStatus:
        index = reply.error_index
        oid = format_oid(oids[index - 1]) if 0 < index <= len(oids) else None
        name = ERROR_STATUS_NAMES.get(reply.error_status, "unknown error")
        return SnmpErrorStatus(self.target, reply.error_status, name, index, oid)

    def _varbinds(self, reply: Reply) -> tuple[VarBind, ...]:
        try:
            return reply.varbinds
        except SnmpDecodeError as error:
            raise SnmpProtocolError(f"SNMP agent {self.target} sent a malformed answer: {error}") from None

    # --- get and walk --------------------------------------------------------------------------

    async def get(self, oids: Sequence[Oid]) -> tuple[VarBind, ...]:
        """GET ``oids``; a missing object comes back as a ``noSuchObject``/``noSuchInstance``
        value (v1's ``noSuchName`` is turned into ``noSuchObject``)."""
        wanted = list(oids)
        missing: dict[Oid, SnmpValue] = {}
        asked = list(wanted)
        while asked:  # v1: each noSuchName removes one OID and asks again, so this ends
            reply, _, _ = await self._exchange(GET_REQUEST, asked, 0)
            if reply.error_status == NO_SUCH_NAME and 0 < reply.error_index <= len(asked):
                missing[asked.pop(reply.error_index - 1)] = SnmpValue(SnmpType.NO_SUCH_OBJECT, None)
                continue
            if reply.error_status:
                raise self._status_error(reply, asked)
            missing.update(self._varbinds(reply))
            break
        absent = SnmpValue(SnmpType.NO_SUCH_INSTANCE, None)
        return tuple((oid, missing.get(oid, absent)) for oid in wanted)

    async def walk(self, root: Oid) -> WalkResult:
        """Every varbind under ``root`` (``root`` itself excluded), in OID order.

        Like net-snmp's snmpwalk, a root with no subtree that is itself an instance
        (``sysDescr.0``) is fetched with a GET instead.
        """
        (result,) = await self.walk_many([root])
        if not result.varbinds and result.complete:
            ((oid, value),) = await self.get([root])
            if not value.is_exception:
                return WalkResult(root, ((oid, value),))
        return result

    async def walk_many(self, roots: Sequence[Oid], *, limit: int | None = None) -> tuple[WalkResult, ...]:
        """Walk several subtrees side by side (table columns): one request carries every
        unfinished cursor, so a table of N columns costs about what one column does.

        ``limit``: stop after this many varbinds (at most ``max_varbinds``)."""
        roots = list(roots)
        cursors = list(roots)
        collected: list[list[VarBind]] = [[] for _ in roots]
        stopped: list[str | None] = [None] * len(roots)
        active = list(range(len(roots)))
        use_bulk = self.options.use_bulk and self.auth.version != "1"
        limit = min(self.options.max_varbinds, limit or self.options.max_varbinds)
        prefetched: _Attempt | None = None
        try:
            while active:
                self._check_deadline()
                oids = [cursors[i] for i in active]
                width = len(oids)
                if use_bulk:
                    reply = await self._bulk(oids, prefetched)
                    prefetched = None
                    prefetched = await self._prefetch(reply, oids, [roots[i] for i in active])
                else:
                    reply, _, _ = await self._exchange(GET_NEXT_REQUEST, oids, 0)
                    if reply.error_status == NO_SUCH_NAME and 0 < reply.error_index <= width:
                        # v1 ends a walk with noSuchName: that column is done, ask again for the rest.
                        active.pop(reply.error_index - 1)
                        continue
                    if reply.error_status:
                        raise self._status_error(reply, oids)
                varbinds = self._varbinds(reply)
                if not varbinds:
                    break  # an agent that answers with nothing: nothing more to read
                finished: set[int] = set()
                if width == 1 and _plain_run(varbinds, roots[active[0]], cursors[active[0]]):
                    # The common case, checked in bulk: every varbind in the subtree, increasing.
                    collected[active[0]].extend(varbinds)
                    cursors[active[0]] = varbinds[-1][0]
                    varbinds = ()
                for position, (oid, value) in enumerate(varbinds):
                    column = active[position % width]
                    if column in finished:
                        continue
                    root = roots[column]
                    if value.type is SnmpType.END_OF_MIB_VIEW or oid[: len(root)] != root:
                        finished.add(column)
                    elif oid <= cursors[column]:
                        stopped[column] = (
                            f"OID not increasing: {format_oid(oid)} after {format_oid(cursors[column])}"
                        )
                        finished.add(column)
                    else:
                        collected[column].append((oid, value))
                        cursors[column] = oid
                total = sum(len(values) for values in collected)
                if total >= limit:
                    for column in active:
                        if column not in finished:
                            stopped[column] = (
                                f"stopped after {limit} varbinds (max_varbinds)"
                                if limit == self.options.max_varbinds
                                else f"stopped after {limit} varbinds (the walk's limit)"
                            )
                    break
                active = [column for column in active if column not in finished]
                if prefetched is not None and (not active or [cursors[i] for i in active] != prefetched.oids):
                    prefetched.future.cancel()  # guessed wrong (a column ended): ask afresh
                    prefetched = None
        finally:
            if prefetched is not None and not prefetched.future.done():
                prefetched.future.cancel()
        return tuple(
            WalkResult(root, tuple(values), reason)
            for root, values, reason in zip(roots, collected, stopped, strict=True)
        )

    async def _prefetch(self, reply: Reply, oids: list[Oid], roots: list[Oid]) -> _Attempt | None:
        """Send the next GETBULK from the reply's last row, before the reply is decoded.

        Only when every column of the last row is still inside its subtree and increasing:
        otherwise the walk's bookkeeping decides what to ask next.
        """
        if reply.error_status:
            return None
        row = reply.last_row(len(oids))
        if row is None:
            return None
        for (oid, value), root, cursor in zip(row, roots, oids, strict=True):
            if value.type is SnmpType.END_OF_MIB_VIEW or oid[: len(root)] != root or oid <= cursor:
                return None
        next_oids = [oid for oid, _ in row]
        session = await self._open()
        return self._send(session, GET_BULK_REQUEST, next_oids, self._repetitions(len(next_oids)))

    def _repetitions(self, width: int) -> int:
        budget = self.memory.get(self._memory_key) or self.options.initial_bulk
        return max(1, budget // width)

    async def _bulk(self, oids: list[Oid], prefetched: _Attempt | None) -> Reply:
        """One GETBULK for ``oids``, shrinking on tooBig; learns the bulk size."""
        width = len(oids)
        repetitions = prefetched.repetitions if prefetched is not None else self._repetitions(width)
        for _ in range(32):  # tooBig halves the size: bounded by log2 of the largest size
            try:
                reply, used, elapsed = await self._exchange(GET_BULK_REQUEST, oids, repetitions, prefetched)
            except TooBigLocally:
                if repetitions <= 1:
                    raise SnmpProtocolError(
                        f"one varbind from {self.target} is too big for a message"
                    ) from None
                repetitions = max(1, repetitions // 2)
                prefetched = None
                continue
            prefetched = None
            if reply.error_status == TOO_BIG:
                self.stats.too_big += 1
                if used <= 1:
                    raise self._status_error(reply, oids)
                retry = max(1, self.memory.too_big(self._memory_key, used * width) // width)
                repetitions = retry if retry < used else max(1, used // 2)
                continue
            if reply.error_status:
                raise self._status_error(reply, oids)
            break
        else:  # pragma: no cover - 32 halvings reach 1 from any size
            raise SnmpProtocolError(f"SNMP agent {self.target} kept answering tooBig")
        asked = used * width
        fast_and_full = elapsed < self.options.fast_response and reply.count() >= asked
        self.memory.answered(self._memory_key, asked, grow=fast_and_full, limit=self.options.max_bulk)
        self.stats.bulk_sizes.append(asked)
        return reply


def _native_usm(auth: UsmAuth) -> bool:
    from midprobe.probes.snmp.usm import supported

    return supported(auth)


def _plain_run(varbinds: Sequence[VarBind], root: Oid, cursor: Oid) -> bool:
    """True when every varbind lies under ``root``, after ``cursor``, in strictly increasing order.

    A subtree is one contiguous range of OIDs, so the first and last varbinds being inside
    it and the list increasing means all of them are; ``map`` keeps the loop in C.
    """
    last_oid, last_value = varbinds[-1]
    if last_value.type is SnmpType.END_OF_MIB_VIEW or last_oid[: len(root)] != root:
        return False
    oids = [oid for oid, _ in varbinds]
    return oids[0] > cursor and all(map(tuple.__lt__, oids, oids[1:]))

"""The SNMPv3 session over the native codec: USM engine discovery, time sync, reports as errors.

The first request waits for discovery (an empty noAuthNoPriv GET; the agent's report
carries its engine ID, boots and time), then every request is signed and encrypted with
the user's keys localised to that engine. A report is mapped to the error of its usmStats
counter; ``notInTimeWindow`` re-synchronises from the report and sends once more, and an
``unknownEngineID`` (the agent came back with a new engine ID) re-localises and sends once
more. Answers that fail their digest are ignored (and reported as malformed if nothing
valid comes), never trusted. Same seam as ``native.py``: ``send`` returns one attempt's future.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from midprobe.probes.snmp import errors
from midprobe.probes.snmp.auth import UsmAuth
from midprobe.probes.snmp.codec import (
    GET_BULK_REQUEST,
    GET_REQUEST,
    REPORT,
    LazyResponse,
    Reply,
    SnmpDecodeError,
    encode_octets,
    encode_pdu,
)
from midprobe.probes.snmp.native import Endpoint, connect
from midprobe.probes.snmp.usm import (
    FLAG_AUTH,
    FLAG_PRIV,
    FLAG_REPORTABLE,
    LocalizedKeys,
    UsmDecryptionError,
    decrypt,
    encrypt,
    localize,
    sign,
    verify,
)
from midprobe.probes.snmp.v3_message import (
    UsmParameters,
    V3Message,
    decode_message,
    decode_scoped_pdu,
    encode_message,
    encode_scoped_pdu,
    peek_message_id,
)
from midprobe.probes.snmp.values import Oid, format_oid

_USM_STATS = (1, 3, 6, 1, 6, 3, 15, 1, 1)
_NOT_IN_TIME_WINDOW = (*_USM_STATS, 2, 0)
_UNKNOWN_ENGINE_ID = (*_USM_STATS, 4, 0)
#: The usmStats counters (RFC 3414 5) a report names, by the error they mean.
REPORT_ERRORS: dict[Oid, type[errors.SnmpAuthenticationFailed]] = {
    (*_USM_STATS, 1, 0): errors.SnmpUnsupportedSecurityLevel,
    _NOT_IN_TIME_WINDOW: errors.SnmpNotInTimeWindow,
    (*_USM_STATS, 3, 0): errors.SnmpUnknownUser,
    (*_USM_STATS, 5, 0): errors.SnmpWrongDigest,
    (*_USM_STATS, 6, 0): errors.SnmpDecryptionFailed,
}
#: The largest engine time (RFC 3414 2.2.1: 0..2147483647).
_MAX_TIME = 0x7FFF_FFFF


@dataclass
class EngineClock:
    """What the session knows of the agent's engine: its ID, boots and time at ``synced_at``."""

    engine_id: bytes
    boots: int
    engine_time: int
    synced_at: float

    def now(self, clock: float) -> int:
        return min(_MAX_TIME, self.engine_time + max(0, int(clock - self.synced_at)))

    def update(self, boots: int, engine_time: int, clock: float) -> None:
        """Adopt a later boots/time the agent announced (RFC 3414 3.2 step 7b)."""
        if (boots, engine_time) > (self.boots, self.now(clock)):
            self.boots, self.engine_time, self.synced_at = boots, engine_time, clock


@dataclass
class _Request:
    future: asyncio.Future[Reply]
    pdu_type: int
    oids: tuple[Oid, ...]
    max_repetitions: int
    #: What was already done once for this request: "time" re-synced, "engine" re-discovered.
    recovered: set[str] = field(default_factory=set)


class V3Endpoint(Endpoint):
    """Hands every datagram to the session (v3 answers need its keys to read)."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.session: NativeV3Session | None = None

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if self.session is not None:
            self.session.received(data)


class NativeV3Session:
    """Sends SNMPv3 requests as the USM user ``auth`` and hands back decoded responses as futures."""

    def __init__(
        self,
        transport: asyncio.DatagramTransport,
        endpoint: V3Endpoint,
        auth: UsmAuth,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self._endpoint = endpoint
        endpoint.session = self
        self._auth = auth
        self._user = auth.user.encode("utf-8")
        self._context_name = auth.context_name.encode("utf-8")
        self._clock = clock
        self._ids = itertools.count(random.randrange(1, 1 << 30))
        self._salt = itertools.count(random.randrange(0, 1 << 62))
        self._engine: EngineClock | None = None
        self._keys: LocalizedKeys | None = None
        self._requests: dict[int, _Request] = {}
        self._discoveries: set[int] = set()
        self._waiting: list[_Request] = []
        self.target = endpoint.target

    @classmethod
    async def open(
        cls, address: str, port: int, auth: UsmAuth, *, clock: Callable[[], float] = time.monotonic
    ) -> NativeV3Session:
        transport, endpoint = await connect(address, port, V3Endpoint)
        return cls(transport, endpoint, auth, clock=clock)

    @property
    def malformed(self) -> SnmpDecodeError | None:
        return self._endpoint.malformed

    @property
    def engine(self) -> EngineClock | None:
        """The agent's engine once discovered."""
        return self._engine

    # --- sending ---------------------------------------------------------------------------

    def send(self, pdu_type: int, oids: Sequence[Oid], max_repetitions: int) -> asyncio.Future[Reply]:
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        request = _Request(future, pdu_type, tuple(oids), max_repetitions)
        key = next(self._ids) & 0x7FFFFFFF
        pending = self._endpoint.pending  # ICMP errors reach it there
        pending[key] = future
        future.add_done_callback(lambda _: pending.pop(key, None))
        if self._engine is None:
            self._waiting.append(request)
            self._discover()
        else:
            self._transmit(request)
        return future

    def _discover(self) -> None:
        """An empty, unauthenticated GET: the agent answers with a usmStatsUnknownEngineIDs report."""
        msg_id = next(self._ids) & 0x7FFFFFFF
        self._discoveries.add(msg_id)
        scoped = encode_scoped_pdu(b"", b"", encode_pdu(GET_REQUEST, msg_id, ()))
        data, _ = encode_message(msg_id, FLAG_REPORTABLE, UsmParameters(b"", 0, 0, b""), scoped)
        self._transport.sendto(data)

    def _transmit(self, request: _Request) -> None:
        engine, keys = self._engine, self._keys
        assert engine is not None
        assert keys is not None
        msg_id = next(self._ids) & 0x7FFFFFFF
        requests = self._requests
        requests[msg_id] = request
        request.future.add_done_callback(lambda _: requests.pop(msg_id, None))
        if request.pdu_type == GET_BULK_REQUEST:
            pdu = encode_pdu(request.pdu_type, msg_id, request.oids, max_repetitions=request.max_repetitions)
        else:
            pdu = encode_pdu(request.pdu_type, msg_id, request.oids)
        msg_data = encode_scoped_pdu(engine.engine_id, self._context_name, pdu)
        boots, engine_time = engine.boots, engine.now(self._clock())
        privacy = b""
        if keys.priv is not None:
            ciphertext, privacy = encrypt(keys, msg_data, boots, engine_time, next(self._salt))
            msg_data = encode_octets(ciphertext)
        usm = UsmParameters(
            engine.engine_id, boots, engine_time, self._user, bytes(keys.digest_length), privacy
        )
        data, offset = encode_message(msg_id, keys.flags, usm, msg_data)
        if keys.auth is not None:
            data = sign(keys, data, offset)
        self._transport.sendto(data)

    # --- receiving -------------------------------------------------------------------------

    def received(self, data: bytes) -> None:
        endpoint = self._endpoint
        msg_id = peek_message_id(data)
        if msg_id is None:
            endpoint.malformed = SnmpDecodeError("a datagram that is not an SNMPv3 message")
            return
        if msg_id in self._discoveries:
            self._discovered(data)
            return
        request = self._requests.get(msg_id)
        if request is None or request.future.done():
            endpoint.stray += 1  # a duplicate or an answer to a request given up on
            return
        try:
            message = decode_message(data)
            pdu = self._open_message(message)
        except SnmpDecodeError as error:
            endpoint.malformed = error  # reported if nothing valid arrives before the timeout
            return
        if pdu.pdu_type == REPORT:
            self._report(request, message, pdu)
        else:
            request.future.set_result(pdu)

    def _open_message(self, message: V3Message) -> LazyResponse:
        """The PDU of an answer, its digest verified and its scopedPDU decrypted."""
        keys, engine = self._keys, self._engine
        assert keys is not None
        assert engine is not None
        if message.flags & FLAG_AUTH:
            if keys.auth is None or message.usm.engine_id != engine.engine_id:
                raise SnmpDecodeError("an authenticated answer from another engine or for another user")
            length = len(message.usm.auth_params)
            if not verify(keys, message.data, message.auth_offset, length):
                raise SnmpDecodeError("an answer whose digest does not verify (ignored)")
            engine.update(message.usm.boots, message.usm.engine_time, self._clock())
        elif keys.auth is not None and message.scoped is not None:
            # Unauthenticated: only a report may come so (unknown user, wrong digest, ...).
            scoped = decode_scoped_pdu(message.data, *message.scoped)
            if scoped.pdu.pdu_type != REPORT:
                raise SnmpDecodeError("an unauthenticated response to an authenticated request (ignored)")
            return scoped.pdu
        if message.flags & FLAG_PRIV:
            if keys.priv is None or message.encrypted is None:
                raise SnmpDecodeError("an encrypted answer to a request without privacy")
            try:
                plain = decrypt(
                    keys,
                    message.encrypted,
                    message.usm.priv_params,
                    message.usm.boots,
                    message.usm.engine_time,
                )
            except UsmDecryptionError as error:
                raise SnmpDecodeError(str(error)) from None
            return decode_scoped_pdu(plain).pdu
        if message.scoped is None:
            raise SnmpDecodeError("an encrypted scopedPDU in a message not flagged private")
        return decode_scoped_pdu(message.data, *message.scoped).pdu

    def _discovered(self, data: bytes) -> None:
        try:
            message = decode_message(data)
        except SnmpDecodeError as error:
            self._endpoint.malformed = error
            return
        usm = message.usm
        if not usm.engine_id:
            self._endpoint.malformed = SnmpDecodeError("a discovery answer without an engine ID")
            return
        if self._engine is None or self._engine.engine_id != usm.engine_id:
            self._adopt(usm)
        waiting, self._waiting = self._waiting, []
        for request in waiting:
            if not request.future.done():
                self._transmit(request)

    def _adopt(self, usm: UsmParameters) -> None:
        self._engine = EngineClock(usm.engine_id, usm.boots, usm.engine_time, self._clock())
        self._keys = localize(self._auth, usm.engine_id)

    def _report(self, request: _Request, message: V3Message, pdu: LazyResponse) -> None:
        try:
            varbinds = pdu.varbinds
        except SnmpDecodeError as error:
            self._endpoint.malformed = error
            return
        oid = varbinds[0][0] if varbinds else ()
        engine = self._engine
        assert engine is not None
        if oid == _NOT_IN_TIME_WINDOW and "time" not in request.recovered:
            request.recovered.add("time")
            engine.boots, engine.engine_time, engine.synced_at = (
                message.usm.boots,
                message.usm.engine_time,
                self._clock(),
            )
            self._transmit(request)
            return
        if oid == _UNKNOWN_ENGINE_ID and "engine" not in request.recovered and message.usm.engine_id:
            request.recovered.add("engine")
            self._adopt(message.usm)
            self._transmit(request)
            return
        error_class = REPORT_ERRORS.get(oid)
        if error_class is not None:
            request.future.set_exception(error_class(self.target, self._auth.user))
            return
        named = format_oid(oid) if oid else "no varbind"
        request.future.set_exception(
            errors.SnmpProtocolError(f"SNMPv3 agent {self.target} sent a report ({named})")
        )

    async def close(self) -> None:
        self._transport.close()

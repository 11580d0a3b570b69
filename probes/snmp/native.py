"""The v1/v2c session over a plain asyncio UDP socket, using the pure codec (v3: ``v3_session.py``).

One connected socket per target: only that peer's datagrams arrive, and an ICMP port
unreachable surfaces at once. A response is matched to its request by request-id; a late
answer to an earlier attempt of the same request is still accepted by the client.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
from collections.abc import Callable, Sequence
from typing import TypeVar

from midprobe.probes.snmp.auth import CommunityAuth
from midprobe.probes.snmp.codec import (
    GET_BULK_REQUEST,
    VERSION_1,
    VERSION_2C,
    Reply,
    SnmpDecodeError,
    decode_response_lazily,
    encode_request,
    peek_request_id,
)
from midprobe.probes.snmp.errors import SnmpUnreachable
from midprobe.probes.snmp.values import Oid


class Endpoint(asyncio.DatagramProtocol):
    """The v1/v2c receiver: matches answers to pending requests by request-id.

    A subclass reads another message format (``v3_session.py``); ICMP errors fail every
    pending request the same way for both.
    """

    def __init__(self, target: str) -> None:
        self.target = target
        self.pending: dict[int, asyncio.Future[Reply]] = {}
        self.malformed: SnmpDecodeError | None = None
        self.stray = 0

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        request_id = peek_request_id(data)
        if request_id is None:
            self.malformed = SnmpDecodeError("a datagram that is not an SNMP v1/v2c message")
            return
        future = self.pending.get(request_id)
        if future is None or future.done():
            self.stray += 1  # a duplicate or an answer to a request given up on
            return
        try:
            response = decode_response_lazily(data)
        except SnmpDecodeError as error:
            self.malformed = error  # reported if nothing valid arrives before the timeout
            return
        future.set_result(response)

    def error_received(self, exc: Exception) -> None:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if isinstance(exc, ConnectionRefusedError):
            reason = "port unreachable (no SNMP agent listens there)"
        for future in self.pending.values():
            if not future.done():
                future.set_exception(SnmpUnreachable(self.target, reason))

    def connection_lost(self, exc: Exception | None) -> None:
        for future in self.pending.values():
            if not future.done():
                future.cancel()


E = TypeVar("E", bound=Endpoint)


async def connect(
    address: str, port: int, factory: Callable[[str], E]
) -> tuple[asyncio.DatagramTransport, E]:
    """A UDP socket connected to the agent, with ``factory(target)`` receiving on it."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    target = f"[{address}]:{port}" if family == socket.AF_INET6 else f"{address}:{port}"
    try:
        transport, endpoint = await loop.create_datagram_endpoint(
            lambda: factory(target), remote_addr=(address, port), family=family
        )
    except OSError as error:
        raise SnmpUnreachable(target, error.strerror or str(error)) from error
    return transport, endpoint


class NativeSession:
    """Sends v1/v2c requests and hands back decoded responses as futures."""

    def __init__(self, transport: asyncio.DatagramTransport, endpoint: Endpoint, auth: CommunityAuth) -> None:
        self._transport = transport
        self._endpoint = endpoint
        self._version = VERSION_1 if auth.version == "1" else VERSION_2C
        self._community = auth.community.reveal().encode("utf-8")
        # Request-ids start at a random point so two runs never reuse each other's ids.
        self._ids = itertools.count(random.randrange(1, 1 << 30))
        self.target = endpoint.target

    @classmethod
    async def open(cls, address: str, port: int, auth: CommunityAuth) -> NativeSession:
        transport, endpoint = await connect(address, port, Endpoint)
        return cls(transport, endpoint, auth)

    @property
    def malformed(self) -> SnmpDecodeError | None:
        return self._endpoint.malformed

    def send(self, pdu_type: int, oids: Sequence[Oid], max_repetitions: int) -> asyncio.Future[Reply]:
        request_id = next(self._ids) & 0x7FFFFFFF
        if pdu_type == GET_BULK_REQUEST:
            data = encode_request(
                self._version, self._community, pdu_type, request_id, oids, max_repetitions=max_repetitions
            )
        else:
            data = encode_request(self._version, self._community, pdu_type, request_id, oids)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        pending = self._endpoint.pending
        pending[request_id] = future
        future.add_done_callback(lambda _: pending.pop(request_id, None))
        self._transport.sendto(data)
        return future

    async def close(self) -> None:
        self._transport.close()

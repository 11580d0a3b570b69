"""Client behaviour against a scripted agent that misbehaves on purpose (in a private namespace).

net-snmp never loops, never answers tooBig to a small GETBULK and never loses packets on a
loopback, so a tiny agent built on the codec does, on a real UDP socket: OIDs that go
backwards, tooBig above a size, dropped and late answers, malformed datagrams, silence.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar, cast

import pytest

from midprobe.probes.credentials import Secret
from midprobe.probes.snmp.auth import CommunityAuth
from midprobe.probes.snmp.client import BulkSizeMemory, ClientOptions, SnmpClient, WalkResult
from midprobe.probes.snmp.codec import (
    GET_BULK_REQUEST,
    GET_NEXT_REQUEST,
    RESPONSE,
    TOO_BIG,
    decode_response,
    encode_message,
)
from midprobe.probes.snmp.errors import SnmpDeadlineExceeded, SnmpProtocolError, SnmpTimeout
from midprobe.probes.snmp.values import END_OF_MIB_VIEW, NULL, Oid, SnmpType, SnmpValue, VarBind
from midprobe.runner.lab import NamespaceThread
from tests.lab.snmpd_harness import scratch_namespace

pytestmark = pytest.mark.lab

T = TypeVar("T")
COMMUNITY = "scripted"
TABLE = (1, 3, 6, 1, 4, 1, 99999, 1)
ROWS = 300


@pytest.fixture(scope="module")
def thread() -> Iterator[NamespaceThread]:
    with scratch_namespace("mpsnmpc") as inside:
        yield inside


@dataclass
class Script:
    """How the agent misbehaves; what it saw."""

    rows: int = ROWS
    loop_after: int | None = None  # after this many varbinds, answer an earlier OID
    too_big_above: int | None = None  # varbinds per answer above which it says tooBig
    drop: set[int] = field(default_factory=set)  # request numbers (from 0) it ignores
    late: dict[int, float] = field(default_factory=dict)  # request number -> delay of its answer
    garbage: bool = False  # answers with a malformed datagram
    requests: list[tuple[int, int]] = field(default_factory=list)  # (pdu type, max-repetitions)


def _table() -> list[VarBind]:
    return [((*TABLE, n), SnmpValue(SnmpType.INTEGER, n)) for n in range(1, ROWS + 1)]


class _Agent(asyncio.DatagramProtocol):
    def __init__(self, script: Script) -> None:
        self.script = script
        self.transport: asyncio.DatagramTransport | None = None
        self.table = _table()[: script.rows]
        self.served = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def _after(self, oid: Oid, count: int) -> list[VarBind]:
        found = [varbind for varbind in self.table if varbind[0] > oid][:count]
        if len(found) < count:
            found.append((oid, END_OF_MIB_VIEW))
        return found

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        script = self.script
        request = decode_response(data)  # a request has the same layout as a response
        number = len(script.requests)
        script.requests.append((request.pdu_type, request.error_index))
        if number in script.drop:
            return
        if script.garbage:
            self._send(b"\x30\x05\x02\x01\x01\x04\x00", addr, number)
            return
        (oid, _), *_ = request.varbinds
        count = request.error_index if request.pdu_type == GET_BULK_REQUEST else 1
        status = 0
        if script.too_big_above is not None and count > script.too_big_above:
            answer: list[VarBind] = [(oid, NULL) for oid, _ in request.varbinds]
            status = TOO_BIG
        else:
            answer = self._after(oid, count)
            if script.loop_after is not None and self.served + len(answer) > script.loop_after:
                keep = max(0, script.loop_after - self.served)
                answer = [*answer[:keep], self.table[0]]  # back to the start: an agent loop
            self.served += len(answer)
        message = encode_message(
            request.version, COMMUNITY.encode(), RESPONSE, request.request_id, answer, error_status=status
        )
        self._send(message, addr, number)

    def _send(self, message: bytes, addr: tuple[str | object, ...], number: int) -> None:
        assert self.transport is not None
        delay = self.script.late.get(number)
        if delay:
            asyncio.get_running_loop().call_later(delay, self.transport.sendto, message, addr)
        else:
            self.transport.sendto(message, addr)


def _walk(
    thread: NamespaceThread,
    script: Script,
    options: ClientOptions,
    *,
    deadline: float | None = None,
    memory: BulkSizeMemory | None = None,
    version: str = "2c",
) -> tuple[WalkResult, SnmpClient]:
    async def go() -> tuple[WalkResult, SnmpClient]:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Agent(script), local_addr=("127.0.0.1", 0)
        )
        port = transport.get_extra_info("sockname")[1]
        try:
            auth = CommunityAuth(Secret(COMMUNITY), version)  # type: ignore[arg-type]
            client = SnmpClient(
                "127.0.0.1", auth, port=port, options=options, deadline=deadline, memory=memory
            )
            async with client:
                return await client.walk(TABLE), client
        finally:
            transport.close()

    return thread.run_async(go)


def _run(thread: NamespaceThread, factory: Callable[[], Awaitable[T]]) -> T:
    return thread.run_async(factory)


def test_a_full_walk_grows_the_bulk_size(thread: NamespaceThread) -> None:
    memory = BulkSizeMemory()
    result, client = _walk(thread, Script(), ClientOptions(initial_bulk=10, max_bulk=80), memory=memory)
    assert result.complete
    assert [oid[-1] for oid, _ in result.varbinds] == list(range(1, ROWS + 1))
    sizes = client.stats.bulk_sizes
    assert sizes[0] == 10
    assert max(sizes) == 80
    assert sizes == sorted(sizes)
    assert memory.get("127.0.0.1") == 80
    # the next walk starts where the last one ended
    _, again = _walk(thread, Script(), ClientOptions(initial_bulk=10, max_bulk=80), memory=memory)
    assert again.stats.bulk_sizes[0] == 80


def test_non_increasing_oids_stop_the_walk(thread: NamespaceThread) -> None:
    script = Script(loop_after=57)
    result, _ = _walk(thread, script, ClientOptions(initial_bulk=20))
    assert not result.complete
    assert result.stopped is not None
    assert result.stopped.startswith("OID not increasing")
    assert len(result.varbinds) == 57
    assert len(script.requests) <= 5  # it stopped; it did not follow the loop


def test_too_big_shrinks_and_is_remembered(thread: NamespaceThread) -> None:
    memory = BulkSizeMemory()
    script = Script(too_big_above=16)
    result, client = _walk(thread, script, ClientOptions(initial_bulk=64), memory=memory)
    assert result.complete
    assert len(result.varbinds) == ROWS
    assert client.stats.too_big >= 1
    assert [repetitions for _, repetitions in script.requests[:3]] == [64, 32, 16]
    # it grows back towards the refused size by halves, never past it: a few tooBigs in all
    assert client.stats.too_big <= 8
    assert memory.get("127.0.0.1") == 16
    assert script.requests[-1][1] <= 16


def test_a_lost_answer_is_retried_smaller(thread: NamespaceThread) -> None:
    script = Script(drop={0})
    result, client = _walk(thread, script, ClientOptions(timeout=0.2, retries=2, initial_bulk=40))
    assert result.complete
    assert len(result.varbinds) == ROWS
    assert script.requests[0][1] == 40
    assert script.requests[1][1] == 20
    assert client.stats.retries == 1
    assert client.stats.timeouts == 1


def test_a_late_answer_to_the_first_attempt_still_counts(thread: NamespaceThread) -> None:
    script = Script(late={0: 0.3}, drop={1})
    started = time.monotonic()
    result, client = _walk(thread, script, ClientOptions(timeout=0.2, retries=2, initial_bulk=40))
    assert result.complete
    assert len(result.varbinds) == ROWS
    assert client.stats.retries == 1  # the retry was dropped; the late first answer was used
    assert time.monotonic() - started < 2


def test_silence_is_a_timeout_after_every_retry(thread: NamespaceThread) -> None:
    script = Script(drop=set(range(100)))
    started = time.monotonic()
    with pytest.raises(SnmpTimeout) as caught:
        _walk(thread, script, ClientOptions(timeout=0.2, retries=2, initial_bulk=40))
    assert caught.value.attempts == 3
    assert len(script.requests) == 3
    assert [repetitions for _, repetitions in script.requests] == [40, 20, 10]
    assert 0.55 <= time.monotonic() - started < 2


def test_the_deadline_ends_waiting(thread: NamespaceThread) -> None:
    script = Script(drop=set(range(100)))
    started = time.monotonic()
    with pytest.raises(SnmpDeadlineExceeded):
        _walk(thread, script, ClientOptions(timeout=5, retries=5), deadline=time.monotonic() + 0.4)
    assert time.monotonic() - started < 1.5


def test_malformed_answers_are_a_protocol_error(thread: NamespaceThread) -> None:
    with pytest.raises(SnmpProtocolError, match="malformed"):
        _walk(thread, Script(garbage=True), ClientOptions(timeout=0.2, retries=0))


def test_getnext_walk_for_v1(thread: NamespaceThread) -> None:
    script = Script(rows=30)
    result, _ = _walk(thread, script, ClientOptions(), version="1")
    assert result.complete
    assert len(result.varbinds) == 30
    assert {pdu for pdu, _ in script.requests} == {GET_NEXT_REQUEST}

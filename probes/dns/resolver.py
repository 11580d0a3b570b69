"""Many DNS questions at once over a few shared UDP sockets: the batch resolver of the DNS probes.

Like adns, one pump keeps a bounded window of queries in flight, matches replies by
socket, id, server and question, retries on time-outs and server failures (rotating
through the servers), and falls back to TCP (``dns.asyncquery.tcp``) on truncation.
A name that does not resolve is an answer with a status, never an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ipaddress
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rdatatype
import dns.resolver

from midprobe.capabilities.errors import ConfigError, ProtocolError
from midprobe.probes.dns import wire

#: Receive buffer asked for each socket: a full window of replies must fit, or the kernel drops them.
RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024
#: Datagrams read per readiness callback before giving the event loop back.
READ_BURST = 256
#: Replies read (and so queries sent for them) at a time; see ``_Batch._on_readable``.
SEND_BURST = 32
#: Random query ids drawn from the system's generator at a time.
ID_BATCH = 1024


class Status(enum.StrEnum):
    """What became of one question."""

    OK = "ok"  # answered with at least one value
    NXDOMAIN = "nxdomain"  # the name does not exist
    NOANSWER = "noanswer"  # the name exists but has no record of that type
    SERVFAIL = "servfail"  # every server attempt failed (SERVFAIL)
    REFUSED = "refused"  # every server attempt was refused
    TIMEOUT = "timeout"  # no answer in time (attempts used up or the probe deadline passed)
    ERROR = "error"  # anything else: network error, malformed reply, unexpected rcode


class Question:
    """One question: an absolute name and a type (``wire.A``, ``wire.AAAA``, ``wire.PTR``).

    It holds the name's wire form, which is all the batch needs for a plain reply; made from text
    (``of_text``, ``of_address``) the ``dns.name.Name`` is built only when something asks for it.
    Questions are equal when their names are (ignoring case) and their types.
    """

    __slots__ = ("_name", "encoded", "rdtype")

    def __init__(self, name: dns.name.Name, rdtype: int) -> None:
        self._name: dns.name.Name | None = name
        self.encoded = wire.name_wire(name)
        self.rdtype = rdtype

    @classmethod
    def of_text(cls, text: str, rdtype: int) -> Question:
        """The question for a host name as ``wire.absolute_name`` reads it (its errors too)."""
        encoded = wire.plain_name_wire(text)
        return cls(wire.absolute_name(text), rdtype) if encoded is None else cls._of_wire(encoded, rdtype)

    @classmethod
    def of_address(cls, address: str) -> Question:
        """The PTR question for an address in canonical text."""
        encoded = wire.reverse_wire(address)
        return (
            cls(wire.reverse_name(address), wire.PTR) if encoded is None else cls._of_wire(encoded, wire.PTR)
        )

    @classmethod
    def _of_wire(cls, encoded: bytes, rdtype: int) -> Question:
        question = cls.__new__(cls)
        question._name = None
        question.encoded = encoded
        question.rdtype = rdtype
        return question

    @property
    def name(self) -> dns.name.Name:
        if self._name is None:
            self._name = dns.name.from_wire(self.encoded, 0)[0]
        return self._name

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Question):
            return NotImplemented
        return self.rdtype == other.rdtype and self.encoded.lower() == other.encoded.lower()

    def __hash__(self) -> int:
        return hash((self.encoded.lower(), self.rdtype))

    def __repr__(self) -> str:
        return f"Question({wire.name_text(self.name)!r}, {self.rdtype})"


class Answer(NamedTuple):
    """What became of one question (a named tuple: a batch makes one per question, and a
    frozen dataclass costs several times more to build)."""

    question: Question
    status: Status
    #: Addresses (A/AAAA) or names without the final dot (PTR), in answer order.
    values: tuple[str, ...] = ()
    #: The name the answer belongs to after following CNAMEs, when it differs from the question.
    canonical_name: str | None = None
    #: The server whose reply decided the status (``None`` for time-outs).
    server: str | None = None
    attempts: int = 0
    detail: str = ""


@dataclass(frozen=True)
class ResolverConfig:
    servers: tuple[str, ...]  # IP addresses, tried in order
    port: int = 53
    timeout: float = 2.0  # seconds per attempt
    retries: int = 2  # further rounds over all servers after the first
    concurrency: int = 128  # questions in flight at once (params.DEFAULT_CONCURRENCY)
    sockets: int = 4  # UDP sockets per address family (more ids and source ports)

    def __post_init__(self) -> None:
        if not self.servers:
            raise ConfigError("no DNS servers to ask")
        for server in self.servers:
            try:
                ipaddress.ip_address(server)
            except ValueError:
                raise ConfigError(f"DNS server {server!r} is not an IP address") from None
        if not (self.timeout > 0 and self.retries >= 0 and self.concurrency > 0 and self.sockets > 0):
            raise ConfigError(f"bad resolver settings: {self}")

    @property
    def max_attempts(self) -> int:
        return (self.retries + 1) * len(self.servers)


def system_nameservers(resolv_conf: str | os.PathLike[str] = "/etc/resolv.conf") -> tuple[str, ...]:
    """The name servers of the system resolver, in order."""
    try:
        resolver = dns.resolver.Resolver(filename=resolv_conf, configure=True)
    except dns.resolver.NoResolverConfiguration as error:
        raise ConfigError(f"system resolver ({resolv_conf}): {error}; pass dns_servers") from None
    servers: list[str] = []
    for server in resolver.nameservers:
        address = server if isinstance(server, str) else getattr(server, "address", None)
        if isinstance(address, str):
            with contextlib.suppress(ValueError):
                servers.append(str(ipaddress.ip_address(address)))
    if not servers:
        raise ConfigError(f"{resolv_conf} names no DNS server; pass dns_servers")
    return tuple(servers)


async def resolve_batch(
    questions: Sequence[Question], config: ResolverConfig, *, deadline: float | None = None
) -> list[Answer]:
    """Answer every question, in order; ``deadline`` is a ``time.monotonic()`` value.

    Questions still open at the deadline are answered with ``Status.TIMEOUT``.
    """
    if not questions:
        return []
    return await _Batch(questions, config, deadline).run()


class _Flight:
    """One question on its way: which attempt, on which socket under which id."""

    __slots__ = (
        "attempts",
        "body",
        "done",
        "entries",
        "expires",
        "index",
        "key",
        "last",
        "question",
        "queued",
    )

    def __init__(self, index: int, question: Question) -> None:
        self.index = index
        self.question = question
        self.body = wire.query_for(question.encoded, question.rdtype)[2:]  # the query after its id
        self.attempts = 0
        self.expires = 0.0  # when the latest attempt times out (loop time)
        self.entries = 0  # in the batch's expiry queue: the latest is the one that counts
        self.queued = False  # waiting in the batch's outgoing queue
        self.key: int | None = None  # socket index << 16 | query id, while a UDP query is out
        self.done = False
        self.last: Answer | None = None  # what the latest failed attempt said

    @property
    def known(self) -> wire.KnownName:
        """The question name as the reply readers compare it."""
        return wire.KnownName(self.question.encoded, self.question._name)


class _Batch:
    def __init__(self, questions: Sequence[Question], config: ResolverConfig, deadline: float | None) -> None:
        self.questions = questions
        self.config = config
        self.max_attempts = config.max_attempts
        self.deadline = deadline
        self.loop = asyncio.get_running_loop()
        self.results: list[Answer | None] = [None] * len(questions)
        self.waiting: deque[int] = deque(range(len(questions)))
        self.inflight: dict[int, _Flight] = {}  # by key: socket index << 16 | query id
        #: Flights in the order of their attempts, so in expiry order (every attempt waits as long).
        self.expiry: deque[_Flight] = deque()
        self.timer: asyncio.TimerHandle | None = None
        self.active: set[_Flight] = set()
        self.unanswered = len(questions)
        self.finished: asyncio.Future[None] = self.loop.create_future()
        self.tcp_tasks: set[asyncio.Task[None]] = set()
        self.sockets: list[socket.socket] = []
        self.server_sockets: list[list[int]] = []  # per server: its sockets' indexes
        self.socket_servers: list[str] = []  # per socket: the server it is connected to
        self.unreachable: dict[int, OSError] = {}  # per server without sockets: why
        self.next_socket = 0
        self.servers = [(_normal(server), _family(server)) for server in config.servers]
        self.closed = False  # set at the deadline: nothing new is sent
        self.filling = False
        self.query_ids: list[int] = []
        #: Flights whose query ``_send`` made, sent together by ``_flush`` (under their key then).
        self.outgoing: list[_Flight] = []
        self.flush_scheduled = False

    async def run(self) -> list[Answer]:
        deadline_handle: asyncio.TimerHandle | None = None
        if self.deadline is not None and self.deadline <= time.monotonic():
            self._on_deadline()  # nothing is sent once the deadline has passed
            return self._answers()
        try:
            self._open_sockets()
            if self.deadline is not None:
                delay = self.deadline - time.monotonic()
                deadline_handle = self.loop.call_at(self.loop.time() + delay, self._on_deadline)
            self._fill()
            await self.finished
        finally:
            if deadline_handle is not None:
                deadline_handle.cancel()
            if self.timer is not None:
                self.timer.cancel()
            for task in list(self.tcp_tasks):
                task.cancel()
            if self.tcp_tasks:
                await asyncio.gather(*self.tcp_tasks, return_exceptions=True)
            for sock in self.sockets:
                self.loop.remove_reader(sock.fileno())
                sock.close()
        return self._answers()

    def _answers(self) -> list[Answer]:
        answers = [answer for answer in self.results if answer is not None]
        assert len(answers) == len(self.questions)
        return answers

    # -- sockets ---------------------------------------------------------------------------------

    def _open_sockets(self) -> None:
        # Each socket is connected to one server: the kernel then delivers only that server's
        # datagrams (from its address and port) to it, and send() skips a route lookup per query.
        # A server that cannot be reached (no route) gets no sockets: its attempts fail at once.
        for server, family in self.servers:
            indexes: list[int] = []
            for _ in range(self.config.sockets):
                try:
                    sock = socket.socket(family, socket.SOCK_DGRAM)
                except OSError as error:
                    raise ProtocolError(f"cannot open a UDP socket for DNS: {error}") from None
                try:
                    sock.setblocking(False)
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
                    sock.connect((server, self.config.port))
                except OSError as error:
                    sock.close()
                    self.unreachable[len(self.server_sockets)] = error
                    break
                index = len(self.sockets)
                self.sockets.append(sock)
                self.socket_servers.append(server)
                indexes.append(index)
                self.loop.add_reader(sock.fileno(), self._on_readable, index)
            self.server_sockets.append(indexes)

    def _on_readable(self, index: int) -> None:
        # Replies are read up to SEND_BURST at a time before any is answered with the next
        # query, and the queries they lead to go out together (``_flush``), so that receives and
        # sends come in runs instead of strictly taking turns with a server that answers each
        # query before our next one is ready.
        sock = self.sockets[index]
        server = self.socket_servers[index]
        inflight = self.inflight
        base = index << 16
        for _ in range(READ_BURST // SEND_BURST):
            received = 0
            for _ in range(SEND_BURST):
                try:
                    data = sock.recv(65535)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:  # an ICMP error reported on the socket: the time-out decides
                    continue
                received += 1
                if len(data) < wire.HEADER.size:
                    continue  # too short to be DNS
                flight = inflight.get(base | data[0] << 8 | data[1])
                if flight is not None:  # else late (already retried or timed out) or not ours
                    self._on_datagram(flight, data, server)
            self._fill()
            self._flush()
            self._drop_stale()  # answered flights leave the expiry queue young (less for the GC)
            if received < SEND_BURST:
                return

    # -- the pump --------------------------------------------------------------------------------

    def _fill(self) -> None:
        if self.filling:
            return  # re-entered through _send -> _finish: the outer loop carries on
        self.filling = True
        try:
            while self.waiting and not self.closed and len(self.active) < self.config.concurrency:
                index = self.waiting.popleft()
                flight = _Flight(index, self.questions[index])
                self.active.add(flight)
                self._send(flight)
        finally:
            self.filling = False

    def _send(self, flight: _Flight) -> None:
        """Queue the next attempt of ``flight`` for ``_flush``, or finish it when none is left."""
        if flight.attempts >= self.max_attempts:
            self._finish(
                flight, flight.last or self._failure(flight, Status.ERROR, None, "no attempt possible")
            )
            return
        server_index = flight.attempts % len(self.servers)
        flight.attempts += 1
        pool = self.server_sockets[server_index]
        if not pool:
            server = self.servers[server_index][0]
            error = self.unreachable[server_index]
            flight.last = self._failure(flight, Status.ERROR, server, f"cannot send to {server}: {error}")
            self._send(flight)  # at most max_attempts deep
            return
        base = pool[self.next_socket % len(pool)] << 16
        self.next_socket += 1
        ids = self.query_ids
        while True:
            if not ids:  # one system call per id would cost more than the query
                ids.extend(memoryview(secrets.token_bytes(2 * ID_BATCH)).cast("H"))
            query_id = ids.pop()
            key = base | query_id
            if key not in self.inflight:
                break
        flight.key = key
        self.inflight[key] = flight
        flight.expires = self.loop.time() + self.config.timeout
        flight.entries += 1
        self.expiry.append(flight)
        if self.timer is None:
            self._arm_timer()
        if not flight.queued:
            flight.queued = True
            self.outgoing.append(flight)
        if not self.flush_scheduled:  # _on_readable flushes at once; anything else on the next turn
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Send the queries ``_send`` made, back to back.

        A server that sleeps between queries is woken by a send (most of a send's cost on
        loopback); queries sent together find it awake. A query that cannot be sent counts
        as a failed attempt, and its next attempt joins the queue.
        """
        self.flush_scheduled = False
        sockets = self.sockets
        while self.outgoing:
            batch, self.outgoing = self.outgoing, []
            for flight in batch:
                flight.queued = False
                key = flight.key
                if key is None or flight.done:
                    continue  # finished (the deadline)
                datagram = (key & 0xFFFF).to_bytes(2, "big") + flight.body
                try:
                    sockets[key >> 16].send(datagram)
                    continue
                except (BlockingIOError, InterruptedError):
                    continue  # a full send buffer: as a lost packet, the time-out retries it
                except OSError as first:
                    error = _send_error(sockets[key >> 16], datagram, first)
                if error is None:
                    continue
                del self.inflight[key]
                flight.key = None
                server, _ = self.servers[(flight.attempts - 1) % len(self.servers)]
                flight.last = self._failure(flight, Status.ERROR, server, f"cannot send to {server}: {error}")
                self._send(flight)

    def _on_datagram(self, flight: _Flight, data: bytes, server: str) -> None:
        """A datagram under ``flight``'s key, on a socket connected to ``server``: the kernel let in
        nothing from elsewhere. A reply of the plain shape is read without building a Response."""
        question = flight.question
        plain = wire.read_plain_answer(data, question.encoded, question.rdtype)
        if plain is not None:
            assert flight.key is not None
            del self.inflight[flight.key]
            flight.key = None
            rcode, values = plain
            if rcode == wire.RCODE_NOERROR:  # the common case: final, and the pump refills after the burst
                status = Status.OK if values else Status.NOANSWER
                self._complete(flight, Answer(question, status, values, None, server, flight.attempts))
            else:
                self._on_reply(flight, rcode, values, None, server)
            return
        try:
            response = wire.parse_response(data, flight.known)
        except ProtocolError:
            return  # garbage under a matching id: keep waiting for the real reply
        if not response.answers_question(question.name, question.rdtype):
            return
        assert flight.key is not None
        del self.inflight[flight.key]
        flight.key = None
        if response.truncated:
            task = self.loop.create_task(self._over_tcp(flight, server))
            self.tcp_tasks.add(task)
            task.add_done_callback(self.tcp_tasks.discard)
            return
        self._on_response(flight, response, server)

    def _on_response(self, flight: _Flight, response: wire.Response, server: str) -> None:
        question = flight.question
        values: tuple[str, ...] = ()
        alias = None
        if response.rcode == wire.RCODE_NOERROR:
            canonical, values = wire.answer_values(response, question.name, question.rdtype)
            alias = None if wire.same_name(canonical, question.name) else wire.name_text(canonical)
        self._on_reply(flight, response.rcode, values, alias, server)

    def _on_reply(
        self, flight: _Flight, rcode: int, values: tuple[str, ...], alias: str | None, server: str
    ) -> None:
        """A reply that answers the question: final (NOERROR, NXDOMAIN) or on to the next attempt."""
        question = flight.question
        if rcode == wire.RCODE_NOERROR:
            status = Status.OK if values else Status.NOANSWER
            self._finish(flight, Answer(question, status, values, alias, server, flight.attempts))
            return
        if rcode == wire.RCODE_NXDOMAIN:
            self._finish(flight, Answer(question, Status.NXDOMAIN, (), None, server, flight.attempts))
            return
        if rcode == wire.RCODE_SERVFAIL:
            flight.last = self._failure(flight, Status.SERVFAIL, server, f"{server} answered SERVFAIL")
        elif rcode == wire.RCODE_REFUSED:
            flight.last = self._failure(flight, Status.REFUSED, server, f"{server} refused the query")
        else:
            flight.last = self._failure(flight, Status.ERROR, server, f"{server} answered rcode {rcode}")
        self._send(flight)

    async def _over_tcp(self, flight: _Flight, server: str) -> None:
        question = flight.question
        query = dns.message.make_query(
            question.name,
            dns.rdatatype.RdataType.make(question.rdtype),
            use_edns=0,
            payload=wire.EDNS_PAYLOAD,
        )
        try:
            reply = await dns.asyncquery.tcp(
                query, server, timeout=self.config.timeout, port=self.config.port
            )
            response = wire.parse_response(reply.to_wire())
        except (dns.exception.Timeout, TimeoutError):
            flight.last = self._failure(flight, Status.TIMEOUT, None, f"no answer over TCP from {server}")
        except (OSError, dns.exception.DNSException, ProtocolError) as error:
            flight.last = self._failure(flight, Status.ERROR, server, f"TCP to {server} failed: {error}")
        else:
            if flight.done:
                return
            if response.truncated or not response.answers_question(question.name, question.rdtype):
                flight.last = self._failure(flight, Status.ERROR, server, f"bad TCP reply from {server}")
            else:
                self._on_response(flight, response, server)
                return
        if not flight.done:
            self._send(flight)

    def _on_timer(self) -> None:
        self.timer = None
        now = self.loop.time()
        self._drop_stale()
        while self.expiry and self.expiry[0].expires <= now:
            flight = self.expiry.popleft()
            flight.entries -= 1
            assert flight.key is not None  # _drop_stale left only an attempt still out
            del self.inflight[flight.key]
            flight.key = None
            server, _ = self.servers[(flight.attempts - 1) % len(self.servers)]
            flight.last = self._failure(
                flight, Status.TIMEOUT, None, f"no answer from {server} within {self.config.timeout:g} s"
            )
            self._send(flight)
            self._drop_stale()
        self._arm_timer()

    def _arm_timer(self) -> None:
        # Every attempt waits the same time, so the queue is in expiry order: once the stale
        # entries before it are gone, the head is the earliest. A timer armed for it may fire
        # early (the head became stale since), never late.
        self._drop_stale()
        if self.timer is None and self.expiry:
            self.timer = self.loop.call_at(self.expiry[0].expires, self._on_timer)

    def _drop_stale(self) -> None:
        """Remove the expiry entries at the head that no longer count: answered or ended
        (nothing out), or an earlier attempt of a flight asked again since."""
        expiry = self.expiry
        while expiry:
            flight = expiry[0]
            if flight.entries == 1 and flight.key is not None and not flight.done:
                return
            expiry.popleft()
            flight.entries -= 1

    def _on_deadline(self) -> None:
        self.closed = True
        for flight in list(self.active):
            if flight.key is not None:
                del self.inflight[flight.key]
                flight.key = None
            self._finish(flight, self._failure(flight, Status.TIMEOUT, None, "the probe deadline passed"))
        while self.waiting:
            index = self.waiting.popleft()
            question = self.questions[index]
            self.results[index] = Answer(question, Status.TIMEOUT, detail="the probe deadline passed")
            self.unanswered -= 1
        self._settle()

    # -- bookkeeping -----------------------------------------------------------------------------

    def _failure(self, flight: _Flight, status: Status, server: str | None, detail: str) -> Answer:
        return Answer(flight.question, status, (), None, server, flight.attempts, detail)

    def _finish(self, flight: _Flight, answer: Answer) -> None:
        self._complete(flight, answer)
        self._fill()

    def _complete(self, flight: _Flight, answer: Answer) -> None:
        """Record ``flight``'s answer; the caller refills the window (``_fill``)."""
        if flight.done:
            return
        flight.done = True
        self.active.discard(flight)
        self.results[flight.index] = answer
        self.unanswered -= 1
        if self.unanswered == 0:
            self._settle()

    def _settle(self) -> None:
        if self.unanswered == 0 and not self.finished.done():
            self.finished.set_result(None)


def _send_error(sock: socket.socket, data: bytes, error: OSError) -> OSError | None:
    """After ``send`` on a connected socket raised ``error``: the error that says no attempt was
    made, else ``None``.

    A refusal reported by an ICMP error belongs to an earlier query (the socket keeps it for the
    next call): the send is tried once more, so that the time-out, not a stray error, decides as
    for any lost reply; a full send buffer then counts as a lost packet (the time-out retries it).
    """
    if not isinstance(error, ConnectionRefusedError):
        return error
    try:
        sock.send(data)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError as again:
        return again
    return None


def _family(address: str) -> int:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def _normal(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address

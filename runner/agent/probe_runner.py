"""Turns one ECC output record into one ECC input record by running its probe.

The runner never raises for a bad request or a failed probe: a malformed payload,
an unknown topic, bad parameters, fields a result cannot echo, a missing capability,
a refused target, a time-out or a probe error all become an input record whose
payload carries ``error=".."`` and whose ``error_string`` says the same. Only
cancellation escapes. Payloads over a few kilobytes are decoded in a small thread pool of
their own, so a large one never holds the event loop (lease renewal, heartbeats) or the
queue's threads; smaller ones cost less to decode than a hand-off to a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from midprobe.capabilities.errors import (
    MidprobeError,
    MissingCapability,
    PayloadError,
    ProbeError,
    ProbeParameterError,
    ProbeTimeout,
)
from midprobe.probes.base import AnyProbe, ProbeContext, ResultStream, SharedResources, StreamingProbe
from midprobe.probes.params import parse_int
from midprobe.probes.registry import ProbeRegistry
from midprobe.probes.safety import TargetPolicy
from midprobe.runner.agent.limits import ConcurrencyLimits
from midprobe.runner.agent.logs import get_logger
from midprobe.runner.ecc.builders import TIMEOUT_PARAMETER, new_input_record
from midprobe.runner.ecc.pages import DEFAULT_PAGE_ITEMS, PAGE_ITEMS_PARAMETER, PAGE_WAIT_PARAMETER
from midprobe.runner.ecc.payload import MultiProbePayload, ParametersPayload, decode_output_payload
from midprobe.runner.ecc.record import (
    ALL_AGENTS,
    QUEUE_PROCESSING_TOPIC,
    EccRecord,
    check_request_text,
    normalize_agent_name,
)

if TYPE_CHECKING:  # a run without credentials (a bare scan) never loads the credentials package
    from midprobe.probes.credentials.store import CredentialStore

log = get_logger("midprobe.runner")

ResultT = TypeVar("ResultT")
#: One page of an answer given in pages: ``(number, last)``.
Page = tuple[int, bool]

#: A page holding progress only (addresses decided, nothing to report) waits this many times longer.
PROGRESS_WAIT_FACTOR = 10
#: Parameters the runner itself reads; probes never see them (they are still echoed back).
RUNNER_PARAMETERS = frozenset({TIMEOUT_PARAMETER, PAGE_WAIT_PARAMETER, PAGE_ITEMS_PARAMETER})


def runner_parameters(probe: object) -> frozenset[str]:
    """The runner's own parameters a request to ``probe`` may carry (paging only for one that streams)."""
    return RUNNER_PARAMETERS if isinstance(probe, StreamingProbe) else frozenset({TIMEOUT_PARAMETER})


def probe_parameters(name: str, parameters: Mapping[str, str]) -> dict[str, str]:
    """What a probe's parser gets: the request's parameters without the runner's own, plus its name.

    docs/ecc-reference.md: the record's name is the probe name (for SSHCommand, the command itself);
    a ``name`` parameter carries it when it is too long for the field.
    """
    given = {key: value for key, value in parameters.items() if key not in RUNNER_PARAMETERS}
    if name:
        given.setdefault("name", name)
    return given


#: Several probes in one request (payload root ``<probes>``), as ServiceNow's identification does.
MULTIPROBE_TOPIC = "MultiProbe"

#: Checks a request against the agent's capability values (e.g. Resolve DNS routing);
#: returns why the agent may not run it, or None when it may.
RoutingCheck = Callable[[str, str, Mapping[str, str]], str | None]

#: Threads that decode payloads: few, so hostile payloads cost bounded memory and CPU at once.
DECODE_THREADS = 2
#: Payloads up to this many characters are decoded on the event loop: at most a few hundred
#: elements, well under a millisecond, less than handing them to a thread costs.
INLINE_DECODE_CHARS = 4096
_DECODE_POOL = ThreadPoolExecutor(max_workers=DECODE_THREADS, thread_name_prefix="midprobe-decode")


@dataclass(frozen=True)
class AgentIdentity:
    """Who is running probes: the MID name and what it can do."""

    name: str
    capabilities: frozenset[str] = frozenset()
    routing_check: RoutingCheck | None = None

    @property
    def agent(self) -> str:
        return normalize_agent_name(self.name)


@dataclass
class ProbeRunner:
    """Runs probe requests for one agent, within its concurrency limits and deadlines."""

    registry: ProbeRegistry
    identity: AgentIdentity
    policy: TargetPolicy = field(default_factory=TargetPolicy.unrestricted)
    limits: ConcurrencyLimits = field(default_factory=ConcurrencyLimits)
    probe_timeout_seconds: float = 600.0
    credentials: CredentialStore | None = None
    #: Deadlines and probe_time are read on this clock (tests give a fake one).
    clock: Callable[[], float] = time.monotonic
    #: What probes keep between requests (SSH connections); closed by ``close``.
    shared: SharedResources = field(default_factory=SharedResources)

    async def close(self) -> None:
        """Close what the probes kept open (the agent is stopping)."""
        await self.shared.close()

    async def answer(
        self, output: EccRecord, payload: str | None = None, *, credentials: CredentialStore | None = None
    ) -> EccRecord:
        """The input record answering ``output`` (``payload``: the full payload text when stored aside),
        in one piece (a request asking for pages gets them from :meth:`answers`).

        ``credentials``: what its probes log in with instead of the runner's own (the credentials
        of the discovery the output belongs to).
        """
        answers = self._answers(output, payload, DEFAULT_PAGE_ITEMS, credentials, streamed=False)
        try:
            record, _paged = await anext(answers)
        finally:
            await answers.aclose()
        return record

    async def answers(
        self,
        output: EccRecord,
        payload: str | None = None,
        *,
        page_items: int = DEFAULT_PAGE_ITEMS,
        credentials: CredentialStore | None = None,
    ) -> AsyncGenerator[tuple[EccRecord, Page | None], None]:
        """The input records answering ``output``, each with the page it is, ``(number, last)``.

        One record (``None``: the whole answer, for the agent to split into pages if it is large),
        unless the request asks for its answer in pages (``page_wait_ms``) and its probe can
        stream: then the pages as the probe goes, ``page="N" last_page=".."`` on each too;
        the first holds what preparing the request found (nothing has been sent before it is
        written), and the probe goes on only when the next page is asked for. At most
        ``page_items`` items a page unless the request asks for fewer (``page_items``). An error
        after some pages is the last page.
        """
        text = output.payload if payload is None else payload
        if PAGE_WAIT_PARAMETER not in text:  # asks for no pages: the one answer, as answer() gives it
            yield await self.answer(output, payload, credentials=credentials), None
            return
        answers = self._answers(output, payload, page_items, credentials, streamed=True)
        try:
            async for answer in answers:
                yield answer
        finally:
            await answers.aclose()

    async def _answers(
        self,
        output: EccRecord,
        payload: str | None,
        page_items: int,
        credentials: CredentialStore | None,
        *,
        streamed: bool,
    ) -> AsyncGenerator[tuple[EccRecord, Page | None], None]:
        started = self.clock()
        parameters: Mapping[str, str] = {}
        elements: Sequence[ET.Element]
        error: str | None = None
        pages = 0
        try:
            self._check_answerable(output)
            text = output.payload if payload is None else payload
            if len(text) <= INLINE_DECODE_CHARS:
                decoded = self._decode(output, text)
            else:
                loop = asyncio.get_running_loop()
                decoded = await loop.run_in_executor(_DECODE_POOL, self._decode, output, text)
            parameters = decoded.as_dict() if isinstance(decoded, ParametersPayload) else _shared(decoded)
            self._check_addressed_to_me(output)
            deadline = self.clock() + self._timeout(parameters)
            async with self.limits.slot(output.priority, output.topic, output.source):
                store = credentials or self.credentials
                if isinstance(decoded, MultiProbePayload):
                    elements, error = await self._run_multiprobe(output, decoded, deadline, store)
                else:
                    probe, typed, context = self._prepared(
                        output.topic, output.name, output.source, parameters, deadline, store
                    )
                    paging = _paging(parameters, page_items) if streamed else None
                    if paging is not None and isinstance(probe, StreamingProbe):
                        stream = await self._within(
                            probe.stream(typed, context), output.topic, output.source, parameters, context
                        )
                        async for page, last in self._pages(
                            output, parameters, stream, context, paging, started
                        ):
                            pages += 1
                            yield page, (pages, last)
                        return
                    elements = await self._run_prepared(
                        probe, typed, context, output.topic, output.source, parameters
                    )
            yield self._record(output, parameters, elements, started, error=error), None
        except MidprobeError as failure:
            yield self._error_record(output, parameters, started, failure, page=pages), _after(pages)
        except Exception as failure:  # a bug in a probe must not stop the agent
            log.error("probe crashed", topic=output.topic, sys_id=output.sys_id, error=repr(failure))
            yield self._error_record(output, parameters, started, failure, page=pages), _after(pages)

    async def _pages(
        self,
        output: EccRecord,
        parameters: Mapping[str, str],
        stream: ResultStream,
        context: ProbeContext,
        paging: tuple[float, int],
        started: float,
    ) -> AsyncIterator[tuple[EccRecord, bool]]:
        """``stream``'s items in pages (each with whether it is the last): one before the first item
        (the prepared request; the stream is read only when the next page is asked for), then one
        as soon as ``page_items`` items are in or ``wait`` seconds after the first item (progress
        alone: :data:`PROGRESS_WAIT_FACTOR` times that), the last when it ends. Past the deadline it
        raises ``ProbeTimeout``."""
        wait, most = paging
        number = 1
        yield self._page(output, parameters, stream, [], started, number, last=False), False
        collector = _Collector(stream, most, wait, self.clock)
        try:
            while True:
                now = self.clock()
                if collector.due(now):
                    if collector.error is not None:
                        raise collector.error
                    last = collector.ended
                    number += 1
                    page = self._page(
                        output, parameters, stream, collector.take(), started, number, last=last
                    )
                    yield page, last
                    if last:
                        return
                    continue
                if now >= context.deadline:
                    raise ProbeTimeout(
                        f"probe {output.topic} on {output.source or '-'}", self._timeout(parameters)
                    )
                until = min(context.deadline, collector.flush_at or math.inf)
                await collector.changed_within(None if until == math.inf else max(0.0, until - now))
        finally:
            await collector.close()
            await stream.aclose()

    def _page(
        self,
        output: EccRecord,
        parameters: Mapping[str, str],
        stream: ResultStream,
        items: Sequence[ET.Element],
        started: float,
        number: int,
        *,
        last: bool,
    ) -> EccRecord:
        shell = stream.shell()
        shell.extend(items)
        return self._record(output, parameters, [shell], started, page=(number, last))

    def _record(
        self,
        output: EccRecord,
        parameters: Mapping[str, str],
        elements: Sequence[ET.Element],
        started: float,
        *,
        error: str | None = None,
        page: tuple[int, bool] | None = None,
    ) -> EccRecord:
        return new_input_record(
            output,
            agent=self.identity.agent,
            results=elements,
            probe_time_ms=_elapsed_ms(self.clock, started),
            output_parameters=parameters,
            error=error,
            page=page,
        )

    def refusal(self, output: EccRecord, reason: Exception, *, page: Page | None = None) -> EccRecord:
        """The error input answering ``output`` when no other answer can be written (echoes its fields
        only); ``page``: it is that page of an answer written in pages."""
        return new_input_record(
            output,
            agent=self.identity.agent,
            results=[],
            probe_time_ms=0,
            error=_one_line(reason),
            output_parameters=(),
            page=page,
        )

    async def _run_one(
        self,
        topic: str,
        name: str,
        source: str,
        parameters: Mapping[str, str],
        deadline: float,
        credentials: CredentialStore | None,
    ) -> Sequence[ET.Element]:
        """Check, validate and run one probe; its ``<result>`` elements (raises ``MidprobeError``)."""
        probe, typed, context = self._prepared(topic, name, source, parameters, deadline, credentials)
        return await self._run_prepared(probe, typed, context, topic, source, parameters)

    def _prepared(
        self,
        topic: str,
        name: str,
        source: str,
        parameters: Mapping[str, str],
        deadline: float,
        credentials: CredentialStore | None,
    ) -> tuple[AnyProbe, object, ProbeContext]:
        """The probe of ``topic`` (the capability and routing checks passed), its typed parameters
        and the context it runs in (logging in with ``credentials``)."""
        probe = self.registry.get(topic)
        for capability in probe.required_capabilities:
            if capability not in self.identity.capabilities:
                raise MissingCapability(topic, capability)
        if self.identity.routing_check is not None:
            refusal = self.identity.routing_check(topic, source, parameters)
            if refusal:
                raise ProbeParameterError(refusal)
        typed = probe.parse_params(source, probe_parameters(name, parameters))
        context = ProbeContext(
            agent_name=self.identity.name,
            deadline=deadline,
            policy=self.policy,
            capabilities=self.identity.capabilities,
            credentials=credentials,
            clock=self.clock,
            shared=self.shared,
        )
        return probe, typed, context

    async def _run_prepared(
        self,
        probe: AnyProbe,
        typed: object,
        context: ProbeContext,
        topic: str,
        source: str,
        parameters: Mapping[str, str],
    ) -> Sequence[ET.Element]:
        result = await self._within(probe.run(typed, context), topic, source, parameters, context)
        return probe.encode_results(result)

    async def _within(
        self,
        work: Awaitable[ResultT],
        topic: str,
        source: str,
        parameters: Mapping[str, str],
        context: ProbeContext,
    ) -> ResultT:
        """``work`` cut at the context's deadline (then ``ProbeTimeout``)."""
        remaining = context.remaining()
        try:
            async with asyncio.timeout(None if remaining == math.inf else remaining):
                return await work
        except TimeoutError:
            raise ProbeTimeout(f"probe {topic} on {source or '-'}", self._timeout(parameters)) from None

    async def _run_multiprobe(
        self,
        output: EccRecord,
        request: MultiProbePayload,
        deadline: float,
        credentials: CredentialStore | None,
    ) -> tuple[list[ET.Element], str | None]:
        """Run each probe of a MultiProbe in order within one deadline; one failing does not stop the rest.

        Each probe's ``<result>`` elements carry ``probe="TOPIC"`` (and ``name``); a probe that
        failed gives ``<result probe=".." error=".."/>``. The record is an error only when every
        probe failed.
        """
        shared = {parameter.name: parameter.value for parameter in request.parameters}
        elements: list[ET.Element] = []
        failures: list[str] = []
        for sub in request.probes:
            parameters = {**shared, **sub.as_dict()}
            tags = {"probe": sub.topic, **({"name": sub.name} if sub.name else {})}
            try:
                produced = await self._run_one(
                    sub.topic, sub.name, output.source, parameters, deadline, credentials
                )
            except MidprobeError as failure:
                message = _one_line(failure)
                failures.append(f"{sub.topic}: {message}")
                elements.append(ET.Element("result", {**tags, "error": message}))
                continue
            for element in produced:
                element.attrib.update(tags)
                elements.append(element)
        if failures and len(failures) == len(request.probes):
            return elements, "every probe of the MultiProbe failed: " + "; ".join(failures)
        return elements, None

    def _decode(self, output: EccRecord, payload: str) -> ParametersPayload | MultiProbePayload:
        if not payload.strip():
            return ParametersPayload()
        decoded = decode_output_payload(payload)
        if isinstance(decoded, MultiProbePayload):
            if output.topic != MULTIPROBE_TOPIC:
                raise PayloadError(f"a <probes> payload needs topic {MULTIPROBE_TOPIC}, not {output.topic}")
            return decoded
        if not isinstance(decoded, ParametersPayload):
            raise PayloadError(f"topic {output.topic} takes a <parameters> payload")
        if output.topic == MULTIPROBE_TOPIC:
            raise PayloadError(f"topic {MULTIPROBE_TOPIC} takes a <probes> payload")
        return decoded

    def _check_answerable(self, output: EccRecord) -> None:
        """Refuse a request whose fields its result could not echo (it would run again after every lease)."""
        if output.topic == QUEUE_PROCESSING_TOPIC:
            raise PayloadError(f"{QUEUE_PROCESSING_TOPIC} is the claim topic, not a probe")
        for field_name in ("topic", "name", "source", "agent_correlator"):
            try:
                check_request_text(getattr(output, field_name), field_name=field_name)
            except MidprobeError as refused:
                raise PayloadError(f"request not run: {refused}") from None

    def _check_addressed_to_me(self, output: EccRecord) -> None:
        if output.agent not in (self.identity.agent, ALL_AGENTS):
            raise ProbeParameterError(f"record is addressed to {output.agent}, not to {self.identity.agent}")

    def _timeout(self, parameters: Mapping[str, str]) -> float:
        raw = parameters.get(TIMEOUT_PARAMETER)
        if raw is None:
            return self.probe_timeout_seconds
        try:
            requested = int(raw) / 1000
        except ValueError:
            raise ProbeParameterError(
                f"not a whole number of milliseconds: {raw!r}", parameter=TIMEOUT_PARAMETER
            ) from None
        if requested <= 0:
            raise ProbeParameterError("must be positive", parameter=TIMEOUT_PARAMETER)
        return min(requested, self.probe_timeout_seconds)

    def _error_record(
        self,
        output: EccRecord,
        parameters: Mapping[str, str],
        started: float,
        error: Exception,
        *,
        page: int = 0,
    ) -> EccRecord:
        """The error answer; after ``page`` pages already given, the last page (``page + 1``)."""
        return self._record(
            output, parameters, [], started, error=_one_line(error), page=(page + 1, True) if page else None
        )


class _Collector:
    """Reads a stream's items on a task of its own into the page being filled, and says when that page
    is due: full, its time up, or the stream ended. No task or timer per item: a /16's silent
    addresses cost a loop turn each. When the page is full it waits for :meth:`take`."""

    def __init__(self, stream: ResultStream, most: int, wait: float, clock: Callable[[], float]) -> None:
        self.items: list[ET.Element] = []
        #: When the page being filled goes out (``None``: nothing came in since the last page).
        self.flush_at: float | None = None
        self.ended = False
        self.error: Exception | None = None
        self._most, self._wait, self._clock = most, wait, clock
        self._changed = asyncio.Event()  # the page became due sooner (or the stream ended)
        self._room = asyncio.Event()
        self._room.set()
        self._task = asyncio.create_task(self._pump(stream), name="page-collector")

    async def _pump(self, stream: ResultStream) -> None:
        try:
            async for item in stream:
                now = self._clock()
                if item is not None:
                    self.items.append(item)
                    if self.flush_at is None or now + self._wait < self.flush_at:
                        self.flush_at = now + self._wait
                        self._changed.set()
                elif self.flush_at is None:  # progress alone goes out less often
                    self.flush_at = now + self._wait * PROGRESS_WAIT_FACTOR
                    self._changed.set()
                if len(self.items) >= self._most:
                    self._room.clear()
                    self._changed.set()
                    await self._room.wait()
        except Exception as error:  # raised where the pages are made, as the probe's failure
            self.error = error
        finally:
            self.ended = True
            self._changed.set()

    def due(self, now: float) -> bool:
        return (
            self.ended
            or len(self.items) >= self._most
            or (self.flush_at is not None and now >= self.flush_at)
        )

    def take(self) -> list[ET.Element]:
        """The page's items; the next page starts empty (and the reader goes on if it was full)."""
        items, self.items, self.flush_at = self.items, [], None
        self._room.set()
        return items

    async def changed_within(self, seconds: float | None) -> None:
        """Wait until the page may be due sooner, or ``seconds`` (``None``: no limit)."""
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), seconds)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def _after(pages: int) -> Page | None:
    """The page an error answer is after ``pages`` pages were given: the last (none given: no page)."""
    return (pages + 1, True) if pages else None


def _paging(parameters: Mapping[str, str], page_items: int) -> tuple[float, int] | None:
    """``(seconds a page may wait, most items a page holds)`` when the request asks for its answer
    in pages as it comes (``page_wait_ms``), else ``None``."""
    if PAGE_WAIT_PARAMETER not in parameters:
        return None
    wait = parse_int(parameters, PAGE_WAIT_PARAMETER, 0, 1, 60_000)
    most = parse_int(parameters, PAGE_ITEMS_PARAMETER, page_items, 1, max(1, page_items))
    return wait / 1000, most


def _shared(request: MultiProbePayload) -> dict[str, str]:
    return {parameter.name: parameter.value for parameter in request.parameters}


def _one_line(error: Exception) -> str:
    """What an error record says: the message, prefixed by the kind when it is not a probe error."""
    kind = type(error).__name__
    message = str(error) if isinstance(error, MidprobeError) else f"internal error: {kind}: {error}"
    if not isinstance(error, ProbeError | PayloadError) and isinstance(error, MidprobeError):
        message = f"{kind}: {message}"
    return message.splitlines()[0] if message else kind


def _elapsed_ms(clock: Callable[[], float], started: float) -> int:
    return max(0, round((clock() - started) * 1000))

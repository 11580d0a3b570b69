"""The contract every probe keeps, and the context the runner hands it.

A probe module exposes a frozen ``...Params`` dataclass, a frozen ``...Result``
dataclass, an async entry point, and a module-level ``PROBE`` object that
satisfies :class:`Probe` (see ``registry.py``).
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from midprobe.probes.safety import TargetPolicy

if TYPE_CHECKING:  # typing only: base.py stays free of the credential modules at run time
    from midprobe.probes.credentials.store import CredentialStore

ParamsT = TypeVar("ParamsT")
SharedT = TypeVar("SharedT", bound="Closable")
ResultT = TypeVar("ResultT")


class Closable(Protocol):
    async def close(self) -> None: ...


class SharedResources:
    """What probes keep between requests (the SSH connection pool), one of each kind, made on
    first use; the runner owns it and closes everything when its agent stops."""

    def __init__(self) -> None:
        self._items: dict[type[Any], Closable] = {}

    def get(self, kind: type[SharedT], factory: Callable[[], SharedT] | None = None) -> SharedT:
        """The ``kind`` instance, made by ``factory`` (default ``kind()``) on first use."""
        item = self._items.get(kind)
        if item is None:
            item = self._items[kind] = (factory or kind)()
        assert isinstance(item, kind)
        return item

    async def close(self) -> None:
        """Close every resource (a later ``get`` makes a new one)."""
        items, self._items = list(self._items.values()), {}
        for item in items:
            await item.close()


@dataclass(frozen=True)
class ProbeContext:
    """What the runner tells a probe about the run it is part of."""

    agent_name: str = "standalone"
    #: ``time.monotonic()`` value after which the probe must give up.
    deadline: float = field(default_factory=lambda: time.monotonic() + 300.0)
    policy: TargetPolicy = field(default_factory=TargetPolicy.unrestricted)
    #: Capability names this agent carries (``Nmap`` only when nmap really works).
    capabilities: frozenset[str] = frozenset()
    #: The credential store (credentialed probes); ``None`` when none was given.
    credentials: CredentialStore | None = None
    #: The clock ``deadline`` is read against (tests give a fake one).
    clock: Callable[[], float] = time.monotonic
    #: The runner's resources kept between requests (e.g. SSH connections); None: none are kept.
    shared: SharedResources | None = None

    def remaining(self) -> float:
        """Seconds left before the deadline (never negative)."""
        return max(0.0, self.deadline - self.clock())


class Probe(Protocol[ParamsT, ResultT]):
    """One kind of probe, registered under its ECC topic."""

    @property
    def topic(self) -> str:
        """The ECC topic this probe answers (``Shazzam``, ``SSHCommand``, ...)."""
        ...

    @property
    def required_capabilities(self) -> tuple[str, ...]:
        """Capability names an agent must carry to run this probe (e.g. ``("Nmap",)``)."""
        ...

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> ParamsT:
        """Validate an ECC request into typed parameters (pure; raises ``ProbeParameterError``)."""
        ...

    async def run(self, params: ParamsT, context: ProbeContext) -> ResultT:
        """Do the work; raise a ``ProbeError`` subclass on failure."""
        ...

    def encode_results(self, result: ResultT) -> Sequence[ET.Element]:
        """The ``<result>`` elements of the ECC input payload (pure)."""
        ...


AnyProbe = Probe[Any, Any]


class ResultStream(Protocol):
    """A result that comes in parts while the probe runs (a port scan's hosts as each is decided).

    Iterating it runs the probe: each item is one child of the result's top-level element (a
    ``<host>``), or ``None`` when the probe got on (an address decided) with nothing to report.
    :meth:`shell` is that top-level element, childless, as things stand (its attributes count the
    progress so far); :meth:`aclose` stops the probe, whether it ran to its end or not.
    """

    def __aiter__(self) -> AsyncIterator[ET.Element | None]: ...

    def shell(self) -> ET.Element: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class StreamingProbe(Protocol):
    """A probe whose result can go out in pages as it comes (the runner pages it when a request asks)."""

    async def stream(self, params: Any, context: ProbeContext) -> ResultStream:
        """Check and prepare the request (every error of it raised here, nothing sent yet); the
        stream runs it as it is iterated."""
        ...

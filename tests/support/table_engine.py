"""A TCP scan engine that answers from a table instead of sending packets.

It stands in for the port scanner where the code under test is what surrounds it (the asyncio
bridge, the Shazzam probe, the scan pipeline, its stages): it pulls targets lazily, honours the stop
flag, can fail part-way, and records that it was closed (where a real engine closes its sockets).
``table_registry`` gives the scan pipeline a registry whose real Shazzam probe scans with it.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterable, Mapping, Sequence

from midprobe.capabilities.errors import NetworkError
from midprobe.probes.base import AnyProbe
from midprobe.probes.registry import ProbeRegistry
from midprobe.probes.shazzam import ShazzamProbe
from midprobe.probes.targets import Target
from midprobe.probes.tcpscan.common import HostScan, ScanOptions, StopFlag


class TableEngine:
    """Every address has the ``refused`` ports refused (so it is alive); those listed have ports open."""

    name = "table"

    def __init__(
        self,
        open_ports: Mapping[str, tuple[int, ...]],
        *,
        refused: tuple[int, ...] = (22,),
        fail_after: int | None = None,
        first_waits_for: threading.Event | None = None,
    ) -> None:
        self.open_ports = open_ports
        self.refused = refused
        self.fail_after = fail_after
        #: The first scan begins only once this is set (at most 10 s); ``waited`` says whether it was.
        self.first_waits_for = first_waits_for
        self.waited: list[bool] = []
        #: Targets taken from the iterator so far.
        self.consumed = 0
        self.closed = threading.Event()
        #: The ``engine`` choices the probe built this engine for.
        self.chosen: list[str] = []

    def choose(self, choice: str) -> TableEngine:
        """The Shazzam probe's engine factory: whatever the request names, this engine scans."""
        self.chosen.append(choice)
        return self

    def scan(
        self,
        targets: Iterable[Target],
        ports: Sequence[int],
        options: ScanOptions,
        *,
        stop: StopFlag | None = None,
    ) -> Generator[HostScan, None, None]:
        if self.first_waits_for is not None and not self.waited:
            self.waited.append(self.first_waits_for.wait(timeout=10.0))
        try:
            for target in targets:
                if stop is not None and stop.is_set():
                    return
                self.consumed += 1
                if self.fail_after is not None and self.consumed > self.fail_after:
                    raise NetworkError("the network went away")
                yield HostScan(
                    address=target.address,
                    host_name=target.host_name,
                    open_ports=self.open_ports.get(str(target.address), ()),
                    refused_ports=self.refused,
                    unanswered=0,
                    unreachable=False,
                    engine=self.name,
                )
        finally:
            self.closed.set()


def table_registry(engine: TableEngine, *probes: AnyProbe) -> ProbeRegistry:
    """A registry whose ``Shazzam`` probe is the real one scanning with ``engine``, plus ``probes``."""
    registry = ProbeRegistry()
    registry.register(ShazzamProbe(engines=engine.choose))
    for probe in probes:
        registry.register(probe)
    return registry

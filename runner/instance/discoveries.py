"""The instance runs discoveries: start one, list and watch them, cancel one; a background thread advances them.

``DiscoveryService`` is the instance's side of ``midprobe discover run --queue https://...``: the
schedule arrives as data (never a path), its credentials as a self-contained document (kept
sealed to the instance's key by :mod:`.schedule_credentials` only, and sealed again to each MID
that holds work of the discovery), an optional capabilities file as text (its clusters and
selection rules apply to this discovery; without one, the instance's own). One
:class:`~midprobe.runner.discovery.orchestrator.Orchestrator` per active discovery does the
work; every step it takes is in the status store first, so an instance restarted after a
crash picks up every ``Active`` discovery where the store says it was (``advance_all`` finds
them by state, not by memory).

The API::

    service = DiscoveryService(queue, database)
    status_id = service.start(schedule, credentials=text)   # Schedule, a table, or TOML text
    service.get(status_id), service.device_log(status_id), service.list()
    service.cancel(status_id)
    service.advance_all()                                  # one pass over every active discovery
    service.start_background()  ...  service.stop_background()
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import tomllib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Final

from midprobe.capabilities.clusters import cluster_named
from midprobe.capabilities.config import CapabilityConfig, parse_config
from midprobe.capabilities.errors import ConfigError, MidprobeError, QueueError
from midprobe.probes.credentials.sealing import MidKeyPair
from midprobe.runner.cmdb.database import Database, SqlStore
from midprobe.runner.cmdb.store import CmdbStore
from midprobe.runner.discovery.orchestrator import Orchestrator
from midprobe.runner.discovery.schedule import Schedule, schedule_from_mapping
from midprobe.runner.discovery.status import DiscoveryStatus, StatusStore
from midprobe.runner.instance.schedule_credentials import ScheduleCredentials, check_credentials
from midprobe.runner.instance.wake import WorkSignal
from midprobe.runner.queue.base import EccQueue

log = logging.getLogger("midprobe.instance")

ADVANCE_INTERVAL_SECONDS: Final = 0.5
"""Seconds between two passes of the background thread over the active discoveries."""
MAX_CAPABILITIES_CHARACTERS: Final = 1024 * 1024

SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS discovery_request (
        status TEXT PRIMARY KEY, started_by TEXT, capabilities TEXT, requested_on TEXT NOT NULL,
        request_key TEXT UNIQUE)""",
)


class DiscoveryRequests(SqlStore):
    """How each discovery the instance runs was asked for: by whom, with which capabilities file."""

    schema = SCHEMA

    def put(
        self, status_id: str, started_by: str | None, capabilities: str | None, request_key: str | None
    ) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO discovery_request (status, started_by, capabilities, requested_on, request_key) "
                "VALUES (?, ?, ?, ?, ?)",
                [status_id, started_by, capabilities, self._now(), request_key],
            )

    def started_for(self, request_key: str) -> str | None:
        """The discovery a start request with this key already started (a resend after a lost reply)."""
        with self._db.transaction(write=False) as tx:
            rows = tx.execute("SELECT status FROM discovery_request WHERE request_key = ?", [request_key])
        return str(rows[0][0]) if rows else None

    def capabilities_of(self, status_id: str) -> str | None:
        with self._db.transaction(write=False) as tx:
            rows = tx.execute("SELECT capabilities FROM discovery_request WHERE status = ?", [status_id])
        return None if not rows or rows[0][0] is None else str(rows[0][0])


def read_schedule(schedule: Schedule | Mapping[str, object] | str) -> Schedule:
    """A schedule given as a checked ``Schedule``, a table of its keys, or TOML text; ``ConfigError`` if bad.

    A ``credentials`` key is refused: a path means nothing on the instance (send the file's text).
    """
    if isinstance(schedule, Schedule):
        return dataclasses.replace(schedule, credentials=None)
    if isinstance(schedule, str):
        try:
            schedule = tomllib.loads(schedule)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"not valid TOML ({error})", field="schedule") from None
    if not isinstance(schedule, Mapping):
        raise ConfigError("the schedule must be a table of its keys", field="schedule")
    if "credentials" in schedule:
        raise ConfigError(
            "send the credentials file's text beside the schedule, not a path in it", field="credentials"
        )
    return schedule_from_mapping(schedule, source="schedule")


def read_capabilities(text: object) -> CapabilityConfig:
    if not isinstance(text, str) or len(text) > MAX_CAPABILITIES_CHARACTERS:
        raise ConfigError(
            f"capabilities must be the text of a capabilities file (at most {MAX_CAPABILITIES_CHARACTERS} "
            "characters)",
            field="capabilities",
        )
    return parse_config(text, source="capabilities")


def _elapsed_since(started: str, now: datetime) -> float:
    """Seconds from a status store timestamp (UTC text) to ``now``."""
    moment = datetime.strptime(started, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
    return max(0.0, (now - moment).total_seconds())


class DiscoveryService:
    """The discoveries the instance runs, over its queue and its database (status, CMDB, credentials).

    Safe to call from several threads: starting, cancelling and advancing take one lock.
    """

    def __init__(
        self,
        queue: EccQueue,
        database: Database,
        *,
        capabilities: CapabilityConfig | None = None,
        signal: WorkSignal | None = None,
        interval_seconds: float = ADVANCE_INTERVAL_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        key: MidKeyPair | None = None,
    ) -> None:
        self._queue = queue
        self.status = StatusStore(database)
        self._cmdb = CmdbStore(database)
        #: ``key``: the instance's own pair, the discovery credentials are sealed to it at rest
        #: (without one, a pair held in memory: what it sealed opens in this process only).
        self.credentials = ScheduleCredentials(database, key or MidKeyPair.generate())
        self._requests = DiscoveryRequests(database)
        self._default = capabilities
        self._signal = signal
        self._interval = interval_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._orchestrators: dict[str, Orchestrator] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the API -----------------------------------------------------------------------------------

    def start(
        self,
        schedule: Schedule | Mapping[str, object] | str,
        *,
        credentials: str | Mapping[str, object] | None = None,
        capabilities: str | None = None,
        started_by: str | None = None,
        request_key: str | None = None,
    ) -> str:
        """Check the request, start the discovery (its first batches on the queue); its status id.

        ``credentials``: a self-contained credentials document (a table, or TOML text): kept sealed
        to the instance's key, and sealed again to each MID that holds work of the discovery.

        ``request_key`` makes the start idempotent: a second start with the same key (a client
        resending after a lost reply) starts nothing and returns the first one's id.
        """
        checked = read_schedule(schedule)
        config = read_capabilities(capabilities) if capabilities is not None else self._default
        if checked.mid_choice == "cluster":
            cluster_named(config.clusters if config else (), checked.mid or "")
        document = check_credentials(credentials) if credentials is not None else None

        def keep(status_id: str) -> None:  # before its first output reaches the queue
            self._requests.put(status_id, started_by, capabilities, request_key)
            if document is not None:
                self.credentials.put(status_id, document)

        with self._lock:
            earlier = self._requests.started_for(request_key) if request_key is not None else None
            if earlier is not None:
                return earlier
            orchestrator = self._orchestrator_for(config)
            status_id = orchestrator.start(checked, on_created=keep)
            self._orchestrators[status_id] = orchestrator
        self._wake()
        return status_id

    def cancel(self, reference: str) -> int:
        """Cancel a running discovery (by id or unique prefix): its waiting work never runs."""
        with self._lock:
            status = self.status.get(reference)
            if status.done:
                raise ConfigError(f"discovery {status.sys_id} is already {status.state}", field="ID")
            count = self._orchestrator(status.sys_id).cancel(status.sys_id, reason="cancelled by user")
            self._finished(status.sys_id)
        return count

    def get(self, reference: str) -> DiscoveryStatus:
        return self.status.get(reference)

    def device_log(self, reference: str) -> list[dict[str, str]]:
        return self.status.device_log(self.status.get(reference).sys_id)

    def device_counts(self, reference: str) -> tuple[int, int]:
        """``(devices, done)``: the addresses that got work after scanning, and those with none pending."""
        return self.status.device_counts(self.status.get(reference).sys_id)

    def list(self) -> list[DiscoveryStatus]:
        return self.status.list_all()

    def advance_all(self) -> int:
        """One pass over every active discovery (those of an earlier run of the instance too); how many are left."""
        active = self.status.running()
        left = 0
        enqueued = 0
        for status_id in active:
            with self._lock:
                try:
                    progress = self._orchestrator(status_id).advance(status_id)
                except QueueError:
                    raise  # the queue is down: the next pass tries again
                except MidprobeError as error:
                    log.warning("discovery %s could not advance: %s", status_id, error)
                    left += 1
                    continue
                enqueued += progress.enqueued
                if progress.done:
                    self._finished(status_id)
                else:
                    left += 1
        if enqueued:
            self._wake()
        return left

    # -- the background thread ---------------------------------------------------------------------

    def start_background(self) -> None:
        """Advance every active discovery every ``interval_seconds`` on one thread, until ``stop_background``."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="midprobe-discoveries", daemon=True)
        self._thread.start()

    def stop_background(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.advance_all()
            except QueueError as error:
                log.warning("discoveries wait for the queue: %s", error)
            except Exception as error:  # a bug must not stop every discovery for good
                log.error("discoveries: %s: %s", type(error).__name__, error)
            self._stop.wait(max(0.0, self._interval - (time.monotonic() - started)))

    # -- inside ------------------------------------------------------------------------------------

    def _orchestrator_for(self, config: CapabilityConfig | None) -> Orchestrator:
        return Orchestrator(
            self._queue,
            self.status,
            self._cmdb,
            clusters=config.clusters if config else (),
            policy=config.policy if config else None,
        )

    def _orchestrator(self, status_id: str) -> Orchestrator:
        """The discovery's orchestrator; after a restart, made again from what the store kept."""
        found = self._orchestrators.get(status_id)
        if found is None:
            text = self._requests.capabilities_of(status_id)
            found = self._orchestrator_for(read_capabilities(text) if text is not None else self._default)
            status = self.status.get(status_id)
            found.count_run_time_from(status_id, _elapsed_since(status.started, self._clock()))
            self._orchestrators[status_id] = found
        return found

    def _finished(self, status_id: str) -> None:
        self._orchestrators.pop(status_id, None)
        self.credentials.forget(status_id)

    def _wake(self) -> None:
        if self._signal is not None:
            self._signal.notify()


__all__ = [
    "ADVANCE_INTERVAL_SECONDS",
    "DiscoveryRequests",
    "DiscoveryService",
    "read_capabilities",
    "read_schedule",
]

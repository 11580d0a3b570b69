"""A user's client of an instance: what ``discover`` and ``cmdb`` do with an ``https://`` queue.

It speaks through the same HTTPS transport as the agent (:class:`~midprobe.runner.queue.https.HttpsQueue`:
the pinned CA, basic auth with the password from ``MIDPROBE_INSTANCE_PASSWORD``, retries with
back-off, one-line errors), to the discovery endpoints and the Table API.
"""

from __future__ import annotations

import builtins
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from midprobe.capabilities.errors import ConfigError
from midprobe.runner.discovery.schedule import Schedule, schedule_to_mapping
from midprobe.runner.discovery.status import DiscoveryStatus
from midprobe.runner.queue.https import HttpsQueue
from midprobe.runner.queue.wire import IDEMPOTENCY_HEADER

TABLE_PREFIX: Final = "/api/now/table/"
PAGE: Final = 10_000
"""Records one Table API request asks for (its most)."""
_FRESH_SECONDS: Final = 0.5
"""A discovery's status read this recently serves the next reads of the same display update."""


def is_instance_url(url: str) -> bool:
    return url.strip().lower().startswith("https://")


class Closing:
    """``with`` closes it (the client and the readers over it)."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class InstanceClient(Closing):
    """Discoveries and tables of one instance, as user ``user`` (a ``discovery_admin``)."""

    def __init__(self, transport: HttpsQueue) -> None:
        self._http = transport
        self._http.role = "discovery_admin"
        self.url = transport.url
        self._shown: tuple[str, float, dict[str, Any]] | None = None

    # -- discoveries -------------------------------------------------------------------------------

    def start_discovery(
        self,
        schedule: Schedule,
        *,
        credentials: Mapping[str, Any] | None = None,
        capabilities: str | None = None,
    ) -> DiscoveryStatus:
        """Send the schedule (its keys; its credentials document beside it) and start it there.

        ``credentials``: self-contained (``portable_document``): the instance reads no file or
        variable of its own for it.
        """
        body = {
            "schedule": schedule_to_mapping(schedule),
            "credentials": credentials,
            "capabilities": capabilities,
        }
        # A resend after a lost reply carries the same key: the instance starts the discovery once.
        key = {IDEMPOTENCY_HEADER: secrets.token_hex(16)}
        return DiscoveryStatus.from_dict(self._http.call("POST", "/discoveries", body=body, headers=key))

    def list(self) -> list[DiscoveryStatus]:
        return [DiscoveryStatus.from_dict(raw) for raw in self._http.call("GET", "/discoveries")]

    def show(self, reference: str) -> dict[str, Any]:
        """The discovery's status with ``devices`` and its device ``log`` (read at most every half second)."""
        now = time.monotonic()
        if self._shown is not None and self._shown[0] == reference and now - self._shown[1] < _FRESH_SECONDS:
            return self._shown[2]
        found = self._http.call("GET", f"/discoveries/{_reference(reference)}")
        if not isinstance(found, dict):
            raise ConfigError("the instance sent a discovery of another shape", field="ID")
        self._shown = (reference, now, found)
        return found

    def get(self, reference: str) -> DiscoveryStatus:
        return DiscoveryStatus.from_dict(self.show(reference))

    def device_log(self, status: str) -> builtins.list[dict[str, str]]:
        return [{str(k): str(v) for k, v in entry.items()} for entry in self.show(status).get("log", [])]

    def device_counts(self, status: str) -> tuple[int, int]:
        devices = self.show(status).get("devices", {})
        return int(devices.get("found", 0)), int(devices.get("done", 0))

    def cancel(self, reference: str) -> tuple[DiscoveryStatus, int]:
        """Cancel a running discovery; its status and how many outputs were cancelled."""
        found = self._http.call("POST", f"/discoveries/{_reference(reference)}/cancel", body={})
        return DiscoveryStatus.from_dict(found), int(found.get("cancelled_outputs", 0))

    # -- the Table API -----------------------------------------------------------------------------

    def table(self, name: str, query: str = "") -> builtins.list[dict[str, str]]:
        """Every record of table ``name`` matching the encoded ``query``, page by page."""
        rows: builtins.list[dict[str, str]] = []
        while True:
            params = {"sysparm_limit": str(PAGE), "sysparm_offset": str(len(rows))}
            if query:
                params["sysparm_query"] = query
            page = self._http.call("GET", name, params=params, prefix=TABLE_PREFIX)
            rows.extend(page)
            if len(page) < PAGE:
                return rows

    def close(self) -> None:
        self._http.close()


def _reference(text: str) -> str:
    """A discovery id or prefix, checked before it becomes part of a path."""
    cleaned = text.strip().lower() if isinstance(text, str) else ""
    if not cleaned or len(cleaned) > 32 or not all(c in "0123456789abcdef" for c in cleaned):
        raise ConfigError(f"{text!r} is not a discovery id (hex sys_id or prefix)", field="ID")
    return cleaned


def open_instance(url: str, *, user: str | None, ca_file: Path | None) -> InstanceClient:
    """A client of the instance at ``url`` (``https://HOST:PORT``) as ``user``, password from the environment."""
    from midprobe.runner.queue.url import open_queue

    if not user:
        raise ConfigError(
            f"{url}: give --user NAME (a discovery_admin of the instance; the password comes from "
            "MIDPROBE_INSTANCE_PASSWORD)",
            field="--user",
        )
    transport = open_queue(url, user=user, ca_file=ca_file)
    assert isinstance(transport, HttpsQueue)
    return InstanceClient(transport)


__all__ = ["PAGE", "TABLE_PREFIX", "Closing", "InstanceClient", "is_instance_url", "open_instance"]

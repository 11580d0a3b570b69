"""The discovery endpoints (``/api/midprobe/v1/discoveries``): start, list, show and cancel discoveries.

For users with the ``discovery_admin`` role (or ``admin``); what ``midprobe discover ... --queue
https://...`` calls. Bodies and answers are JSON, refusals the Table API's error body. The
credentials a start carries (a self-contained credentials document) go to
:mod:`.schedule_credentials`, sealed to the instance's key, and nowhere else.
"""

from __future__ import annotations

import functools
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from midprobe.runner.discovery.status import DiscoveryStatus
from midprobe.runner.instance.api import TableApi, read_json
from midprobe.runner.instance.discoveries import DiscoveryService
from midprobe.runner.instance.errors import bad_request
from midprobe.runner.queue.wire import API_PREFIX, IDEMPOTENCY_HEADER

ROLE: Final = "discovery_admin"
#: What a start request may hold.
START_FIELDS: Final = frozenset({"schedule", "credentials", "capabilities"})


def status_to_json(status: DiscoveryStatus) -> dict[str, object]:
    return status.as_dict()


def _request_key(request: Request) -> str | None:
    """The start's idempotency key (``Idempotency-Key``): 1 to 100 letters, digits, ``-`` or ``_``."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not 0 < len(key) <= 100 or not all(c.isascii() and (c.isalnum() or c in "-_") for c in key):
        raise bad_request("Invalid request", f"{IDEMPOTENCY_HEADER} is 1 to 100 letters, digits, '-' or '_'")
    return key


class DiscoveryApi:
    """The discovery routes, over the Table API's users and guard."""

    def __init__(self, service: DiscoveryService, table_api: TableApi) -> None:
        self._service = service
        self._table_api = table_api

    async def _serve(self, request: Request, handle: Any, *, status_code: int = 200) -> Response:
        async def guarded() -> Response:
            user = await self._table_api.authorise(request, ROLE)
            return JSONResponse({"result": await handle(user.name)}, status_code=status_code)

        return await self._table_api.guarded(request, guarded)

    async def start(self, request: Request) -> Response:
        async def handle(user: str) -> object:
            body = await read_json(request, self._table_api.max_body_bytes)
            unknown = sorted(set(body) - START_FIELDS)
            if unknown:
                raise bad_request("Invalid request", f"a discovery start takes no field {', '.join(unknown)}")
            if "schedule" not in body:
                raise bad_request("Invalid request", "a discovery start needs schedule")
            schedule = body["schedule"]
            if not isinstance(schedule, dict | str):
                raise bad_request("Invalid request", "schedule must be a table of its keys or TOML text")
            if body.get("capabilities") is not None and not isinstance(body["capabilities"], str):
                raise bad_request("Invalid request", "capabilities must be the text of a file")
            if body.get("credentials") is not None and not isinstance(body["credentials"], str | dict):
                raise bad_request(
                    "Invalid request", "credentials must be a credentials document: a table or TOML text"
                )
            start = functools.partial(
                self._service.start,
                schedule,
                credentials=body.get("credentials"),  # type: ignore[arg-type]
                capabilities=body.get("capabilities"),  # type: ignore[arg-type]
                started_by=user,
                request_key=_request_key(request),
            )
            status_id: str = await self._table_api.call(start)
            return status_to_json(await self._table_api.call(lambda: self._service.get(status_id)))

        return await self._serve(request, handle, status_code=201)

    async def list(self, request: Request) -> Response:
        async def handle(user: str) -> object:
            return [status_to_json(status) for status in await self._table_api.call(self._service.list)]

        return await self._serve(request, handle)

    async def show(self, request: Request) -> Response:
        async def handle(user: str) -> object:
            reference = request.path_params["sys_id"]

            def read() -> dict[str, object]:
                status = self._service.get(reference)
                devices, done = self._service.device_counts(status.sys_id)
                return {
                    **status_to_json(status),
                    "devices": {"found": devices, "done": done},
                    "log": self._service.device_log(status.sys_id),
                }

            return await self._table_api.call(read)

        return await self._serve(request, handle)

    async def cancel(self, request: Request) -> Response:
        async def handle(user: str) -> object:
            reference = request.path_params["sys_id"]

            def cancel() -> dict[str, object]:
                count = self._service.cancel(reference)
                return {**status_to_json(self._service.get(reference)), "cancelled_outputs": count}

            return await self._table_api.call(cancel)

        return await self._serve(request, handle)


def discovery_routes(service: DiscoveryService, table_api: TableApi) -> list[Route]:
    api = DiscoveryApi(service, table_api)
    at = f"{API_PREFIX}/discoveries"
    return [
        Route(at, api.start, methods=["POST"]),
        Route(at, api.list, methods=["GET"]),
        Route(f"{at}/{{sys_id}}", api.show, methods=["GET"]),
        Route(f"{at}/{{sys_id}}/cancel", api.cancel, methods=["POST"]),
    ]


__all__ = ["ROLE", "DiscoveryApi", "discovery_routes", "status_to_json"]

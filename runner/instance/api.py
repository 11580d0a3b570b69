"""The Table API (a Starlette app): ``/api/now/table/{ecc_queue,ecc_agent}`` over the ECC queue.

Every route needs a user: HTTP basic auth (:mod:`.auth`, failures throttled by :mod:`.throttle`)
or a client certificate the instance issued (:mod:`.client_certs`); answers are ServiceNow's ``{"result": ...}``
envelope, refusals its ``{"error": {"message", "detail"}, "status": "failure"}`` body with a 4xx
status (503 when the queue is unreachable). A refused request writes nothing. The subset served
is docs/instance.md's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from midprobe.capabilities.errors import ConfigError, QueueError
from midprobe.capabilities.numbers import NumberRange, read_number
from midprobe.runner.ecc.record import AGENT_PREFIX, normalize_agent_name
from midprobe.runner.instance.auth import User, UserStore, parse_basic_auth
from midprobe.runner.instance.client_certs import certificate_user
from midprobe.runner.instance.errors import TableApiError, bad_request, forbidden
from midprobe.runner.instance.query import Row, parse_query
from midprobe.runner.instance.tables import DEFAULT_SCAN_CAP, AgentTable, EccQueueTable, Page, Table
from midprobe.runner.instance.throttle import LoginThrottle
from midprobe.runner.instance.wake import WorkSignal
from midprobe.runner.queue.base import EccQueue

if TYPE_CHECKING:
    from midprobe.runner.instance.agent_api import WireLog
    from midprobe.runner.instance.discoveries import DiscoveryService
    from midprobe.runner.instance.wheels import WheelShelf

MAX_BODY_BYTES: Final = 32 * 1024 * 1024
"""Largest request body read: a 20 MB payload (the queue's attachment cap) with room for JSON escapes."""
DEFAULT_LIMIT: Final = 10_000
"""Records a listing returns without ``sysparm_limit``, and the most it returns with one."""

#: Query parameters the API reads; any other ``sysparm_`` parameter is refused, by name.
_PARAMETERS: Final = frozenset(
    {
        "sysparm_query",
        "sysparm_limit",
        "sysparm_offset",
        "sysparm_fields",
        "sysparm_exclude_reference_link",
        "sysparm_display_value",
        "sysparm_no_count",
        "sysparm_suppress_pagination_header",
    }
)
_BOOLEAN_PARAMETERS: Final = (
    "sysparm_exclude_reference_link",
    "sysparm_no_count",
    "sysparm_suppress_pagination_header",
)

#: The roles that may read every table.
READERS: Final = ("mid_server", "discovery_admin")
#: What ServiceNow calls each method in an ACL refusal ("ACL Exception Update Failed ...").
_OPERATIONS: Final = {"GET": "Read", "POST": "Insert", "PATCH": "Update", "PUT": "Update"}

log = logging.getLogger("midprobe.instance")
T = TypeVar("T")


def error_response(error: TableApiError) -> JSONResponse:
    headers = dict(error.headers)
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="midprobe instance"'
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


def _unauthenticated(detail: str = "Required to provide Auth information") -> TableApiError:
    return TableApiError(401, "User Not Authenticated", detail)


def require_mid(user: User, agent: str) -> None:
    """403 unless ``user`` may act as MID ``agent`` (a ``mid_server`` user bound to other MIDs)."""
    if not user.may_act_as(agent):
        bound = ", ".join(mid.removeprefix(AGENT_PREFIX) for mid in user.mids)
        raise TableApiError(
            403,
            "Operation Failed",
            f"user {user.name} may act only as MID {bound}, not as {normalize_agent_name(agent).removeprefix(AGENT_PREFIX)}",
        )


def _parameters(request: Request) -> dict[str, str]:
    """The query parameters, each given at most once, none unknown."""
    found: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name not in _PARAMETERS:
            raise bad_request("Invalid parameter", f"the Table API here takes no parameter {name!r}")
        if name in found:
            raise bad_request("Invalid parameter", f"{name} is given more than once")
        found[name] = value
    for name in _BOOLEAN_PARAMETERS:
        if found.get(name, "false") not in ("true", "false"):
            raise bad_request("Invalid parameter", f"{name} is true or false")
    if found.get("sysparm_display_value", "false") != "false":
        raise bad_request("Invalid parameter", "sysparm_display_value: only false (raw values) is served")
    return found


def _number(parameters: Mapping[str, str], name: str, limits: NumberRange, default: int) -> int:
    if name not in parameters:
        return default
    try:
        return int(read_number(parameters[name], limits, field=name))
    except ConfigError as error:
        raise bad_request("Invalid parameter", str(error)) from None


def _projection(table: Table, parameters: Mapping[str, str]) -> tuple[str, ...] | None:
    """The fields ``sysparm_fields`` asks for (``None``: all), each one the table has."""
    raw = parameters.get("sysparm_fields", "")
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    unknown = [name for name in names if name not in table.fields]
    if unknown:
        raise bad_request(
            "Invalid parameter", f"sysparm_fields: {table.name} has no field {', '.join(unknown)}"
        )
    return names or None


def _project(row: Row, fields: tuple[str, ...] | None) -> dict[str, str]:
    return dict(row) if fields is None else {name: row[name] for name in fields}


async def read_json(request: Request, limit: int) -> dict[str, object]:
    """The request's JSON object, read at most ``limit`` bytes far."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise TableApiError(415, "Unsupported Media Type", "send the record as application/json")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TableApiError(413, "Request entity too large", f"the body is over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TableApiError(413, "Request entity too large", f"the body is over {limit} bytes")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks))
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        detail = error.msg if isinstance(error, json.JSONDecodeError) else "not UTF-8 JSON"
        raise bad_request(
            "Exception while reading request", f"the body is not valid JSON ({detail})"
        ) from None
    if not isinstance(body, dict):
        raise bad_request("Exception while reading request", "the body must be one JSON object (a record)")
    return body


class TableApi:
    """The routes, bound to one queue and one user store."""

    def __init__(
        self,
        queue: EccQueue,
        users: UserStore,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        scan_cap: int = DEFAULT_SCAN_CAP,
        signal: WorkSignal | None = None,
        tables: Sequence[Table] = (),
        throttle: LoginThrottle | None = None,
    ) -> None:
        self.signal = signal or WorkSignal()
        self._throttle = throttle or LoginThrottle()
        self._queue_table = EccQueueTable(queue, scan_cap=scan_cap)
        self._tables: dict[str, Table] = {"ecc_queue": self._queue_table, "ecc_agent": AgentTable(queue)}
        self._tables.update((table.name, table) for table in tables)  # read-only ones: CMDB, MID tables
        self._users = users
        self.max_body_bytes = max_body_bytes
        self._offsets = NumberRange(0, 10**9, integer=True)
        self._limits = NumberRange(1, DEFAULT_LIMIT, integer=True)

    async def call(self, function: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(function)

    async def authorise(self, request: Request, role: str, *or_roles: str) -> User:
        """The user making ``request`` (basic auth, or the client certificate the instance issued), if
        it holds ``role`` (or one of ``or_roles``); else 401 or 403.

        The user is kept as ``request.state.user``. A failed password check draws on the login
        throttle (429 once a user name or a client address has used its tries).
        """
        certified = certificate_user(request.scope)
        credentials = parse_basic_auth(request.headers.get("authorization", ""))
        if credentials is None:
            if certified is None:
                raise _unauthenticated()
            found = await self.call(lambda: self._users.get(certified))
            if found is None:
                raise _unauthenticated(f"the client certificate's user {certified} does not exist")
            user = found
        else:
            name, password = credentials
            if certified is not None and name != certified:
                raise _unauthenticated(f"the client certificate is user {certified}'s, not {name}'s")
            address = request.client.host if request.client else None
            recent = self._users.recently_verified(name, password)
            verified = recent or await self.call(
                lambda: self._throttle.authenticate(self._users, name, password, address)
            )
            if verified is None:
                raise _unauthenticated()
            user = verified
        if not any(user.has_role(held) for held in (role, *or_roles)):
            raise forbidden(_OPERATIONS.get(request.method, request.method))
        request.state.user = user
        return user

    def _table(self, request: Request) -> Table:
        name = request.path_params["table"]
        table = self._tables.get(name)
        if table is None:
            raise bad_request(
                f"Invalid table {name}", f"the instance serves {', '.join(sorted(self._tables))}"
            )
        return table

    async def guarded(self, request: Request, handle: Callable[[], Awaitable[Response]]) -> Response:
        try:
            return await handle()
        except TableApiError as error:
            return error_response(error)
        except ConfigError as error:
            return error_response(bad_request("Invalid request", str(error)))
        except QueueError as error:
            log.warning("the queue failed during %s %s: %s", request.method, request.url.path, error)
            return error_response(TableApiError(503, "Service Unavailable", "the ECC queue is not reachable"))

    async def list_records(self, request: Request) -> Response:
        async def handle() -> Response:
            await self.authorise(request, *READERS)
            table = self._table(request)
            parameters = _parameters(request)
            fields = _projection(table, parameters)
            query = parse_query(parameters.get("sysparm_query", ""), table.fields)
            offset = _number(parameters, "sysparm_offset", self._offsets, 0)
            limit = _number(parameters, "sysparm_limit", self._limits, DEFAULT_LIMIT)
            page: Page = await self.call(lambda: table.select(query, offset, limit))
            headers = {"X-Total-Count": str(page.total)} if page.total is not None else {}
            return JSONResponse({"result": [_project(row, fields) for row in page.rows]}, headers=headers)

        return await self.guarded(request, handle)

    async def get_record(self, request: Request) -> Response:
        async def handle() -> Response:
            await self.authorise(request, *READERS)
            table = self._table(request)
            fields = _projection(table, _parameters(request))
            row = await self.call(lambda: table.get(request.path_params["sys_id"]))
            return JSONResponse({"result": _project(row, fields)})

        return await self.guarded(request, handle)

    async def insert_record(self, request: Request) -> Response:
        async def handle() -> Response:
            user = await self.authorise(request, "mid_server")
            table = self._table(request)
            if table is not self._queue_table:
                raise TableApiError(405, "Method not Supported", f"{table.name} is read-only here")
            fields = _projection(table, _parameters(request))
            body = await read_json(request, self.max_body_bytes)
            if isinstance(body.get("agent"), str):
                require_mid(user, str(body["agent"]))
            may_write_outputs = user.has_role("admin")
            row = await self.call(lambda: self._queue_table.insert(body, may_write_outputs=may_write_outputs))
            if row.get("queue") == "output":
                self.signal.notify()  # wake the agents' long polls
            return JSONResponse({"result": _project(row, fields)}, status_code=201)

        return await self.guarded(request, handle)

    async def update_record(self, request: Request) -> Response:
        async def handle() -> Response:
            await self.authorise(request, "admin")
            table = self._table(request)
            if table is not self._queue_table:
                raise TableApiError(405, "Method not Supported", f"{table.name} is read-only here")
            fields = _projection(table, _parameters(request))
            body = await read_json(request, self.max_body_bytes)
            row = await self.call(lambda: self._queue_table.update(request.path_params["sys_id"], body))
            if row.get("queue") == "output" and row.get("state") == "ready":
                self.signal.notify()  # released or readdressed: work for the agents' long polls
            return JSONResponse({"result": _project(row, fields)})

        return await self.guarded(request, handle)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if error.status_code == 405:
        return error_response(
            TableApiError(405, "Method not Supported", f"{request.method} is not served here")
        )
    if error.status_code == 404:
        return error_response(bad_request("Requested URI does not represent any resource", request.url.path))
    return error_response(TableApiError(error.status_code, str(error.detail)))


async def _internal_error(request: Request, error: Exception) -> Response:
    log.error(
        "internal error during %s %s: %s: %s", request.method, request.url.path, type(error).__name__, error
    )
    return JSONResponse(
        TableApiError(500, "Internal server error", "the instance's log says more").body(), status_code=500
    )


def create_app(
    queue: EccQueue,
    users: UserStore,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    scan_cap: int = DEFAULT_SCAN_CAP,
    signal: WorkSignal | None = None,
    discoveries: DiscoveryService | None = None,
    tables: Sequence[Table] = (),
    console: ASGIApp | None = None,
    throttle: LoginThrottle | None = None,
    ca_pem: str | None = None,
    credentials: Mapping[str, Any] | None = None,
    wire_log: WireLog | None = None,
    wheels: WheelShelf | None = None,
) -> Starlette:
    """The Table API and the agent endpoints over ``queue``, with ``users`` for basic auth.

    The caller owns and closes both. ``signal`` wakes the agents' long polls (a fresh one if not
    given). With ``discoveries``, the discovery endpoints too; ``tables`` are served read-only
    beside ``ecc_queue`` and ``ecc_agent`` (:mod:`.cmdb_tables` and :mod:`.mid_tables` make the CMDB and MID ones);
    ``console`` (the web console) is mounted at ``/console``; ``ca_pem``, the instance's CA certificate, is served to ``mid setup``.
    ``credentials``: the instance's credentials document, sealed to each validated MID that asks;
    a discovery's own are sealed to the MIDs that hold its work (``discoveries.credentials``).
    ``wire_log``: where the agent endpoints' requests and answers are written, as inside TLS.
    ``wheels``: the midprobe wheels served to MIDs for their upgrades.
    """
    from midprobe.runner.instance.agent_api import agent_routes
    from midprobe.runner.instance.discovery_api import discovery_routes

    api = TableApi(
        queue,
        users,
        max_body_bytes=max_body_bytes,
        scan_cap=scan_cap,
        signal=signal,
        tables=tables,
        throttle=throttle,
    )
    routes = [
        *agent_routes(
            queue,
            api,
            api.signal,
            credentials,
            wire_log,
            ca_pem,
            discovery_credentials=discoveries.credentials if discoveries is not None else None,
            wheels=wheels,
        ),
        *(discovery_routes(discoveries, api) if discoveries is not None else ()),
        Route("/api/now/table/{table}", api.list_records, methods=["GET"]),
        Route("/api/now/table/{table}", api.insert_record, methods=["POST"]),
        Route("/api/now/table/{table}/{sys_id}", api.get_record, methods=["GET"]),
        Route("/api/now/table/{table}/{sys_id}", api.update_record, methods=["PATCH", "PUT"]),
        *([Mount("/console", app=console)] if console is not None else []),
    ]
    app = Starlette(
        routes=routes, exception_handlers={HTTPException: _http_error, Exception: _internal_error}
    )
    app.state.discoveries = discoveries  # other front ends (the console) start discoveries through it
    return app


__all__ = [
    "DEFAULT_LIMIT",
    "MAX_BODY_BYTES",
    "TableApi",
    "create_app",
    "error_response",
    "read_json",
    "require_mid",
]

"""The agent endpoints (``/api/midprobe/v1/...``): what a remote agent's HTTPS queue calls.

Each route is one call of the queue's public interface, for users with the ``mid_server``
role; bodies and answers are JSON (:mod:`midprobe.runner.queue.wire`). An answer carries an
idempotency key (the result's ``sys_id``): a resend after a lost reply is told it was stored,
and the result exists once. ``GET .../agents/{name}/work?wait=S`` is the long poll.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from midprobe.capabilities.errors import ConfigError, QueueError
from midprobe.capabilities.numbers import NumberRange, read_number
from midprobe.runner.ecc.record import ALL_AGENTS, PRIORITIES, EccRecord, check_sys_id
from midprobe.runner.instance.api import TableApi, error_response, read_json, require_mid
from midprobe.runner.instance.auth import User
from midprobe.runner.instance.errors import TableApiError, bad_request, not_found
from midprobe.runner.instance.wake import WorkSignal
from midprobe.runner.queue.base import AgentNameInUse, EccQueue, PoolClaim
from midprobe.runner.queue.wire import (
    API_PREFIX,
    IDEMPOTENCY_HEADER,
    affinity_to_json,
    record_from_json,
    record_to_json,
    registration_from_json,
    registration_to_json,
)

if TYPE_CHECKING:
    from midprobe.runner.instance.schedule_credentials import ScheduleCredentials
    from midprobe.runner.instance.wheels import WheelShelf

log = logging.getLogger("midprobe.instance")

MAX_CLAIM: Final = 1000
"""Most outputs one claim request takes."""
MAX_ANSWERS: Final = 500
"""Most answers one ``/answers`` request stores (the agent's batch of results)."""
MAX_WAIT_SECONDS: Final = 60.0
"""Longest long poll; an agent asks again after it."""
_CLAIM_LIMITS: Final = NumberRange(1, MAX_CLAIM, integer=True)
_LEASE_LIMITS: Final = NumberRange(0.001, 86_400.0)
_WAIT_LIMITS: Final = NumberRange(0.0, MAX_WAIT_SECONDS)
#: Outputs a waiting long poll compares between two looks (new ready work beyond it is seen by polls).
_SNAPSHOT: Final = 200
_REMEMBERED_AGENTS: Final = 10_000


def _text(body: Mapping[str, object], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise bad_request("Invalid request", f"{name} must be a non-empty string")
    return value


def _instance(body: Mapping[str, object]) -> str | None:
    """The claiming process's token, when given."""
    return None if body.get("instance") is None else _text(body, "instance")


def _ids(body: Mapping[str, object]) -> list[str]:
    value = body.get("sys_ids")
    if (
        not isinstance(value, list)
        or len(value) > 10 * MAX_CLAIM
        or not all(isinstance(item, str) for item in value)
    ):
        raise bad_request("Invalid request", f"sys_ids must be a list of at most {10 * MAX_CLAIM} ids")
    return [check_sys_id(item) for item in value]


def _refusal(error: TableApiError) -> dict[str, object]:
    """One answer of a batch refused: the Table API's error body and its status as ``code``."""
    return {**error.body(), "code": error.status}


def _number(body: Mapping[str, object], name: str, limits: NumberRange) -> float:
    return read_number(body.get(name), limits, field=name)


class AgentApi:
    """The agent routes, over the Table API's users and guard."""

    def __init__(
        self,
        queue: EccQueue,
        table_api: TableApi,
        signal: WorkSignal,
        wire_log: WireLog | None = None,
        ca_pem: str | None = None,
    ) -> None:
        self._queue = queue
        self._ca_pem = ca_pem
        self._table_api = table_api
        self._signal = signal
        self._wire_log = wire_log
        #: Per agent name: the signal version and the ready outputs its last long poll ended on.
        #: Per agent name: the signal version and the ready outputs its last long poll ended on,
        #: when it ended (monotonic) and whether it said there was work.
        self._seen: dict[str, tuple[int, frozenset[str], float, bool]] = {}

    async def serve_json(
        self, request: Request, handle: Callable[[], Awaitable[object]], *, role: str = "mid_server"
    ) -> Response:
        """Run ``handle`` for a user with ``role``; its value is the ``result`` of the JSON answer."""

        async def guarded() -> Response:
            await self._table_api.authorise(request, role)
            try:
                result = await handle()
                if self._wire_log is not None:
                    self._wire_log.write(
                        request.method, request.url.path, getattr(request.state, "json_body", None), result
                    )
                return JSONResponse({"result": result})
            except AgentNameInUse as error:
                raise TableApiError(409, "Agent name in use", str(error)) from None
            except QueueError as error:
                raise self._unavailable(request, error) from None

        return await self._table_api.guarded(request, guarded)

    def _unavailable(self, request: Request, error: QueueError) -> TableApiError:
        """The 503 for a queue failure: its reason helps the agent (e.g. an unregistered name); where the queue lives does not."""
        log.warning("the queue failed during %s %s: %s", request.method, request.url.path, error)
        reason = str(error).replace(f"queue {self._queue.url}", "the ECC queue")
        return TableApiError(503, "Service Unavailable", reason)

    @staticmethod
    def _act_as(request: Request, agent: str) -> str:
        """``agent``, if the request's user may act as that MID (403 otherwise)."""
        require_mid(request.state.user, agent)
        return agent

    async def authorise(self, request: Request, role: str = "mid_server") -> User:
        """The request's user, if it has ``role`` (for a route that answers other than JSON)."""
        return await self._table_api.authorise(request, role)

    async def guarded(self, request: Request, handle: Callable[[], Awaitable[Response]]) -> Response:
        """``handle``, its refusals and bad input answered as the Table API answers them."""
        return await self._table_api.guarded(request, handle)

    def wake(self) -> None:
        """Wake the long polls (an operator's change may have made work claimable)."""
        self._signal.notify()

    async def body(self, request: Request) -> dict[str, object]:
        body = await read_json(request, self._table_api.max_body_bytes)
        request.state.json_body = body  # for the wire log: the stream is read once
        return body

    async def run_blocking(self, function: Callable[[], Any]) -> Any:
        return await self._table_api.call(function)

    async def ca(self, request: Request) -> Response:
        """The instance's CA certificate (public; what ``mid setup`` pins once its fingerprint is confirmed)."""
        if self._ca_pem is None:
            return error_response(not_found("this instance serves a certificate of its own, not its CA"))
        return JSONResponse({"result": {"certificate": self._ca_pem}})

    async def register(self, request: Request) -> Response:
        async def handle() -> object:
            body = await self.body(request)
            registration = registration_from_json(body.get("registration"))
            self._act_as(request, registration.name)
            live = body.get("live_within_seconds")
            await self.run_blocking(
                functools.partial(
                    self._queue.register_agent,
                    registration,
                    instance=_instance(body),
                    live_within_seconds=None
                    if live is None
                    else _number(body, "live_within_seconds", _LEASE_LIMITS),
                )
            )
            return {"name": registration.name}

        return await self.serve_json(request, handle)

    async def heartbeat(self, request: Request) -> Response:
        async def handle() -> object:
            body = await self.body(request)
            name = self._act_as(request, request.path_params["name"])
            instance = _instance(body)
            await self.run_blocking(functools.partial(self._queue.heartbeat_agent, name, instance=instance))
            return {"name": name}

        return await self.serve_json(request, handle)

    async def status(self, request: Request) -> Response:
        async def handle() -> object:
            body = await self.body(request)
            name = self._act_as(request, request.path_params["name"])
            status = _text(body, "status")
            instance = _instance(body)
            await self.run_blocking(
                functools.partial(self._queue.set_agent_status, name, status, instance=instance)
            )
            return {"name": name, "status": status}

        return await self.serve_json(request, handle)

    async def get_agent(self, request: Request) -> Response:
        async def handle() -> object:
            found = await self.run_blocking(lambda: self._queue.get_agent(request.path_params["name"]))
            if found is None:
                raise not_found("no agent is registered under this name")
            return registration_to_json(found)

        return await self.serve_json(request, handle)

    async def claim(self, request: Request) -> Response:
        async def handle() -> object:
            body = await self.body(request)
            priorities = body.get("priorities")
            if priorities is not None and (
                not isinstance(priorities, list)
                or not all(isinstance(p, int) and not isinstance(p, bool) for p in priorities)
            ):
                raise bad_request("Invalid request", "priorities must be a list of integers")
            own = body.get("include_own_processing", False)
            if not isinstance(own, bool):
                raise bad_request("Invalid request", "include_own_processing must be true or false")
            records: list[EccRecord] = await self.run_blocking(
                functools.partial(
                    self._queue.claim,
                    self._act_as(request, _text(body, "agent")),
                    int(_number(body, "limit", _CLAIM_LIMITS)),
                    _number(body, "lease_seconds", _LEASE_LIMITS),
                    include_own_processing=own,
                    priorities=priorities,
                    instance=_instance(body),
                )
            )
            return [record_to_json(record) for record in records]

        return await self.serve_json(request, handle)

    async def claim_pools(self, request: Request) -> Response:
        """A claim round: one claim per pool, in order, in one request (``EccQueue.claim_pools``).

        Each answer is the pool's records, or the refusal that failed its claim (then the last).
        """

        async def handle() -> object:
            body = await self.body(request)
            raw = body.get("pools")
            if not isinstance(raw, list) or not 0 < len(raw) <= len(PRIORITIES):
                raise bad_request("Invalid request", f"pools must be a list of 1 to {len(PRIORITIES)} pools")
            claims: list[PoolClaim] = []
            for item in raw:
                priority = item.get("priority") if isinstance(item, dict) else None
                own = item.get("include_own_processing", False) if isinstance(item, dict) else None
                if not isinstance(item, dict) or priority not in PRIORITIES or not isinstance(own, bool):
                    raise bad_request(
                        "Invalid request",
                        'each pool is {"priority": 0, 1 or 2, "limit": N, "include_own_processing": BOOL}',
                    )
                claims.append(PoolClaim(priority, int(_number(item, "limit", _CLAIM_LIMITS)), own))
            outcomes = await self.run_blocking(
                functools.partial(
                    self._queue.claim_pools,
                    self._act_as(request, _text(body, "agent")),
                    claims,
                    _number(body, "lease_seconds", _LEASE_LIMITS),
                    instance=_instance(body),
                )
            )
            answers: list[object] = []
            for outcome in outcomes:
                if isinstance(outcome, QueueError):
                    answers.append(_refusal(self._unavailable(request, outcome)))
                else:
                    answers.append([record_to_json(record) for record in outcome])
            return answers

        return await self.serve_json(request, handle)

    async def renew(self, request: Request) -> Response:
        async def handle() -> object:
            body = await self.body(request)
            return await self.run_blocking(
                functools.partial(
                    self._queue.renew,
                    self._act_as(request, _text(body, "agent")),
                    _ids(body),
                    _number(body, "lease_seconds", _LEASE_LIMITS),
                    instance=_instance(body),
                )
            )

        return await self.serve_json(request, handle)

    async def release(self, request: Request) -> Response:
        async def handle() -> object:
            body = await self.body(request)
            released = await self.run_blocking(
                functools.partial(
                    self._queue.release, self._act_as(request, _text(body, "agent")), _ids(body)
                )
            )
            if released:
                self._signal.notify()
            return released

        return await self.serve_json(request, handle)

    def _store(self, user: User, pairs: list[tuple[str, EccRecord]]) -> list[dict[str, object]]:
        """Store each pair's result (one transaction); per pair ``{"stored", "replayed"}`` or its refusal.

        A result that was not stored because one existed is looked up: this very result (a resend
        after a lost reply, its idempotency key the result's ``sys_id``) counts as stored, replayed.
        """
        if user.mids and not user.has_role("admin"):  # a bound MID answers only its own work
            for _, result in pairs:
                require_mid(user, result.agent)
            addressed = self._queue.agents_of([output for output, _ in pairs])
            for output, _ in pairs:
                agent = addressed.get(output)
                if agent is not None and agent != ALL_AGENTS:
                    require_mid(user, agent)
        answers: list[dict[str, object]] = []
        for (output, result), outcome in zip(pairs, self._queue.complete_many(pairs), strict=True):
            if outcome is True:
                answers.append({"stored": True, "replayed": False})
            elif outcome is False:
                earlier = self._queue.get(result.sys_id)
                replayed = earlier is not None and earlier.response_to == output
                answers.append({"stored": replayed, "replayed": replayed})
            elif isinstance(outcome, ConfigError):
                answers.append(_refusal(bad_request("Invalid request", str(outcome))))
            else:
                # A missing output (or an input named as one) is the request's fault, not an outage:
                # say so, or the agent would resend this answer for ever.
                answered = self._queue.get(output)
                if answered is None:
                    answers.append(_refusal(not_found(f"no output {output}")))
                elif not answered.is_output:
                    answers.append(
                        _refusal(bad_request("Invalid request", f"{output} is an input, not an output"))
                    )
                else:
                    raise outcome
        return answers

    async def answer(self, request: Request) -> Response:
        async def handle() -> object:
            output = check_sys_id(request.path_params["sys_id"], field_name="output")
            result = record_from_json((await self.body(request)).get("result"))
            key = request.headers.get(IDEMPOTENCY_HEADER)
            if key is not None and key != result.sys_id:
                raise bad_request("Invalid request", f"{IDEMPOTENCY_HEADER} must be the result's sys_id")
            (answered,) = await self.run_blocking(lambda: self._store(request.state.user, [(output, result)]))
            if "error" in answered:
                error = answered["error"]
                assert isinstance(error, dict)
                raise TableApiError(int(str(answered["code"])), str(error["message"]), str(error["detail"]))
            return answered

        return await self.serve_json(request, handle)

    async def answers(self, request: Request) -> Response:
        async def handle() -> object:
            raw = (await self.body(request)).get("answers")
            if not isinstance(raw, list) or not 0 < len(raw) <= MAX_ANSWERS:
                raise bad_request("Invalid request", f"answers must be a list of 1 to {MAX_ANSWERS} answers")
            pairs: list[tuple[str, EccRecord]] = []
            for item in raw:
                if not isinstance(item, dict) or not isinstance(item.get("output"), str):
                    raise bad_request(
                        "Invalid request", 'each answer is {"output": SYS_ID, "result": RECORD}'
                    )
                pairs.append(
                    (check_sys_id(item["output"], field_name="output"), record_from_json(item.get("result")))
                )
            return await self.run_blocking(lambda: self._store(request.state.user, pairs))

        return await self.serve_json(request, handle)

    async def send_input(self, request: Request) -> Response:
        """An input the agent sends of its own accord (``queue.stats``); a resend is stored once."""

        async def handle() -> object:
            record = record_from_json((await self.body(request)).get("record"))
            key = request.headers.get(IDEMPOTENCY_HEADER)
            if key is not None and key != record.sys_id:
                raise bad_request("Invalid request", f"{IDEMPOTENCY_HEADER} must be the record's sys_id")
            stored = await self.run_blocking(lambda: self._queue.send_input(record))
            return {"stored": stored or key is not None, "replayed": not stored}

        return await self.serve_json(request, handle)

    async def get_record(self, request: Request) -> Response:
        async def handle() -> object:
            sys_id = check_sys_id(request.path_params["sys_id"])
            found = await self.run_blocking(lambda: self._queue.get(sys_id))
            if found is None:
                raise not_found()
            return record_to_json(found)

        return await self.serve_json(request, handle)

    async def list_agents(self, request: Request) -> Response:
        async def handle() -> object:
            raw = request.query_params.get("live_within_seconds")
            live = None if raw is None else read_number(raw, _LEASE_LIMITS, field="live_within_seconds")
            found = await self.run_blocking(lambda: self._queue.list_agents(live))
            return [registration_to_json(registration) for registration in found]

        return await self.serve_json(request, handle)

    async def get_lease(self, request: Request) -> Response:
        async def handle() -> object:
            sys_id = check_sys_id(request.path_params["sys_id"])
            lease = await self.run_blocking(lambda: self._queue.get_lease(sys_id))
            if lease is None:
                return None
            return {"sys_id": lease.sys_id, "owner": lease.owner, "expires_at": lease.expires_at.isoformat()}

        return await self.serve_json(request, handle)

    async def payload(self, request: Request) -> Response:
        async def handle() -> object:
            sys_id = check_sys_id(request.path_params["sys_id"])

            def read() -> str:
                record = self._queue.get(sys_id)
                if record is None:
                    raise not_found()
                return self._queue.read_payload(record)

            return {"payload": await self.run_blocking(read)}

        return await self.serve_json(request, handle)

    async def get_affinity(self, request: Request) -> Response:
        async def handle() -> object:
            address = request.query_params.get("address", "")
            protocol = request.query_params.get("protocol", "")
            if not address or not protocol:
                raise bad_request("Invalid request", "give address and protocol")
            found = await self.run_blocking(lambda: self._queue.get_affinity(address, protocol))
            return None if found is None else affinity_to_json(found)

        return await self.serve_json(request, handle)

    async def set_affinity(self, request: Request) -> Response:
        async def handle() -> object:
            body = await self.body(request)
            values = [_text(body, name) for name in ("address", "protocol", "credential_id")]
            await self.run_blocking(lambda: self._queue.set_affinity(*values))
            return {"address": values[0], "protocol": values[1]}

        return await self.serve_json(request, handle)

    async def wait_for_work(self, request: Request) -> Response:
        async def handle() -> object:
            agent = self._act_as(request, request.path_params["name"])
            seconds = read_number(request.query_params.get("wait", "0"), _WAIT_LIMITS, field="wait")
            wanted = (agent, ALL_AGENTS)

            def ready() -> frozenset[str]:
                return frozenset(
                    record.sys_id
                    for name in wanted
                    for record in self._queue.list(
                        queue_side="output", state="ready", agent=name, limit=_SNAPSHOT
                    )
                )

            # Compared with what this agent's previous poll ended on, so work that arrived between
            # two polls (while the agent was claiming) is not missed. When that poll said "work" a
            # moment ago, the agent is draining a backlog (whose first outputs change with every
            # claim) and claims anyway: the answer then waits for the next look at the queue, or
            # the agent would poll in a loop.
            version = self._signal.version
            now = await self.run_blocking(ready)
            seen = self._seen.get(agent)
            draining = (
                seen is not None and seen[3] and time.monotonic() - seen[2] < self._signal.check_seconds
            )
            work = seen is not None and not draining and (version != seen[0] or bool(now - seen[1]))
            if not work:
                baseline = seen[1] if seen is not None and draining else now

                async def new_work() -> bool:
                    return bool(await self.run_blocking(ready) - baseline)

                work = await self._signal.wait(float(seconds), new_work)
                if work:
                    now = await self.run_blocking(ready)
            if len(self._seen) >= _REMEMBERED_AGENTS:
                self._seen.clear()
            self._seen[agent] = (self._signal.version, now, time.monotonic(), work)
            return {"work": work}

        return await self.serve_json(request, handle)


class WireLog:
    """What the agent endpoints received and answered, as it travels inside TLS: one JSON line per call.

    For looking at the wire (``instance serve --wire-log FILE``); basic-auth headers are not kept.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "a"):
                pass
        except OSError as error:
            raise ConfigError(f"{path}: {error.strerror or error}", field="--wire-log") from None

    def write(self, method: str, path: str, body: object, result: object) -> None:
        line = json.dumps({"method": method, "path": path, "request": body, "answer": result})
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def agent_routes(
    queue: EccQueue,
    table_api: TableApi,
    signal: WorkSignal,
    credentials: Mapping[str, Any] | None = None,
    wire_log: WireLog | None = None,
    ca_pem: str | None = None,
    discovery_credentials: ScheduleCredentials | None = None,
    wheels: WheelShelf | None = None,
) -> list[Route]:
    from midprobe.runner.instance.lifecycle_api import lifecycle_routes
    from midprobe.runner.instance.upgrade_api import upgrade_routes

    api = AgentApi(queue, table_api, signal, wire_log=wire_log, ca_pem=ca_pem)
    at = API_PREFIX
    return [
        Route(f"{at}/ca", api.ca, methods=["GET"]),
        *lifecycle_routes(api, queue, credentials, discovery_credentials),
        *upgrade_routes(api, queue, wheels),
        Route(f"{at}/agents", api.register, methods=["POST"]),
        Route(f"{at}/agents", api.list_agents, methods=["GET"]),
        Route(f"{at}/agents/{{name}}", api.get_agent, methods=["GET"]),
        Route(f"{at}/agents/{{name}}/heartbeat", api.heartbeat, methods=["POST"]),
        Route(f"{at}/agents/{{name}}/status", api.status, methods=["POST"]),
        Route(f"{at}/agents/{{name}}/work", api.wait_for_work, methods=["GET"]),
        Route(f"{at}/claim", api.claim, methods=["POST"]),
        Route(f"{at}/claims", api.claim_pools, methods=["POST"]),
        Route(f"{at}/renew", api.renew, methods=["POST"]),
        Route(f"{at}/release", api.release, methods=["POST"]),
        Route(f"{at}/outputs/{{sys_id}}/answer", api.answer, methods=["POST"]),
        Route(f"{at}/answers", api.answers, methods=["POST"]),
        Route(f"{at}/inputs", api.send_input, methods=["POST"]),
        Route(f"{at}/records/{{sys_id}}", api.get_record, methods=["GET"]),
        Route(f"{at}/outputs/{{sys_id}}/lease", api.get_lease, methods=["GET"]),
        Route(f"{at}/outputs/{{sys_id}}/payload", api.payload, methods=["GET"]),
        Route(f"{at}/affinity", api.get_affinity, methods=["GET"]),
        Route(f"{at}/affinity", api.set_affinity, methods=["PUT"]),
    ]


__all__ = ["MAX_ANSWERS", "MAX_CLAIM", "MAX_WAIT_SECONDS", "AgentApi", "WireLog", "agent_routes"]

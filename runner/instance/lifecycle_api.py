"""The MID lifecycle endpoints: what ``midprobe mid ...`` calls over HTTPS, and a MID's credentials and issues.

``POST .../agents/{name}/admin`` (validate, invalidate, pause, drain, pin, rekey) and the settings
need the ``admin`` role; a MID (role ``mid_server``) asks for its sealed credentials (its own, and
those of the discovery whose output it holds) and raises or clears its issues. Credentials leave
the instance only sealed to the asking MID's own key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from midprobe.runner.ecc.record import check_sys_id
from midprobe.runner.instance.api import require_mid
from midprobe.runner.instance.credentials import NotHolding, seal_discovery_credentials, seal_for_agent
from midprobe.runner.instance.errors import bad_request, not_found
from midprobe.runner.instance.schedule_credentials import ScheduleCredentials
from midprobe.runner.queue.base import EccQueue
from midprobe.runner.queue.lifecycle import check_admin_state, check_issue_source, check_issue_state
from midprobe.runner.queue.wire import API_PREFIX, issue_to_json, registration_to_json

if TYPE_CHECKING:
    from midprobe.runner.instance.agent_api import AgentApi

_ADMIN_FIELDS = {"validated": bool, "admin_state": str, "pinned_version": str, "rekey": bool}


def _string(body: Mapping[str, object], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise bad_request("Invalid request", f"{name} must be a non-empty string")
    return value


class LifecycleApi:
    def __init__(
        self,
        api: AgentApi,
        queue: EccQueue,
        credentials: Mapping[str, Any] | None,
        discovery_credentials: ScheduleCredentials | None = None,
    ) -> None:
        self._api = api
        self._queue = queue
        self._credentials = credentials
        self._discovery_credentials = discovery_credentials

    async def admin(self, request: Request) -> Response:
        async def handle() -> object:
            body = await self._api.body(request)
            unknown = sorted(set(body) - set(_ADMIN_FIELDS))
            if unknown:
                raise bad_request("Invalid request", f"unknown field {', '.join(unknown)}")
            for name, kind in _ADMIN_FIELDS.items():
                if name in body and not isinstance(body[name], kind):
                    raise bad_request("Invalid request", f"{name} must be a {kind.__name__}")
            admin_state = body.get("admin_state")
            changes: dict[str, Any] = {
                "validated": body.get("validated"),
                "admin_state": None if admin_state is None else check_admin_state(str(admin_state)),
                "pinned_version": body.get("pinned_version"),
                "rekey": body.get("rekey"),
            }
            name = request.path_params["name"]
            if await self._api.run_blocking(lambda: self._queue.get_agent(name)) is None:
                raise not_found("no agent is registered under this name")
            found = await self._api.run_blocking(lambda: self._queue.update_agent(name, **changes))
            self._api.wake()
            return registration_to_json(found)

        return await self._api.serve_json(request, handle, role="admin")

    async def credentials(self, request: Request) -> Response:
        async def handle() -> object:
            name = request.path_params["name"]

            def sealed() -> str | None:
                stored = self._queue.get_sealed_credentials(name)
                if stored is not None or self._credentials is None:
                    return stored
                agent = self._queue.get_agent(name)
                return None if agent is None else seal_for_agent(self._queue, agent, self._credentials)

            return {"sealed": await self._api.run_blocking(sealed)}

        return await self._api.serve_json(request, handle)

    async def discovery_credentials(self, request: Request) -> Response:
        """The credentials of the discovery whose output the MID holds, sealed to its key (or ``null``)."""

        async def handle() -> object:
            name = request.path_params["name"]
            require_mid(request.state.user, name)
            sys_id = check_sys_id(request.path_params["sys_id"])
            kept = self._discovery_credentials
            if kept is None:
                return {"sealed": None}

            def sealed() -> str | None:
                return seal_discovery_credentials(self._queue, kept, name, sys_id)

            try:
                return {"sealed": await self._api.run_blocking(sealed)}
            except NotHolding as error:
                raise not_found(str(error)) from None

        return await self._api.serve_json(request, handle)

    async def raise_issue(self, request: Request) -> Response:
        async def handle() -> object:
            body = await self._api.body(request)
            name = request.path_params["name"]
            source = check_issue_source(str(body.get("source", "mid")))
            kind, message = _string(body, "kind"), _string(body, "message")
            issue = await self._api.run_blocking(
                lambda: self._queue.raise_issue(name, kind, message, source=source)
            )
            return issue_to_json(issue)

        return await self._api.serve_json(request, handle)

    async def clear_issue(self, request: Request) -> Response:
        async def handle() -> object:
            body = await self._api.body(request)
            name, kind = request.path_params["name"], _string(body, "kind")
            return {"cleared": await self._api.run_blocking(lambda: self._queue.clear_issue(name, kind))}

        return await self._api.serve_json(request, handle)

    async def list_issues(self, request: Request) -> Response:
        async def handle() -> object:
            agent = request.query_params.get("agent") or None
            resolved = request.query_params.get("include_resolved", "false")
            if resolved not in ("true", "false"):
                raise bad_request("Invalid request", "include_resolved must be true or false")
            found = await self._api.run_blocking(
                lambda: self._queue.list_issues(agent, include_resolved=resolved == "true")
            )
            return [issue_to_json(issue) for issue in found]

        return await self._api.serve_json(request, handle)

    async def set_issue_state(self, request: Request) -> Response:
        async def handle() -> object:
            sys_id = check_sys_id(request.path_params["sys_id"])
            state = check_issue_state(_string(await self._api.body(request), "state"))
            if not any(
                issue.sys_id == sys_id
                for issue in await self._api.run_blocking(
                    lambda: self._queue.list_issues(include_resolved=True)
                )
            ):
                raise not_found(f"no MID issue {sys_id}")
            return issue_to_json(
                await self._api.run_blocking(lambda: self._queue.set_issue_state(sys_id, state))
            )

        return await self._api.serve_json(request, handle, role="admin")

    async def get_setting(self, request: Request) -> Response:
        async def handle() -> object:
            name = request.path_params["name"]
            return {
                "name": name,
                "value": await self._api.run_blocking(lambda: self._queue.get_setting(name)),
            }

        return await self._api.serve_json(request, handle)

    async def set_setting(self, request: Request) -> Response:
        async def handle() -> object:
            name = request.path_params["name"]
            value = _string(await self._api.body(request), "value")
            await self._api.run_blocking(lambda: self._queue.set_setting(name, value))
            return {"name": name, "value": value}

        return await self._api.serve_json(request, handle, role="admin")


def lifecycle_routes(
    api: AgentApi,
    queue: EccQueue,
    credentials: Mapping[str, Any] | None,
    discovery_credentials: ScheduleCredentials | None = None,
) -> list[Route]:
    lifecycle = LifecycleApi(api, queue, credentials, discovery_credentials)
    at = API_PREFIX
    return [
        Route(f"{at}/agents/{{name}}/admin", lifecycle.admin, methods=["POST"]),
        Route(f"{at}/agents/{{name}}/credentials", lifecycle.credentials, methods=["GET"]),
        Route(
            f"{at}/agents/{{name}}/outputs/{{sys_id}}/credentials",
            lifecycle.discovery_credentials,
            methods=["GET"],
        ),
        Route(f"{at}/agents/{{name}}/issues", lifecycle.raise_issue, methods=["POST"]),
        Route(f"{at}/agents/{{name}}/issues/clear", lifecycle.clear_issue, methods=["POST"]),
        Route(f"{at}/issues", lifecycle.list_issues, methods=["GET"]),
        Route(f"{at}/issues/{{sys_id}}", lifecycle.set_issue_state, methods=["PATCH"]),
        Route(f"{at}/settings/{{name}}", lifecycle.get_setting, methods=["GET"]),
        Route(f"{at}/settings/{{name}}", lifecycle.set_setting, methods=["PUT"]),
    ]


__all__ = ["LifecycleApi", "lifecycle_routes"]

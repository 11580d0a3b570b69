"""The upgrade endpoints: the wheels the instance serves, the version asked of each MID, the history.

An operator (role ``admin``) asks one MID (``POST .../agents/{name}/upgrade``) or every unpinned MID
(``POST .../upgrade``) to upgrade, to a version a served wheel has; a MID (role ``mid_server``)
reads what is asked of it, downloads the wheel (its SHA-256 in the listing) and reports how its
upgrade went. Every attempt is a row of ``ecc_agent_upgrade``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from midprobe.runner.ecc.record import check_sys_id
from midprobe.runner.instance.api import require_mid
from midprobe.runner.instance.errors import bad_request, not_found
from midprobe.runner.instance.wheels import WheelShelf, choose_version
from midprobe.runner.queue.base import EccQueue
from midprobe.runner.queue.lifecycle import SETTING_ACCEPTED_MAJOR, SETTING_MID_VERSION, registered_agent
from midprobe.runner.queue.wire import API_PREFIX, ServedWheel, upgrade_to_json, wheel_to_json

if TYPE_CHECKING:
    from midprobe.runner.instance.agent_api import AgentApi


def _optional_text(body: Mapping[str, object], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise bad_request("Invalid request", f"{name} must be a non-empty string")
    return value


class UpgradeApi:
    def __init__(self, api: AgentApi, queue: EccQueue, shelf: WheelShelf | None) -> None:
        self._api = api
        self._queue = queue
        self._shelf = shelf

    def _served(self) -> list[ServedWheel]:
        """The wheels served now (blocking: reads the folder and the accepted major version)."""
        if self._shelf is None:
            return []
        return self._shelf.wheels(self._queue.get_setting(SETTING_ACCEPTED_MAJOR))

    async def list_wheels(self, request: Request) -> Response:
        async def handle() -> object:
            return [wheel_to_json(wheel) for wheel in await self._api.run_blocking(self._served)]

        return await self._api.serve_json(request, handle)

    async def download_wheel(self, request: Request) -> Response:
        async def guarded() -> Response:
            await self._api.authorise(request)
            filename = request.path_params["filename"]
            shelf = self._shelf
            found = None
            if shelf is not None:
                accepted = await self._api.run_blocking(
                    lambda: self._queue.get_setting(SETTING_ACCEPTED_MAJOR)
                )
                found = await self._api.run_blocking(lambda: shelf.path(filename, accepted))
            if found is None:
                raise not_found(f"no wheel {filename} is served")
            return FileResponse(found, media_type="application/octet-stream", filename=filename)

        return await self._api.guarded(request, guarded)

    async def request_upgrade(self, request: Request) -> Response:
        async def handle() -> object:
            asked = _optional_text(await self._api.body(request), "version")
            name = request.path_params["name"]

            def requested() -> object:
                agent = self._queue.get_agent(name)
                if agent is None:
                    raise not_found("no agent is registered under this name")
                if agent.pinned_version:
                    raise bad_request(
                        "Invalid request",
                        f"MID {agent.short_name} is pinned to {agent.pinned_version}: a pinned MID never upgrades",
                    )
                version = choose_version(self._served(), asked)
                return upgrade_to_json(self._queue.request_upgrade(name, version))

            found = await self._api.run_blocking(requested)
            self._api.wake()
            return found

        return await self._api.serve_json(request, handle, role="admin")

    async def upgrade_all(self, request: Request) -> Response:
        async def handle() -> object:
            asked = _optional_text(await self._api.body(request), "version")

            def wanted() -> str:
                version = choose_version(self._served(), asked)
                self._queue.set_setting(SETTING_MID_VERSION, version)
                return version

            return {"name": SETTING_MID_VERSION, "value": await self._api.run_blocking(wanted)}

        return await self._api.serve_json(request, handle, role="admin")

    async def pending_upgrade(self, request: Request) -> Response:
        async def handle() -> object:
            name = request.path_params["name"]
            require_mid(request.state.user, name)
            found = await self._api.run_blocking(lambda: self._queue.pending_upgrade(name))
            return None if found is None else upgrade_to_json(found)

        return await self._api.serve_json(request, handle)

    async def start_upgrade(self, request: Request) -> Response:
        async def handle() -> object:
            body = await self._api.body(request)
            name = request.path_params["name"]
            require_mid(request.state.user, name)
            from_version = _optional_text(body, "from_version") or ""
            to_version = _optional_text(body, "to_version")
            if to_version is None:
                raise bad_request("Invalid request", "to_version must be a non-empty string")
            sys_id = _optional_text(body, "sys_id")
            await self._api.run_blocking(lambda: registered_agent(self._queue, name))
            found = await self._api.run_blocking(
                lambda: self._queue.start_upgrade(name, from_version, to_version, sys_id=sys_id)
            )
            return upgrade_to_json(found)

        return await self._api.serve_json(request, handle)

    async def end_upgrade(self, request: Request) -> Response:
        async def handle() -> object:
            body = await self._api.body(request)
            sys_id = check_sys_id(request.path_params["sys_id"])
            succeeded, reason = body.get("succeeded"), body.get("reason", "")
            if not isinstance(succeeded, bool):
                raise bad_request("Invalid request", "succeeded must be true or false")
            if not isinstance(reason, str):
                raise bad_request("Invalid request", "reason must be a string")

            def ended() -> object:
                mine = [found for found in self._queue.list_upgrades() if found.sys_id == sys_id]
                if not mine:
                    raise not_found(f"no MID upgrade {sys_id}")
                require_mid(request.state.user, mine[0].agent)
                return upgrade_to_json(self._queue.end_upgrade(sys_id, succeeded=succeeded, reason=reason))

            return await self._api.run_blocking(ended)

        return await self._api.serve_json(request, handle)

    async def list_upgrades(self, request: Request) -> Response:
        async def handle() -> object:
            agent = request.query_params.get("agent") or None
            found = await self._api.run_blocking(lambda: self._queue.list_upgrades(agent))
            return [upgrade_to_json(upgrade) for upgrade in found]

        return await self._api.serve_json(request, handle)


def upgrade_routes(api: AgentApi, queue: EccQueue, shelf: WheelShelf | None) -> list[Route]:
    upgrades = UpgradeApi(api, queue, shelf)
    at = API_PREFIX
    return [
        Route(f"{at}/wheels", upgrades.list_wheels, methods=["GET"]),
        Route(f"{at}/wheels/{{filename}}", upgrades.download_wheel, methods=["GET"]),
        Route(f"{at}/upgrade", upgrades.upgrade_all, methods=["POST"]),
        Route(f"{at}/agents/{{name}}/upgrade", upgrades.request_upgrade, methods=["POST"]),
        Route(f"{at}/agents/{{name}}/upgrade", upgrades.pending_upgrade, methods=["GET"]),
        Route(f"{at}/agents/{{name}}/upgrades", upgrades.start_upgrade, methods=["POST"]),
        Route(f"{at}/upgrades", upgrades.list_upgrades, methods=["GET"]),
        Route(f"{at}/upgrades/{{sys_id}}/end", upgrades.end_upgrade, methods=["POST"]),
    ]


__all__ = ["UpgradeApi", "upgrade_routes"]

"""An instance in process: the Table API over a real SQLite queue, called through httpx's ASGI transport."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from midprobe.probes.base import ProbeContext
from midprobe.probes.registry import default_registry
from midprobe.runner.agent.daemon import Agent, AgentTimings
from midprobe.runner.agent.limits import ConcurrencyLimits, PoolSizes
from midprobe.runner.agent.probe_runner import AgentIdentity, ProbeRunner
from midprobe.runner.cmdb.database import Database, open_database
from midprobe.runner.instance.api import create_app
from midprobe.runner.instance.auth import UserStore, open_users
from midprobe.runner.queue.base import AgentRegistration, EccQueue
from midprobe.runner.queue.https import HttpsQueue
from midprobe.runner.queue.spool import ResultSpool
from midprobe.runner.queue.url import open_queue, sqlite_url
from tests.support.trust import trust_every_agent

ADMIN = ("admin", "admin secret: ok")
MID = ("mid1", "mid1-password")


class Client:
    """A plain HTTP client of the instance, as a ServiceNow integration calls it (one request at a time)."""

    def __init__(self, app: Starlette, auth: tuple[str, str] | None = ADMIN) -> None:
        self.app = app
        self.auth = auth

    def as_user(self, auth: tuple[str, str] | None) -> Client:
        return Client(self.app, auth)

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="https://instance.test") as client:
                return await client.request(method, path, auth=self.auth, **options)

        return asyncio.run(send())

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: object, **options: Any) -> httpx.Response:
        return self.request("POST", path, json=body, **options)

    def patch(self, path: str, body: object) -> httpx.Response:
        return self.request("PATCH", path, json=body)


@pytest.fixture
def queue_url(tmp_path: Path) -> str:
    return trust_every_agent(sqlite_url(tmp_path / "ecc.db"))


@pytest.fixture
def queue(queue_url: str) -> Iterator[EccQueue]:
    with open_queue(queue_url) as opened:
        yield opened


@pytest.fixture
def database(queue_url: str) -> Iterator[Database]:
    """The queue's database as the CMDB, status and credential stores open it."""
    opened = open_database(queue_url)
    yield opened
    opened.close()


@pytest.fixture
def users(queue_url: str) -> Iterator[UserStore]:
    with open_users(queue_url) as store:
        store.add(*ADMIN, roles=("admin",))
        store.add(*MID, roles=("mid_server",))
        yield store


@pytest.fixture
def api(queue: EccQueue, users: UserStore) -> Client:
    return Client(create_app(queue, users, max_body_bytes=64 * 1024, scan_cap=50))


class AsgiBridge(httpx.BaseTransport):
    """A synchronous httpx transport into the ASGI app: each request runs in its own event loop.

    ``cut`` makes the next requests fail as a dead network would; ``lose_replies`` lets the
    instance handle the next N requests and then drops their answers (a reply lost on the way
    back), which is what an idempotency key is for.
    """

    def __init__(self, app: Starlette) -> None:
        self._transport = httpx.ASGITransport(app=app)
        self.cut = False
        self.lose_replies = 0
        self.requests: list[str] = []
        #: Each request's body, in the order of ``requests``.
        self.bodies: list[bytes] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        body = request.read()
        self.bodies.append(body)
        if self.cut:
            raise httpx.ConnectError("connection refused (the network is cut)", request=request)

        async def send() -> httpx.Response:
            forwarded = httpx.Request(request.method, request.url, headers=request.headers, content=body)
            response = await self._transport.handle_async_request(forwarded)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        response = asyncio.run(send())
        if self.lose_replies > 0:
            self.lose_replies -= 1
            raise httpx.ReadError("connection reset before the reply arrived", request=request)
        return response


def remote_queue(bridge: AsgiBridge, spool: Path, auth: tuple[str, str] = MID) -> HttpsQueue:
    """A remote agent's ``HttpsQueue`` over ``bridge``, spooling into ``spool``, never sleeping between tries."""
    client = httpx.Client(base_url="https://instance.test", transport=bridge)
    return HttpsQueue(
        "https://instance.test",
        user=auth[0],
        password=auth[1],
        client=client,
        spool=ResultSpool(spool),
        sleep=lambda seconds: None,
    )


def bridged_client(
    bridge: AsgiBridge, auth: tuple[str, str], base: str = "https://instance.test"
) -> HttpsQueue:
    """An ``HttpsQueue`` logged in as ``auth`` that reaches the app through ``bridge`` (no retry waits)."""
    return HttpsQueue(
        base,
        user=auth[0],
        password=auth[1],
        client=httpx.Client(base_url=base, transport=bridge),
        sleep=lambda seconds: None,
    )


@dataclass(frozen=True)
class HostsParams:
    count: int
    #: Characters of padding on the host at this position (1-based; 0: none), to make one page large.
    padded: int
    padding: int


class HostsProbe:
    """Reports ``count`` hosts in one ``<result>``, as a Shazzam over a batch does."""

    topic = "TestHosts"
    required_capabilities: tuple[str, ...] = ()

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> HostsParams:
        return HostsParams(
            int(parameters.get("count", "1")),
            int(parameters.get("padded", "0")),
            int(parameters.get("padding", "0")),
        )

    async def run(self, params: HostsParams, context: ProbeContext) -> HostsParams:
        return params

    def encode_results(self, result: HostsParams) -> Sequence[ET.Element]:
        element = ET.Element("result", hosts_alive=str(result.count))
        for index in range(result.count):
            host = ET.SubElement(element, "host", ip=f"198.18.0.{index + 1}", alive="true", active="true")
            if index + 1 == result.padded:
                host.set("name", "x" * result.padding)
        return [element]


def https_agent(name: str, queue: HttpsQueue, timings: AgentTimings) -> Agent:
    """A real agent (the default probes and ``TestHosts``) on ``queue``."""
    registry = default_registry()
    registry.register(HostsProbe())
    pools = PoolSizes()
    runner = ProbeRunner(
        registry=registry, identity=AgentIdentity(name), limits=ConcurrencyLimits(pools=pools)
    )
    return Agent(queue, runner, AgentRegistration(name), timings=timings, pools=pools)

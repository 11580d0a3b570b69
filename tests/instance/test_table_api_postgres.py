"""The same Table API in front of a PostgreSQL queue: users, queries, an answer, the agent registry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from midprobe.runner.ecc.record import EccRecord
from midprobe.runner.instance.api import create_app
from midprobe.runner.instance.auth import open_users
from midprobe.runner.queue.base import AgentRegistration
from midprobe.runner.queue.url import open_queue
from tests.instance.conftest import ADMIN, MID, Client

QUEUE = "/api/now/table/ecc_queue"


@pytest.fixture
def pg_api(postgres_database_url: str) -> Iterator[tuple[Client, str]]:
    with open_queue(postgres_database_url) as queue, open_users(postgres_database_url) as users:
        users.add(*ADMIN, roles=("admin",))
        users.add(*MID, roles=("mid_server",))
        yield Client(create_app(queue, users)), postgres_database_url


def test_the_table_api_over_postgresql(pg_api: tuple[Client, str]) -> None:
    api, url = pg_api
    with open_queue(url) as queue:
        outputs = [
            EccRecord(agent=agent, topic="Shazzam", queue="output") for agent in ("mid1", "mid2", "mid1")
        ]
        queue.enqueue_many(outputs)
        queue.register_agent(AgentRegistration("mid1"))
    mid = api.as_user(MID)
    listing = mid.get(QUEUE, sysparm_query="agent=mid.server.mid1^state=ready", sysparm_fields="sys_id")
    assert listing.json()["result"] == [{"sys_id": outputs[0].sys_id}, {"sys_id": outputs[2].sys_id}]
    answer = {"agent": "mid1", "topic": "Shazzam", "queue": "input", "response_to": outputs[0].sys_id}
    assert mid.post(QUEUE, answer).status_code == 201
    assert mid.post(QUEUE, answer).status_code == 409
    ordered = api.get(QUEUE, sysparm_query="queue=output^ORDERBYDESCstate", sysparm_fields="state")
    assert [row["state"] for row in ordered.json()["result"]] == ["ready", "ready", "processed"]
    assert [row["name"] for row in mid.get("/api/now/table/ecc_agent").json()["result"]] == ["mid1"]
    assert api.as_user(("mid1", "wrong")).get(QUEUE).status_code == 401
    with open_queue(url) as queue:
        assert len(queue.list(queue_side="input", response_to=outputs[0].sys_id)) == 1

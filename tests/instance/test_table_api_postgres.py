"""The same Table API in front of a PostgreSQL queue: users, queries, an answer, the agent registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from midprobe.runner.cmdb.database import open_database
from midprobe.runner.cmdb.model import DiscoveredDevice
from midprobe.runner.cmdb.store import CmdbStore
from midprobe.runner.ecc.builders import new_input_record
from midprobe.runner.ecc.record import EccRecord
from midprobe.runner.instance.api import create_app
from midprobe.runner.instance.auth import open_users
from midprobe.runner.instance.cmdb_tables import cmdb_tables
from midprobe.runner.instance.discoveries import DiscoveryService
from midprobe.runner.instance.mid_tables import mid_tables
from midprobe.runner.queue.base import AgentRegistration
from midprobe.runner.queue.https import HttpsQueue
from midprobe.runner.queue.spool import ResultSpool
from midprobe.runner.queue.url import open_queue
from tests.instance.conftest import ADMIN, MID, AsgiBridge, Client
from tests.support.trust import trust_every_agent

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


def test_an_agent_claims_and_answers_over_https_in_front_of_postgresql(
    pg_api: tuple[Client, str], tmp_path: Path
) -> None:
    api, url = pg_api
    output = EccRecord(agent="mid1", topic="HeartbeatProbe", queue="output")
    with open_queue(url) as queue:
        queue.enqueue(output)
    bridge = AsgiBridge(api.app)
    client = httpx.Client(base_url="https://instance.test", transport=bridge)
    with HttpsQueue(
        "https://instance.test", user=MID[0], password=MID[1], client=client, spool=ResultSpool(tmp_path)
    ) as remote:
        remote.register_agent(AgentRegistration("mid1"), instance="p1", live_within_seconds=60)
        assert remote.claim("mid1", 5, 60.0, instance="p1") == []  # a new MID: not validated yet
        with open_queue(url) as queue:
            queue.update_agent("mid1", validated=True)  # what `midprobe mid validate mid1` does
        (claimed,) = remote.claim("mid1", 5, 60.0, instance="p1")
        assert claimed.sys_id == output.sys_id
        result = EccRecord(agent="mid1", topic="HeartbeatProbe", queue="input", response_to=output.sys_id)
        bridge.lose_replies = 1
        assert remote.complete(output.sys_id, result) is True
        assert remote.wait_for_work("mid1", 0.1) is False
    with open_queue(url) as queue:
        assert [r.sys_id for r in queue.list(queue_side="input", response_to=output.sys_id)] == [
            result.sys_id
        ]


def test_discoveries_and_the_cmdb_tables_over_postgresql(postgres_database_url: str) -> None:
    url = trust_every_agent(postgres_database_url)
    database = open_database(url)
    try:
        with open_queue(url) as queue, open_users(url) as users:
            users.add(*ADMIN, roles=("admin",))
            queue.register_agent(AgentRegistration("mid1", applications=("Discovery",)))
            cmdb = CmdbStore(database)
            cmdb.reconcile(DiscoveredDevice("cmdb_ci_ip_switch", "switch1", ip_address="198.18.0.11"))
            service = DiscoveryService(queue, database)
            tables = [*cmdb_tables(cmdb), *mid_tables(queue, database, None)]
            api = Client(create_app(queue, users, discoveries=service, tables=tables))
            schedule = {"name": "pg", "ranges": ["198.18.0.8/30"], "ports": "22"}
            started = api.post(
                "/api/midprobe/v1/discoveries",
                {"schedule": schedule, "credentials": "snmp_public_fallback = false\n"},
            )
            assert started.status_code == 201, started.text
            status_id = started.json()["result"]["sys_id"]
            (scan,) = [
                r for r in queue.list(queue_side="output", limit=100) if r.agent_correlator == status_id
            ]
            queue.complete(scan.sys_id, new_input_record(scan, agent=scan.agent, results=[], probe_time_ms=1))
            assert DiscoveryService(queue, database).advance_all() == 0  # a restarted instance finishes it
            assert (
                api.get(f"/api/midprobe/v1/discoveries/{status_id}").json()["result"]["state"] == "Completed"
            )
            names = api.get("/api/now/table/cmdb_ci", sysparm_fields="name").json()["result"]
            assert names == [{"name": "switch1"}]
            assert api.get("/api/now/table/ecc_agent_issue").json()["result"] == []
            applications = api.get("/api/now/table/ecc_agent_application_m2m").json()["result"]
            assert [row["application"] for row in applications] == ["Discovery"]
    finally:
        database.close()

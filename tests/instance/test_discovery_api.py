"""The discovery endpoints: a discovery_admin starts, watches and cancels discoveries the instance runs.

The instance's service is the real one over a real SQLite queue; a "restart" is a second service
over the same database, as a new instance process would make.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from midprobe.runner.cmdb.database import Database
from midprobe.runner.discovery.schedule import Schedule, load_schedule
from midprobe.runner.ecc.builders import new_input_record
from midprobe.runner.instance.api import create_app
from midprobe.runner.instance.auth import UserStore
from midprobe.runner.instance.client import InstanceClient
from midprobe.runner.instance.discoveries import DiscoveryService
from midprobe.runner.queue.base import AgentRegistration, EccQueue
from midprobe.runner.queue.https import HttpsQueue
from tests.instance.conftest import MID, AsgiBridge, Client

OPERATOR = ("operator", "operator-password")
SECRET = "s3cret-never-in-the-queue"
CREDENTIALS = f'[[credential]]\nid = "lab"\ntype = "ssh_password"\nuser = "lab"\npassword = "{SECRET}"\n'
SCHEDULE = {"name": "small", "ranges": ["198.18.0.8/30"], "ports": "22"}
PREFIX = "/api/midprobe/v1/discoveries"


@pytest.fixture
def service(queue: EccQueue, database: Database) -> DiscoveryService:
    queue.register_agent(AgentRegistration(name="mid1", applications=("Discovery",)))
    return DiscoveryService(queue, database)


@pytest.fixture
def operator(queue: EccQueue, users: UserStore, service: DiscoveryService) -> Client:
    users.add(*OPERATOR, roles=("discovery_admin",))
    return Client(create_app(queue, users, discoveries=service), auth=OPERATOR)


def _outputs(queue: EccQueue, status_id: str) -> list[str]:
    return [r.topic for r in queue.list(queue_side="output", limit=1000) if r.agent_correlator == status_id]


def test_a_started_discovery_puts_its_scan_on_the_queue_and_keeps_the_credentials_out_of_it(
    operator: Client, queue: EccQueue, service: DiscoveryService
) -> None:
    started = operator.post(PREFIX, {"schedule": SCHEDULE, "credentials": CREDENTIALS})
    assert started.status_code == 201, started.text
    status = started.json()["result"]
    assert (status["name"], status["state"]) == ("small", "Active")
    assert _outputs(queue, status["sys_id"]) == ["Shazzam"]
    assert all(SECRET not in record.payload for record in queue.list(limit=1000))
    assert service.credentials.get(status["sys_id"]) == tomllib.loads(CREDENTIALS)

    listed = operator.get(PREFIX).json()["result"]
    assert [entry["sys_id"] for entry in listed] == [status["sys_id"]]
    shown = operator.get(f"{PREFIX}/{status['sys_id'][:8]}").json()["result"]
    assert shown["sys_id"] == status["sys_id"]
    assert shown["phases"]["scanning"]["started"] == 1
    assert SECRET not in str(shown)


def test_cancel_answers_the_waiting_work_and_a_second_cancel_is_refused(
    operator: Client, queue: EccQueue, service: DiscoveryService
) -> None:
    status_id = operator.post(PREFIX, {"schedule": SCHEDULE}).json()["result"]["sys_id"]
    cancelled = operator.post(f"{PREFIX}/{status_id}/cancel", {})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["result"]["state"] == "Cancelled"
    assert cancelled.json()["result"]["cancelled_outputs"] == 1
    (scan,) = [r for r in queue.list(queue_side="output", limit=100) if r.agent_correlator == status_id]
    assert queue.get(scan.sys_id).state in ("processed", "error")  # type: ignore[union-attr]
    again = operator.post(f"{PREFIX}/{status_id}/cancel", {})
    assert again.status_code == 400
    assert "already Cancelled" in again.json()["error"]["detail"]


def test_a_restarted_instance_resumes_the_active_discovery_and_completes_it(
    operator: Client, queue: EccQueue, database: Database, service: DiscoveryService
) -> None:
    status_id = operator.post(PREFIX, {"schedule": SCHEDULE, "credentials": CREDENTIALS}).json()["result"][
        "sys_id"
    ]
    (scan,) = [r for r in queue.list(queue_side="output", limit=100) if r.agent_correlator == status_id]
    queue.complete(scan.sys_id, new_input_record(scan, agent=scan.agent, results=[], probe_time_ms=1))

    restarted = DiscoveryService(queue, database)  # knows nothing but what the database holds
    assert restarted.advance_all() == 0
    assert restarted.get(status_id).state == "Completed"
    assert restarted.credentials.get(status_id) is None  # forgotten once the discovery ended


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({}, "needs schedule"),
        ({"schedule": SCHEDULE, "colour": "red"}, "no field colour"),
        ({"schedule": {"name": "x"}}, "'ranges'"),
        ({"schedule": {**SCHEDULE, "ranges": ["nowhere/99"]}}, "ranges"),
        ({"schedule": {**SCHEDULE, "credentials": "creds.toml"}}, "credentials file's text"),
        ({"schedule": SCHEDULE, "credentials": "[[credential"}, "not valid TOML"),
        ({"schedule": SCHEDULE, "credentials": 7}, "credentials must be a credentials document"),
        (
            {"schedule": SCHEDULE, "credentials": CREDENTIALS.replace("password =", "password_env =")},
            "password_env",
        ),
        (
            {"schedule": SCHEDULE, "credentials": CREDENTIALS.replace("password =", "private_key_file =")},
            "reads no variable or file",
        ),
        (
            {"schedule": SCHEDULE, "credentials": {"credential": [{"id": "x", "type": "ssh_password"}]}},
            "password: is required",
        ),
        ({"schedule": {**SCHEDULE, "mid": "cluster:east"}}, "east"),
        ({"schedule": 'name = "x"\nranges = ['}, "not valid TOML"),
    ],
)
def test_a_bad_start_is_a_400_naming_what_is_wrong_and_starts_nothing(
    operator: Client, queue: EccQueue, body: dict[str, object], detail: str
) -> None:
    refused = operator.post(PREFIX, body)
    assert refused.status_code == 400, refused.text
    assert detail in refused.json()["error"]["detail"]
    assert "[[credential" not in refused.text
    assert operator.get(PREFIX).json()["result"] == []
    assert queue.list(queue_side="output", limit=10) == []


def test_a_mid_server_user_may_not_start_discoveries(operator: Client) -> None:
    refused = operator.as_user(MID).post(PREFIX, {"schedule": SCHEDULE})
    assert refused.status_code == 403
    assert operator.as_user(MID).get(PREFIX).status_code == 403
    assert operator.get(PREFIX).json()["result"] == []


def test_max_run_time_counts_from_the_start_not_from_the_instances_restart(
    operator: Client, queue: EccQueue, database: Database
) -> None:
    schedule = {**SCHEDULE, "max_run_time": 60}
    status_id = operator.post(PREFIX, {"schedule": schedule}).json()["result"]["sys_id"]
    two_minutes_later = datetime.now(UTC) + timedelta(minutes=2)
    restarted = DiscoveryService(queue, database, clock=lambda: two_minutes_later)
    assert restarted.advance_all() == 0
    status = restarted.get(status_id)
    assert status.state == "Cancelled"
    assert status.note is not None
    assert "max run time" in status.note


def test_a_start_resent_after_its_reply_was_lost_starts_one_discovery(
    operator: Client, queue: EccQueue, tmp_path: Path
) -> None:
    bridge = AsgiBridge(operator.app)
    transport = HttpsQueue(
        "https://instance.test",
        user=OPERATOR[0],
        password=OPERATOR[1],
        client=httpx.Client(transport=bridge, base_url="https://instance.test"),
        sleep=lambda seconds: None,
    )
    (tmp_path / "creds.toml").write_text(CREDENTIALS, encoding="utf-8")
    schedule = load_schedule_text(tmp_path)
    bridge.lose_replies = 1  # the instance starts it, the answer never arrives, the client sends it again
    with InstanceClient(transport) as client:
        started = client.start_discovery(schedule, credentials=tomllib.loads(CREDENTIALS))
        assert [status.sys_id for status in client.list()] == [started.sys_id]
    assert bridge.requests.count("POST /api/midprobe/v1/discoveries") == 2
    assert _outputs(queue, started.sys_id) == ["Shazzam"]
    again = operator.request(
        "POST", PREFIX, json={"schedule": SCHEDULE}, headers={"Idempotency-Key": "bad key!"}
    )
    assert again.status_code == 400


def load_schedule_text(folder: Path) -> Schedule:
    path = folder / "lab.toml"
    path.write_text(
        'name = "small"\nranges = ["198.18.0.8/30"]\ncredentials = "creds.toml"\n', encoding="utf-8"
    )
    return load_schedule(path)

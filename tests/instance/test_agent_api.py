"""A remote agent's queue: ``HttpsQueue`` against the instance's agent endpoints, in process.

The instance is the real app over a real SQLite queue; only the network between them is
replaced (``AsgiBridge``), so a lost reply or a cut link can be made on purpose.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from midprobe.capabilities.errors import ConfigError, QueueError, QueueUrlError
from midprobe.runner.ecc.record import EccRecord
from midprobe.runner.instance.api import create_app
from midprobe.runner.instance.auth import UserStore
from midprobe.runner.instance.wake import WorkSignal
from midprobe.runner.queue.base import AgentNameInUse, AgentRegistration, EccQueue
from midprobe.runner.queue.https import HttpsQueue
from midprobe.runner.queue.spool import ResultSpool
from midprobe.runner.queue.url import open_queue, parse_queue_url
from tests.instance.conftest import ADMIN, MID, AsgiBridge, Client, remote_queue

BASE = "https://instance.test"


@pytest.fixture
def bridge(queue: EccQueue, users: UserStore) -> AsgiBridge:
    return AsgiBridge(create_app(queue, users, signal=WorkSignal(check_seconds=0.05)))


def _remote(bridge: AsgiBridge, tmp_path: Path, auth: tuple[str, str] = MID) -> HttpsQueue:
    return remote_queue(bridge, tmp_path / "spool", auth)


@pytest.fixture
def remote(bridge: AsgiBridge, tmp_path: Path) -> Iterator[HttpsQueue]:
    with _remote(bridge, tmp_path) as opened:
        yield opened


def _answer(output: EccRecord, text: str = "<results/>") -> EccRecord:
    return EccRecord(
        agent=output.agent, topic=output.topic, queue="input", response_to=output.sys_id, payload=text
    )


def test_an_agent_registers_claims_renews_and_answers_over_https(queue: EccQueue, remote: HttpsQueue) -> None:
    outputs = [EccRecord(agent="mid1", topic="Shazzam", queue="output", name=f"198.18.0.{n}") for n in (1, 2)]
    queue.enqueue_many(outputs)
    remote.register_agent(AgentRegistration("mid1", capabilities=(("SSH", "*"),)), instance="p1")
    remote.heartbeat_agent("mid1", instance="p1")
    registered = remote.get_agent("mid1")
    assert registered is not None
    assert registered.capabilities == (("SSH", "*"),)
    assert remote.get_agent("nobody") is None

    claimed = remote.claim("mid1", 10, 60.0, instance="p1")
    assert [record.sys_id for record in claimed] == [output.sys_id for output in outputs]
    assert remote.claim("mid1", 10, 60.0, instance="p1") == []
    assert remote.renew("mid1", [outputs[0].sys_id], 60.0, instance="p1") == [outputs[0].sys_id]
    lease = remote.get_lease(outputs[0].sys_id)
    assert lease is not None
    assert lease == queue.get_lease(outputs[0].sys_id)
    assert [agent.name for agent in remote.list_agents(live_within_seconds=600)] == ["mid.server.mid1"]
    assert remote.release("mid1", [outputs[1].sys_id]) == [outputs[1].sys_id]

    assert remote.complete(outputs[0].sys_id, _answer(outputs[0])) is True
    assert remote.get_lease(outputs[0].sys_id) is None
    stored = queue.get(outputs[0].sys_id)
    assert stored is not None
    assert stored.state == "processed"
    results = list(queue.list(queue_side="input", response_to=outputs[0].sys_id))
    assert [r.payload for r in results] == ["<results/>"]
    # Another result for an answered output is not stored (first one wins).
    assert remote.complete(outputs[0].sys_id, _answer(outputs[0], "<late/>")) is False
    reread = queue.get(outputs[1].sys_id)
    assert reread is not None
    assert reread.state == "ready"

    remote.set_agent_status("mid1", "Down", instance="p1")
    found = queue.get_agent("mid1")
    assert found is not None
    assert found.status == "Down"


def test_a_queue_failure_gives_its_reason_but_not_where_the_queue_lives(
    remote: HttpsQueue, queue_url: str
) -> None:
    with pytest.raises(QueueError) as failed:
        remote.heartbeat_agent("never-registered")
    message = str(failed.value)
    assert message.startswith(f"queue {BASE}: the instance failed: Service Unavailable: the ECC queue")
    assert "never-registered" in message
    assert queue_url.removeprefix("sqlite:///") not in message


def test_a_second_live_process_under_the_same_name_is_refused(remote: HttpsQueue) -> None:
    remote.register_agent(AgentRegistration("mid1"), instance="p1", live_within_seconds=600)
    with pytest.raises(AgentNameInUse):
        remote.register_agent(AgentRegistration("mid1"), instance="p2", live_within_seconds=600)


def test_a_resend_after_a_lost_reply_is_recognised_and_stored_once(
    queue: EccQueue, bridge: AsgiBridge, remote: HttpsQueue, tmp_path: Path
) -> None:
    output = EccRecord(agent="mid1", topic="Shazzam", queue="output")
    queue.enqueue(output)
    bridge.lose_replies = 1  # the instance stores the result; its reply never arrives; the client retries
    assert remote.complete(output.sys_id, _answer(output)) is True
    assert len(queue.list(queue_side="input", response_to=output.sys_id)) == 1
    assert bridge.requests.count(f"POST /api/midprobe/v1/outputs/{output.sys_id}/answer") == 2
    assert ResultSpool(tmp_path / "spool").pending() == []


def test_results_wait_in_the_spool_while_the_instance_is_unreachable(
    queue: EccQueue, bridge: AsgiBridge, remote: HttpsQueue, tmp_path: Path
) -> None:
    outputs = [EccRecord(agent="mid1", topic="Shazzam", queue="output") for _ in range(2)]
    queue.enqueue_many(outputs)
    claimed = remote.claim("mid1", 5, 60.0)
    bridge.cut = True
    for record in claimed:
        with pytest.raises(QueueError, match="cannot reach the instance"):
            remote.complete(record.sys_id, _answer(record))
    spool = ResultSpool(tmp_path / "spool")
    assert [entry[0] for entry in spool.pending()] == [output.sys_id for output in outputs]
    assert queue.list(queue_side="input", topic="Shazzam") == []

    bridge.cut = False
    # The agent restarts (a new queue object on the same spool): its first claim resends the spool.
    with _remote(bridge, tmp_path) as restarted:
        assert restarted.claim("mid1", 5, 60.0) == []
        assert spool.pending() == []
        # Resending again (a reply lost after the spool was sent) stores nothing twice.
        assert restarted.complete(outputs[0].sys_id, _answer(outputs[0], "<other/>")) is False
    for output in outputs:
        assert len(queue.list(queue_side="input", response_to=output.sys_id)) == 1
        done = queue.get(output.sys_id)
        assert done is not None
        assert done.state == "processed"


def test_payloads_stored_aside_and_affinity_are_read_through_the_instance(
    queue_url: str, users: UserStore, tmp_path: Path
) -> None:
    with open_queue(queue_url, payload_cap=64) as small:
        output = EccRecord(agent="mid1", topic="SNMP", queue="output", payload="<x>" + "y" * 100 + "</x>")
        small.enqueue(output)
        bridge = AsgiBridge(create_app(small, users))
        with _remote(bridge, tmp_path) as remote:
            (claimed,) = remote.claim("mid1", 1, 60.0)
            assert claimed.payload_is_attachment
            assert remote.read_payload(claimed) == output.payload
            assert remote.get_affinity("198.18.0.3", "snmp") is None
            remote.set_affinity("198.18.0.3", "snmp", "community-lab")
            found = remote.get_affinity("198.18.0.3", "snmp")
            assert found is not None
            assert found.credential_id == "community-lab"
            assert small.get_affinity("198.18.0.3", "snmp") == found


def test_the_long_poll_wakes_on_work_enqueued_through_the_api_or_the_database(
    queue: EccQueue, bridge: AsgiBridge, remote: HttpsQueue
) -> None:
    assert remote.wait_for_work("mid1", 0.2) is False  # nothing new: the poll ends at its bound

    def enqueue_while_waiting(enqueue: object) -> bool:
        answer: list[bool] = []
        waiter = threading.Thread(target=lambda: answer.append(remote.wait_for_work("mid1", 60)))
        waiter.start()
        assert callable(enqueue)
        enqueue()
        waiter.join(120)
        return answer == [True]

    admin = Client(bridge._transport.app, ADMIN)  # type: ignore[arg-type]
    through_api = {"agent": "mid1", "topic": "Shazzam", "queue": "output"}
    assert enqueue_while_waiting(lambda: admin.post("/api/now/table/ecc_queue", through_api))
    straight = EccRecord(agent="mid.server.*", topic="Shazzam", queue="output")
    assert enqueue_while_waiting(lambda: queue.enqueue(straight))


def test_a_wrong_password_is_one_line_without_the_password(bridge: AsgiBridge, tmp_path: Path) -> None:
    with pytest.raises(QueueError) as refused:
        _remote(bridge, tmp_path, ("mid1", "not-the-password")).claim("mid1", 1, 60.0)
    assert str(refused.value) == (f"queue {BASE}: the instance refused user 'mid1' (wrong name or password)")
    assert "not-the-password" not in str(refused.value)


def test_a_refused_answer_is_a_config_error_and_leaves_the_spool(
    queue: EccQueue, remote: HttpsQueue, tmp_path: Path
) -> None:
    output = EccRecord(agent="mid1", topic="Shazzam", queue="output")
    queue.enqueue(output)
    not_an_input = EccRecord(agent="mid1", topic="Shazzam", queue="output", response_to=output.sys_id)
    with pytest.raises(ConfigError, match="the instance refused the request"):
        remote.complete(output.sys_id, not_an_input)
    assert ResultSpool(tmp_path / "spool").pending() == []


def test_an_answer_to_a_missing_output_is_refused_for_good(remote: HttpsQueue, tmp_path: Path) -> None:
    gone = EccRecord(agent="mid1", topic="Shazzam", queue="output")  # never enqueued
    with pytest.raises(ConfigError, match=f"No Record found: no output {gone.sys_id}"):
        remote.complete(gone.sys_id, _answer(gone))
    assert ResultSpool(tmp_path / "spool").pending() == []


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://mid1:secret@instance.lab:8443", "carries no credentials"),
        ("https://instance.lab:8443/api", "without path"),
        ("https://instance.lab:8443?x=1", "without path"),
        ("https://:8443", "names no host"),
        ("https://instance.lab:99999", "not a valid instance URL"),
    ],
)
def test_a_bad_instance_url_is_one_line(url: str, says: str) -> None:
    with pytest.raises(QueueUrlError, match=says) as raised:
        parse_queue_url(url)
    assert "secret" not in str(raised.value)
    assert "\n" not in str(raised.value)


def test_an_instance_queue_needs_a_user_and_the_password_variable() -> None:
    assert parse_queue_url("https://instance.lab").url == "https://instance.lab:443"  # type: ignore[union-attr]
    with pytest.raises(QueueUrlError, match=r"is for agents: midprobe agent --user NAME"):
        open_queue("https://instance.lab:8443", environ={"MIDPROBE_INSTANCE_PASSWORD": "x"})
    with pytest.raises(QueueUrlError, match="set MIDPROBE_INSTANCE_PASSWORD"):
        open_queue("https://instance.lab:8443", user="mid1", environ={})


def test_a_bad_ca_file_names_the_option(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    for ca, says in ((not_pem, "not a PEM CA certificate"), (tmp_path / "missing.pem", "file not found")):
        with pytest.raises(ConfigError, match=says) as raised:
            open_queue(
                "https://instance.lab:8443",
                user="mid1",
                ca_file=ca,
                environ={"MIDPROBE_INSTANCE_PASSWORD": "x"},
            )
        assert str(raised.value).startswith("--ca: ")

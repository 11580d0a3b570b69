"""The Table API subset as a ServiceNow integration calls it: queries, paging, fields, writes, errors, auth."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from midprobe.runner.ecc.record import EccRecord
from midprobe.runner.instance.auth import UserStore
from midprobe.runner.queue.base import AgentRegistration, EccQueue
from tests.instance.conftest import MID, Client

QUEUE = "/api/now/table/ecc_queue"
AGENTS = "/api/now/table/ecc_agent"
START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _output(agent: str = "mid1", topic: str = "Shazzam", minutes: int = 0, **fields: object) -> EccRecord:
    return EccRecord(
        agent=agent,
        topic=topic,
        queue="output",
        sys_created_on=START + timedelta(minutes=minutes),
        **fields,  # type: ignore[arg-type]
    )


def _fill(queue: EccQueue) -> list[EccRecord]:
    records = [
        _output("mid1", "Shazzam", 0, name="198.18.0.0/24"),
        _output("mid2", "SSHCommand", 1, name="uname -a", priority=1),
        _output("mid1", "SNMP", 2, name="198.18.0.3"),
        _output("mid2", "Shazzam", 3, name="198.18.1.0/24"),
    ]
    queue.enqueue_many(records)
    return records


def _topics(response_json: dict[str, list[dict[str, str]]]) -> list[str]:
    return [row["topic"] for row in response_json["result"]]


def _assert_failure(response: object, status: int, *needles: str) -> dict[str, object]:
    import httpx

    assert isinstance(response, httpx.Response)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "failure"
    assert set(body) == {"error", "status"}
    assert set(body["error"]) == {"message", "detail"}
    text = f"{body['error']['message']} {body['error']['detail']}"
    for needle in needles:
        assert needle in text, text
    return body  # type: ignore[no-any-return]


# -- reading -------------------------------------------------------------------------------------------------


def test_a_listing_has_the_result_envelope_and_string_values(api: Client, queue: EccQueue) -> None:
    records = _fill(queue)
    response = api.get(QUEUE)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    rows = response.json()["result"]
    assert [row["sys_id"] for row in rows] == [record.sys_id for record in records]
    first = rows[0]
    assert first["agent"] == "mid.server.mid1"
    assert first["queue"] == "output"
    assert first["state"] == "ready"
    assert first["priority"] == "2"
    assert first["sys_created_on"] == "2026-03-01 12:00:00"
    assert first["processed"] == ""
    assert first["response_to"] == ""
    assert all(isinstance(value, str) for row in rows for value in row.values())
    assert response.headers["X-Total-Count"] == "4"


@pytest.mark.parametrize(
    ("query", "topics"),
    [
        ("agent=mid.server.mid1", ["Shazzam", "SNMP"]),
        ("agent=mid.server.mid2^topic=Shazzam", ["Shazzam"]),
        ("agent!=mid.server.mid1", ["SSHCommand", "Shazzam"]),
        ("topicINSNMP,SSHCommand", ["SSHCommand", "SNMP"]),
        ("nameSTARTSWITH198.18.", ["Shazzam", "SNMP", "Shazzam"]),
        ("topic=SNMP^ORpriority=1", ["SSHCommand", "SNMP"]),
        ("state=ready^ORDERBYDESCsys_created_on", ["Shazzam", "SNMP", "SSHCommand", "Shazzam"]),
        ("ORDERBYtopic^ORDERBYDESCsys_created_on", ["SNMP", "SSHCommand", "Shazzam", "Shazzam"]),
        ("sys_created_on>=2026-03-01 12:02:00", ["SNMP", "Shazzam"]),
        ("agent=mid1", []),  # the field holds mid.server.mid1: equality is exact
        ("state=processed", []),
        ("queue=input", []),
    ],
)
def test_sysparm_query_filters_and_orders(
    api: Client, queue: EccQueue, query: str, topics: list[str]
) -> None:
    _fill(queue)
    response = api.get(QUEUE, sysparm_query=query)
    assert response.status_code == 200, response.text
    assert _topics(response.json()) == topics


def test_a_query_by_sys_id_finds_that_record(api: Client, queue: EccQueue) -> None:
    records = _fill(queue)
    response = api.get(QUEUE, sysparm_query=f"sys_id={records[2].sys_id}^topic=SNMP")
    assert [row["sys_id"] for row in response.json()["result"]] == [records[2].sys_id]
    assert api.get(QUEUE, sysparm_query=f"sys_id={records[2].sys_id}^topic=DNS").json()["result"] == []


def test_pages_cover_the_listing_once_in_order(api: Client, queue: EccQueue) -> None:
    records = [_output(minutes=i, name=f"n{i:02d}") for i in range(11)]
    queue.enqueue_many(records)
    for query in ("agent=mid.server.mid1", "nameSTARTSWITHn^ORDERBYDESCname"):
        seen: list[str] = []
        for offset in range(0, 12, 4):
            page = api.get(QUEUE, sysparm_query=query, sysparm_limit="4", sysparm_offset=str(offset))
            assert page.status_code == 200
            rows = page.json()["result"]
            assert len(rows) == min(4, 11 - offset)
            seen += [row["name"] for row in rows]
        expected = [f"n{i:02d}" for i in range(11)]
        assert seen == (expected if "DESC" not in query else expected[::-1])
    # The whole listing was counted, so the count comes along.
    last = api.get(QUEUE, sysparm_query="agent=mid.server.mid1", sysparm_limit="4", sysparm_offset="8")
    assert last.headers["X-Total-Count"] == "11"


def test_sysparm_fields_picks_the_fields(api: Client, queue: EccQueue) -> None:
    records = _fill(queue)
    rows = api.get(QUEUE, sysparm_fields="sys_id, topic", sysparm_limit="2").json()["result"]
    assert rows == [{"sys_id": r.sys_id, "topic": r.topic} for r in records[:2]]
    one = api.get(f"{QUEUE}/{records[1].sys_id}", sysparm_fields="name").json()["result"]
    assert one == {"name": "uname -a"}


def test_one_record_by_sys_id_and_a_missing_one(api: Client, queue: EccQueue) -> None:
    records = _fill(queue)
    found = api.get(f"{QUEUE}/{records[1].sys_id}").json()["result"]
    assert found["topic"] == "SSHCommand"
    assert found["priority"] == "1"
    _assert_failure(api.get(f"{QUEUE}/{'0' * 32}"), 404, "No Record found")
    _assert_failure(api.get(f"{QUEUE}/not-a-sys-id"), 404, "No Record found")


def test_the_agent_registry_is_the_ecc_agent_table(api: Client, queue: EccQueue) -> None:
    queue.register_agent(AgentRegistration("east", host="east.lab"))
    queue.register_agent(AgentRegistration("west", status="Paused"))
    queue.update_agent("west", validated=False)
    rows = api.get(AGENTS, sysparm_query="ORDERBYname").json()["result"]
    assert [(r["name"], r["status"], r["validated"], r["host_name"]) for r in rows] == [
        ("east", "Up", "true", "east.lab"),
        ("west", "Paused", "false", ""),
    ]
    assert rows[0]["last_refreshed"] != ""
    paused = api.get(AGENTS, sysparm_query="status=Paused^ORvalidated=false", sysparm_fields="name")
    assert paused.json()["result"] == [{"name": "west"}]
    one = api.get(f"{AGENTS}/{rows[0]['sys_id']}").json()["result"]
    assert one["name"] == "east"
    _assert_failure(api.get(f"{AGENTS}/{'f' * 32}"), 404, "No Record found")
    _assert_failure(api.get(AGENTS, sysparm_query="topic=Shazzam"), 400, "no field 'topic'")
    _assert_failure(api.post(AGENTS, {"name": "x"}), 405, "read-only")


# -- writing -------------------------------------------------------------------------------------------------


def test_an_admin_posts_an_output_that_an_agent_then_claims(api: Client, queue: EccQueue) -> None:
    response = api.post(
        QUEUE,
        {"agent": "mid.server.mid1", "topic": "Shazzam", "queue": "output", "name": "198.18.0.0/24",
         "payload": "<parameters/>", "priority": "0"},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    created = response.json()["result"]
    assert created["state"] == "ready"
    assert created["priority"] == "0"
    assert created["sys_created_on"] != ""
    claimed = queue.claim("mid1", 10, 60)
    assert [record.sys_id for record in claimed] == [created["sys_id"]]
    assert claimed[0].payload == "<parameters/>"


def test_a_mid_answers_an_output_once_and_the_output_is_processed(api: Client, queue: EccQueue) -> None:
    output = _fill(queue)[0]
    mid = api.as_user(MID)
    answer = {"agent": "mid.server.mid1", "topic": "Shazzam", "queue": "input", "response_to": output.sys_id,
              "payload": "<results/>", "source": "198.18.0.0/24"}  # fmt: skip
    first = mid.post(QUEUE, answer)
    assert first.status_code == 201, first.text
    assert first.json()["result"]["response_to"] == output.sys_id
    stored = queue.get(output.sys_id)
    assert stored is not None
    assert stored.state == "processed"
    _assert_failure(mid.post(QUEUE, answer), 409, "already", output.sys_id)
    inputs = queue.list(queue_side="input", response_to=output.sys_id)
    assert [record.sys_id for record in inputs] == [first.json()["result"]["sys_id"]]


def test_a_mid_may_not_write_outputs(api: Client, queue: EccQueue) -> None:
    mid = api.as_user(MID)
    refused = mid.post(QUEUE, {"agent": "mid1", "topic": "Shazzam", "queue": "output"})
    _assert_failure(refused, 403, "ACL Exception Insert Failed")
    assert queue.list() == []


def test_a_patch_moves_a_ready_output_and_puts_a_claimed_one_back(api: Client, queue: EccQueue) -> None:
    records = _fill(queue)
    moved = api.patch(f"{QUEUE}/{records[0].sys_id}", {"agent": "mid.server.mid2"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["result"]["agent"] == "mid.server.mid2"
    claimed = queue.claim("mid2", 10, 600)
    assert records[0].sys_id in [record.sys_id for record in claimed]  # mid2 now gets it
    back = api.patch(f"{QUEUE}/{records[0].sys_id}", {"state": "ready"})
    assert back.status_code == 200, back.text
    assert back.json()["result"]["state"] == "ready"
    assert queue.get_lease(records[0].sys_id) is None
    # Setting a field to the value it has changes nothing and is allowed.
    same = api.patch(f"{QUEUE}/{records[1].sys_id}", {"topic": "SSHCommand", "state": "ready"})
    assert same.status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"topic": "DNS"}, 400, "topic cannot be changed"),
        ({"agent": "mid.server.mid2", "state": "processing"}, 400, "one per request"),
        ({"state": "processed"}, 409, "processing output back to ready"),
        ({"agent": "not a name"}, 400, "not an agent name"),
        ({"colour": "red"}, 400, "no field colour"),
        ({"agent": 7}, 400, "must be a string"),
    ],
)
def test_a_refused_patch_changes_nothing(
    api: Client, queue: EccQueue, body: dict[str, object], status: int, says: str
) -> None:
    record = _fill(queue)[0]
    _assert_failure(api.patch(f"{QUEUE}/{record.sys_id}", body), status, says)
    assert queue.get(record.sys_id) == record


def test_only_an_admin_patches(api: Client, queue: EccQueue) -> None:
    record = _fill(queue)[0]
    _assert_failure(
        api.as_user(MID).patch(f"{QUEUE}/{record.sys_id}", {"agent": "mid2"}),
        403,
        "ACL Exception Update Failed",
    )
    assert queue.get(record.sys_id) == record
    _assert_failure(api.patch(f"{QUEUE}/{'0' * 32}", {"agent": "mid2"}), 404, "No Record found")


# -- bad requests: a clear 4xx, the error body, nothing written ----------------------------------------------

GOOD = {"agent": "mid1", "topic": "Shazzam", "queue": "output"}


@pytest.mark.parametrize(
    ("content", "headers", "status", "says"),
    [
        (b'{"agent": "mid1", "topic": ', {}, 400, "not valid JSON"),
        (b"\xff\xfe{}", {}, 400, "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, {}, 413, "over 65536 bytes"),
        (b"[" * 30_000 + b"]" * 30_000, {}, 400, "not valid JSON"),
        (b'["a list"]', {}, 400, "one JSON object"),
        (b'{"agent": "mid1", "topic": "x", "queue": "output", "colour": "red"}', {}, 400, "no field colour"),
        (json.dumps({**GOOD, "sys_created_on": "2026-01-01 00:00:00"}).encode(), {}, 400, "set by the queue"),
        (json.dumps({**GOOD, "processed": ""}).encode(), {}, 400, "processed is set by the queue"),
        (json.dumps({"agent": "mid1", "topic": "x"}).encode(), {}, 400, "needs queue"),
        (json.dumps({**GOOD, "queue": "sideways"}).encode(), {}, 400, "not a queue"),
        (json.dumps({**GOOD, "state": "processed"}).encode(), {}, 400, "a new record is ready"),
        (json.dumps({**GOOD, "priority": "7"}).encode(), {}, 400, "priority must be 0, 1 or 2"),
        (json.dumps({**GOOD, "priority": True}).encode(), {}, 400, "priority must be 0, 1 or 2"),
        (json.dumps({**GOOD, "name": None}).encode(), {}, 400, "name must be a string"),
        (json.dumps({**GOOD, "name": "a\x1b[31mb"}).encode(), {}, 400, "U+001B"),
        (b'{"agent": "mid1", "topic": "x", "queue": "output", "name": "\\ud800"}', {}, 400, "surrogate"),
        (json.dumps({**GOOD, "agent": "a b"}).encode(), {}, 400, "not an agent name"),
        (json.dumps({**GOOD, "sys_id": "XYZ"}).encode(), {}, 400, "not a sys_id"),
        (json.dumps({**GOOD, "topic": "queue.processing"}).encode(), {}, 400, "written by the queue"),
        (json.dumps({**GOOD, "response_to": "0" * 32}).encode(), {}, 400, "only an input answers"),
        (json.dumps({**GOOD, "queue": "input", "response_to": "0" * 32}).encode(), {}, 400, "no output"),
        (json.dumps(GOOD).encode(), {"content-type": "text/plain"}, 415, "application/json"),
        (json.dumps({**GOOD, "payload": "x" * 70_000}).encode(), {}, 413, "Request entity too large"),
    ],
)
def test_a_bad_body_is_refused_and_nothing_is_written(
    api: Client, queue: EccQueue, content: bytes, headers: dict[str, str], status: int, says: str
) -> None:
    response = api.request(
        "POST", QUEUE, content=content, headers={"content-type": "application/json", **headers}
    )
    _assert_failure(response, status, says)
    assert queue.list() == []


def test_a_streamed_body_over_the_limit_is_refused_without_a_length(api: Client, queue: EccQueue) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"agent": "mid1", "topic": "Shazzam", "queue": "output", "payload": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}'

    response = api.request("POST", QUEUE, content=chunks(), headers={"content-type": "application/json"})
    _assert_failure(response, 413, "Request entity too large")
    assert queue.list() == []


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"sysparm_query": "colour=red"}, "no field 'colour'"),
        ({"sysparm_query": "state~ready"}, "unknown operator"),
        ({"sysparm_query": "^ORstate=ready"}, "empty term"),
        ({"sysparm_query": "priority=high"}, "whole numbers"),
        ({"sysparm_limit": "0"}, "sysparm_limit"),
        ({"sysparm_limit": "ten"}, "sysparm_limit"),
        ({"sysparm_limit": "10001"}, "sysparm_limit"),
        ({"sysparm_offset": "-1"}, "sysparm_offset"),
        ({"sysparm_offset": "nan"}, "sysparm_offset"),
        ({"sysparm_fields": "sys_id,colour"}, "no field colour"),
        ({"sysparm_colour": "red"}, "no parameter 'sysparm_colour'"),
        ({"sysparm_display_value": "true"}, "only false"),
        ({"sysparm_no_count": "maybe"}, "true or false"),
    ],
)
def test_bad_parameters_are_a_400_naming_them(
    api: Client, queue: EccQueue, params: dict[str, str], says: str
) -> None:
    _fill(queue)
    _assert_failure(api.get(QUEUE, **params), 400, says)


def test_a_parameter_given_twice_is_refused(api: Client) -> None:
    response = api.request("GET", QUEUE, params=[("sysparm_limit", "1"), ("sysparm_limit", "2")])
    _assert_failure(response, 400, "more than once")


def test_unknown_tables_routes_and_methods(api: Client) -> None:
    _assert_failure(api.get("/api/now/table/incident"), 400, "Invalid table incident")
    _assert_failure(api.get("/api/now/v2/nothing"), 400, "does not represent any resource")
    _assert_failure(api.request("DELETE", f"{QUEUE}/{'0' * 32}"), 405, "Method not Supported")


def test_a_listing_that_would_read_past_the_scan_cap_says_how_to_narrow_it(
    api: Client, queue: EccQueue
) -> None:
    queue.enqueue_many([_output(minutes=i) for i in range(51)])  # the test app reads at most 50
    _assert_failure(api.get(QUEUE, sysparm_query="nameISEMPTY"), 400, "Query too broad", "state=")
    _assert_failure(api.get(QUEUE, sysparm_offset="45", sysparm_limit="10"), 400, "Query too broad")
    # A query the queue answers itself pages without reading everything.
    page = api.get(QUEUE, sysparm_query="agent=mid.server.mid1", sysparm_limit="5", sysparm_offset="40")
    assert len(page.json()["result"]) == 5
    assert "X-Total-Count" not in page.headers  # not counted: the queue read only 46 records


def test_an_unreachable_queue_is_a_503_not_a_500(api: Client, queue: EccQueue) -> None:
    queue.close()
    _assert_failure(api.get(QUEUE), 503, "not reachable")
    _assert_failure(api.post(QUEUE, GOOD), 503, "not reachable")


# -- authentication ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "auth",
    [None, ("admin", "wrong"), ("nobody", "admin secret: ok"), ("admin", ""), ("", "")],
)
def test_every_route_needs_a_known_user_and_password(
    api: Client, queue: EccQueue, auth: tuple[str, str] | None
) -> None:
    record = _fill(queue)[0]
    client = api.as_user(auth)
    for response in (
        client.get(QUEUE),
        client.get(f"{QUEUE}/{record.sys_id}"),
        client.get(AGENTS),
        client.post(QUEUE, GOOD),
        client.patch(f"{QUEUE}/{record.sys_id}", {"agent": "mid2"}),
        client.get("/api/now/table/incident"),
    ):
        _assert_failure(response, 401, "User Not Authenticated")
        assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert queue.get(record.sys_id) == record
    assert len(queue.list()) == 4


@pytest.mark.parametrize("header", ["Bearer abc", "Basic", "Basic !!!", "Basic YWRtaW4=", "Basic /w=="])
def test_a_malformed_authorization_header_is_a_401(api: Client, header: str) -> None:
    response = api.as_user(None).request("GET", QUEUE, headers={"Authorization": header})
    _assert_failure(response, 401, "User Not Authenticated")


def test_a_new_password_replaces_the_old_one(api: Client, users: UserStore) -> None:
    users.add("mid1", "a new password", roles=("mid_server",))
    _assert_failure(api.as_user(MID).get(QUEUE), 401, "User Not Authenticated")
    assert api.as_user(("mid1", "a new password")).get(QUEUE).status_code == 200

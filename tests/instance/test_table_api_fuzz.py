"""Whatever a client sends, the Table API answers with a status it documents, never a 500, and a refusal writes nothing."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from midprobe.runner.ecc.record import ECC_FIELDS, EccRecord
from midprobe.runner.queue.base import EccQueue
from tests.instance.conftest import MID, Client

QUEUE = "/api/now/table/ecc_queue"
DOCUMENTED = {200, 201, 400, 401, 403, 404, 405, 409, 413, 415}

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=5,
)
_field_values = st.one_of(
    st.sampled_from(["mid1", "mid.server.mid1", "*", "output", "input", "ready", "processed", "0", "2", "7"]),
    st.text(max_size=12),
    _json_values,
)
_bodies = st.dictionaries(
    st.sampled_from([*ECC_FIELDS, "colour", ""]) | st.text(max_size=6), _field_values, max_size=6
)
_query_pieces = st.sampled_from(
    ["agent", "state", "topic", "priority", "sys_created_on", "=", "!=", "IN", "STARTSWITH", "ISEMPTY",
     "<", "^", "^OR", "^NQ", "ORDERBY", "ORDERBYDESC", "^^", "ready", "mid.server.mid1", "2", ",", "x", ""]
)  # fmt: skip
_settings = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_settings
@given(body=_bodies, as_mid=st.booleans())
def test_any_post_body_is_stored_whole_or_refused_with_nothing_written(
    api: Client, queue: EccQueue, body: dict[str, object], as_mid: bool
) -> None:
    before = queue.list()
    client = api.as_user(MID) if as_mid else api
    # Python's json writes NaN and Infinity, which a sloppy client sends too.
    response = client.request(
        "POST", QUEUE, content=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    assert response.status_code in DOCUMENTED, response.text
    if response.status_code == 201:
        created = response.json()["result"]
        stored = queue.get(created["sys_id"])
        assert stored is not None
        assert created["topic"] == body["topic"]
        assert len(queue.list()) == len(before) + 1
    else:
        assert response.json()["status"] == "failure"
        assert queue.list() == before


@_settings
@given(pieces=st.lists(_query_pieces, max_size=12), limit=st.text(max_size=4), offset=st.text(max_size=4))
def test_any_query_is_answered_or_refused_never_a_500(
    api: Client, queue: EccQueue, pieces: list[str], limit: str, offset: str
) -> None:
    if not queue.list():
        queue.enqueue(EccRecord(agent="mid1", topic="Shazzam", queue="output"))
    params = {"sysparm_query": "".join(pieces)}
    if limit:
        params["sysparm_limit"] = limit
    if offset:
        params["sysparm_offset"] = offset
    response = api.get(QUEUE, **params)
    assert response.status_code in (200, 400), response.text
    body = response.json()
    assert ("result" in body) == (response.status_code == 200)


@_settings
@given(body=_bodies)
def test_any_patch_changes_the_record_whole_or_not_at_all(
    api: Client, queue: EccQueue, body: dict[str, object]
) -> None:
    record = queue.list()[0] if queue.list() else None
    if record is None:
        record = EccRecord(agent="mid1", topic="Shazzam", queue="output")
        queue.enqueue(record)
    before = queue.get(record.sys_id)
    response = api.request("PATCH", f"{QUEUE}/{record.sys_id}", content=json.dumps(body).encode(),
                           headers={"content-type": "application/json"})  # fmt: skip
    assert response.status_code in DOCUMENTED, response.text
    if response.status_code != 200:
        assert queue.get(record.sys_id) == before

"""The agent's result spool on disk, and the JSON shapes the https queue and the instance exchange."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from midprobe.capabilities.errors import ConfigError
from midprobe.runner.ecc.record import EccRecord
from midprobe.runner.queue.base import AgentRegistration, CredentialAffinity
from midprobe.runner.queue.spool import ResultSpool
from midprobe.runner.queue.wire import (
    affinity_from_json,
    affinity_to_json,
    record_from_json,
    record_to_json,
    registration_from_json,
    registration_to_json,
)

OUTPUT = EccRecord(agent="mid1", topic="Shazzam", queue="output")


def _result(text: str) -> EccRecord:
    return EccRecord(agent="mid1", topic="Shazzam", queue="input", response_to=OUTPUT.sys_id, payload=text)


def test_the_spool_keeps_results_across_processes_until_removed(tmp_path: Path) -> None:
    first, second = _result("<a/>"), _result("<b/>")  # made in this order: oldest first
    writer = ResultSpool(tmp_path / "spool")
    writer.put(OUTPUT.sys_id, second)
    writer.put(OUTPUT.sys_id, first)
    reader = ResultSpool(tmp_path / "spool")  # the next run of the agent
    assert reader.pending() == [(OUTPUT.sys_id, first), (OUTPUT.sys_id, second)]
    reader.remove(first.sys_id)
    reader.remove(first.sys_id)  # removing twice is harmless
    assert ResultSpool(tmp_path / "spool").pending() == [(OUTPUT.sys_id, second)]
    assert not list((tmp_path / "spool").glob("*.tmp"))


def test_a_batch_is_one_file_kept_until_its_last_result_is_confirmed(tmp_path: Path) -> None:
    results = [_result(f"<r{n}/>") for n in range(3)]
    writer = ResultSpool(tmp_path / "spool")
    writer.put_many([(OUTPUT.sys_id, result) for result in results])
    assert len(list((tmp_path / "spool").iterdir())) == 1
    writer.remove(results[0].sys_id)
    writer.remove(results[1].sys_id)
    # The agent stops here: the next run resends only what the file holds (all three: the
    # instance recognises the two confirmed ones by their idempotency keys).
    reader = ResultSpool(tmp_path / "spool")
    assert [result for _, result in reader.pending()] == results
    for result in results:
        reader.remove(result.sys_id)
    assert list((tmp_path / "spool").iterdir()) == []


def test_a_damaged_spool_file_is_set_aside_and_the_others_still_read(tmp_path: Path) -> None:
    spool = ResultSpool(tmp_path)
    kept = _result("<kept/>")
    spool.put(OUTPUT.sys_id, kept)
    damaged = tmp_path / f"{_result('x').sys_id}.json"
    damaged.write_text('{"output": "not json')
    assert spool.pending() == [(OUTPUT.sys_id, kept)]
    assert damaged.with_suffix(".damaged").exists()


def test_a_spool_folder_that_cannot_be_made_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="spool_dir: cannot create the result spool"):
        ResultSpool(blocker / "spool")


texts = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)


@given(
    name=st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    applications=st.lists(texts, max_size=3),
    capabilities=st.lists(st.tuples(texts, texts), max_size=3),
    pid=st.integers(0, 2**31),
)
def test_registrations_round_trip(
    name: str, applications: list[str], capabilities: list[tuple[str, str]], pid: int
) -> None:
    registration = AgentRegistration(
        name,
        applications=tuple(applications),
        capabilities=tuple(capabilities),
        pid=pid,
        started_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    assert registration_from_json(registration_to_json(registration)) == registration


def test_records_and_affinities_round_trip() -> None:
    result = _result("<r/>")
    assert record_from_json(record_to_json(result)) == result
    found = CredentialAffinity("198.18.0.3", "snmp", "lab", datetime(2026, 1, 1, tzinfo=UTC))
    assert affinity_from_json(affinity_to_json(found)) == found


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ([], "must be a JSON object"),
        ({"name": "mid1", "pid": True}, "pid: must be an integer"),
        ({"name": "mid1", "capabilities": [["SSH"]]}, "capabilities: must be a list of"),
        ({"name": "mid1", "applications": "ALL"}, "applications: must be a list of strings"),
        ({"name": "mid1", "started_at": "yesterday"}, "started_at: 'yesterday' is not an ISO 8601 time"),
    ],
)
def test_a_bad_registration_names_the_field(raw: object, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        registration_from_json(raw)

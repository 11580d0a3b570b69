"""The ECC record: field validation, agent names, sys_ids and sequences."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest

from midprobe.capabilities.errors import ConfigError
from midprobe.runner.ecc.record import (
    ALL_AGENTS,
    ECC_FIELDS,
    EccRecord,
    agent_short_name,
    is_sys_id,
    new_sequence,
    new_sys_id,
    normalize_agent_name,
)


def _output(**changes: object) -> EccRecord:
    values: dict[str, object] = {"agent": "lab1", "topic": "Shazzam", "queue": "output"}
    values.update(changes)
    return EccRecord(**values)  # type: ignore[arg-type]


def test_sys_ids_are_32_lowercase_hex_and_unique() -> None:
    ids = {new_sys_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(is_sys_id(value) and len(value) == 32 for value in ids)
    assert not is_sys_id("ABCDEF0123456789abcdef0123456789")
    assert not is_sys_id("abc")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("lab1", "mid.server.lab1"),
        ("mid.server.lab1", "mid.server.lab1"),
        ("  lab-2_x.y ", "mid.server.lab-2_x.y"),
        ("*", ALL_AGENTS),
        ("mid.server.*", ALL_AGENTS),
    ],
)
def test_agent_names_are_normalised(given: str, expected: str) -> None:
    assert normalize_agent_name(given) == expected
    assert _output(agent=given).agent == expected


@pytest.mark.parametrize(
    "bad", ["", "mid.server.", "has space", "-lead", "a/b", "a" * 101, "semi;colon", "é"]
)
def test_bad_agent_names_raise_config_error_naming_the_field(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"^agent: ") as caught:
        normalize_agent_name(bad)
    assert "\n" not in str(caught.value)


def test_agent_short_name() -> None:
    assert agent_short_name("mid.server.lab1") == "lab1"
    assert agent_short_name("lab1") == "lab1"


def test_sequences_are_hex_ms_plus_counter_and_strictly_increase_across_threads() -> None:
    before_ms = int(datetime.now(UTC).timestamp() * 1000)
    values: list[str] = []
    lock = threading.Lock()

    def take() -> None:
        mine = [new_sequence() for _ in range(2000)]
        with lock:
            values.extend(mine)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(values)) == len(values) == 8000
    assert all(len(value) == 18 and int(value, 16) >= 0 for value in values)
    first_ms = int(min(values)[:12], 16)
    assert before_ms - 5 <= first_ms <= before_ms + 60_000
    in_order = [new_sequence() for _ in range(500)]
    assert in_order == sorted(in_order)


def test_defaults_of_a_new_record() -> None:
    record = _output()
    assert record.state == "ready"
    assert record.priority == 2
    assert record.response_to is None
    assert record.processed is None
    assert is_sys_id(record.sys_id)
    assert record.sys_created_on.tzinfo is UTC
    assert record.is_output
    assert not record.is_input


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"sys_id": "XYZ"}, "sys_id"),
        ({"response_to": "not-an-id"}, "response_to"),
        ({"topic": "  "}, "topic"),
        ({"queue": "sideways"}, "queue"),
        ({"state": "done"}, "state"),
        ({"priority": 3}, "priority"),
        ({"priority": True}, "priority"),
        ({"sequence": "XYZ"}, "sequence"),
        ({"sys_created_on": datetime(2024, 1, 1)}, "sys_created_on"),
        ({"processed": "yesterday"}, "processed"),
        ({"name": 5}, "name"),
    ],
)
def test_bad_fields_raise_config_error_naming_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{field}: "):
        _output(**changes)


def test_records_are_frozen_and_times_become_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    record = _output(sys_created_on=datetime(2024, 5, 1, 12, 0, tzinfo=plus_two))
    assert record.sys_created_on == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert record.sys_created_on.tzinfo is UTC
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.state = "processed"  # type: ignore[misc]
    changed = record.with_changes(state="processing")
    assert changed.state == "processing"
    assert record.state == "ready"
    with pytest.raises(ConfigError, match=r"^state: "):
        record.with_changes(state="nope")


def test_as_dict_is_keyed_by_ecc_field_names_and_round_trips() -> None:
    record = _output(
        response_to=new_sys_id(),
        processed=datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC),
        agent_correlator="job-7",
        error_string="boom",
    )
    data = record.as_dict()
    assert tuple(data) == ECC_FIELDS
    assert {field.name for field in dataclasses.fields(EccRecord)} == set(ECC_FIELDS)
    assert data["processed"] == "2024-05-01T10:00:00.123456+00:00"
    assert EccRecord.from_dict(dict(data)) == record
    with pytest.raises(ConfigError, match=r"not an ECC record"):
        EccRecord.from_dict({"agent": "lab1"})
    with pytest.raises(ConfigError, match=r"^sys_created_on: "):
        EccRecord.from_dict({**data, "sys_created_on": "tuesday"})

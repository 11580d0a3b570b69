"""Claiming goes on past damaged rows, leases ignore wall-clock steps, one live process per agent name,
and PostgreSQL stamps times from the database clock. Every test runs on SQLite and real PostgreSQL."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from midprobe.capabilities.errors import ConfigError
from midprobe.runner.agent.daemon import AgentTimings
from midprobe.runner.ecc.builders import new_input_record, new_output_record
from midprobe.runner.ecc.record import EccRecord, utc_now
from midprobe.runner.queue import EccQueue, open_queue, sqlbase, sqlite
from midprobe.runner.queue.base import AgentNameInUse, AgentRegistration
from midprobe.runner.queue.lifecycle import SETTING_AUTO_VALIDATE
from midprobe.runner.queue.schema import SCHEMA_VERSION
from midprobe.runner.queue.sqlbase import DAMAGED_PREFIX
from midprobe.runner.queue.sqlite import SqliteQueue
from tests.support.trust import trust_every_agent

#: The agents' key pairs go to a temporary folder, not the working one.
AGENT_STATE = Path(tempfile.gettempdir()) / "midprobe-test-state" / "reliability"
AGENT_CLI = [
    *(sys.executable, "-m", "midprobe.runner", "agent", "--once", "--poll-busy", "0.05"),
    *("--state", str(AGENT_STATE)),
]


@pytest.fixture
def queue(queue_url: str) -> Iterator[EccQueue]:
    with open_queue(queue_url) as opened:
        yield opened


def _raw(queue_url: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Run ``sql`` on the queue's database behind its back (``?`` placeholders), as damage would."""
    if queue_url.startswith("sqlite"):
        with sqlite3.connect(queue_url.removeprefix("sqlite:///")) as connection:
            connection.text_factory = bytes
            return list(connection.execute(sql, params).fetchall())
    with psycopg.connect(queue_url, autocommit=True) as connection:
        cursor = connection.execute(sql.replace("?", "%s"), params)
        return list(cursor.fetchall()) if cursor.description else []


def _state_and_error(queue_url: str, sys_id: str) -> tuple[str, str]:
    ((state, error),) = _raw(
        queue_url, "SELECT state, error_string FROM ecc_queue WHERE sys_id = ?", (sys_id,)
    )
    as_text = [value.decode() if isinstance(value, bytes) else str(value) for value in (state, error)]
    return as_text[0], as_text[1]


def _outputs(count: int, agent: str = "lab1") -> list[EccRecord]:
    return [new_output_record(agent=agent, topic="HeartbeatProbe") for _ in range(count)]


# -- a damaged row is set aside, the rest is claimed ---------------------------------------------


def test_a_row_failing_validation_is_set_aside_and_the_rest_claimed(queue: EccQueue, queue_url: str) -> None:
    bad, *good = _outputs(3)
    queue.enqueue_many([bad, *good])
    # A sequence that is not hex sorts first ("!" < "0"): it is the first row every claim reads.
    _raw(queue_url, "UPDATE ecc_queue SET sequence = '!broken' WHERE sys_id = ?", (bad.sys_id,))

    claimed = queue.claim("lab1", 10, 60.0)

    assert [record.sys_id for record in claimed] == [record.sys_id for record in good]
    state, error = _state_and_error(queue_url, bad.sys_id)
    assert state == "error"
    assert error.startswith(DAMAGED_PREFIX)
    assert "sequence" in error
    assert queue.claim("lab2", 10, 60.0) == []  # set aside for good: not offered again


def test_a_damaged_batch_does_not_cut_the_claim_short(queue: EccQueue, queue_url: str) -> None:
    records = _outputs(6)
    queue.enqueue_many(records)
    for record in records[:3]:
        _raw(queue_url, "UPDATE ecc_queue SET sequence = '!broken' WHERE sys_id = ?", (record.sys_id,))

    claimed = queue.claim("lab1", 3, 60.0)

    assert sorted(record.sys_id for record in claimed) == sorted(record.sys_id for record in records[3:])


def test_sqlite_text_that_is_not_utf8_is_set_aside(tmp_path: Path) -> None:
    url = trust_every_agent(f"sqlite:///{tmp_path / 'ecc.db'}")
    bad, good = _outputs(2)
    with open_queue(url) as queue:
        queue.enqueue_many([bad, good])
        _raw(url, "UPDATE ecc_queue SET payload = CAST(x'ff3c613e' AS TEXT) WHERE sys_id = ?", (bad.sys_id,))

        assert [record.sys_id for record in queue.claim("lab1", 10, 60.0)] == [good.sys_id]

    state, error = _state_and_error(url, bad.sys_id)
    assert state == "error"
    assert error.startswith(DAMAGED_PREFIX)
    assert "UTF-8" in error


@pytest.mark.parametrize(
    "stored",
    ["2026-12-02T15:00:00.123456", "2026-12-02 15:00:00.12345Z", "2026-12-02 15:00:00", "yesterday"],
)
def test_sqlite_a_time_not_in_the_stored_shape_is_set_aside(tmp_path: Path, stored: str) -> None:
    url = trust_every_agent(f"sqlite:///{tmp_path / 'ecc.db'}")
    bad, good = _outputs(2)
    with open_queue(url) as queue:
        queue.enqueue_many([bad, good])
        _raw(url, "UPDATE ecc_queue SET sys_created_on = ? WHERE sys_id = ?", (stored, bad.sys_id))

        assert [record.sys_id for record in queue.claim("lab1", 10, 60.0)] == [good.sys_id]

    state, error = _state_and_error(url, bad.sys_id)
    assert state == "error"
    assert f"stored time {stored!r} is not in" in error


@pytest.mark.timeout(120)
def test_agent_once_exits_and_answers_the_rest_despite_a_damaged_row(queue: EccQueue, queue_url: str) -> None:
    bad, *good = _outputs(3)
    queue.enqueue_many([bad, *good])
    _raw(queue_url, "UPDATE ecc_queue SET sequence = '!broken' WHERE sys_id = ?", (bad.sys_id,))

    done = subprocess.run(
        [*AGENT_CLI, "--queue", queue_url, "--name", "lab1", "--log-level", "error"],
        capture_output=True,
        timeout=90,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    for record in good:
        assert len(queue.list(queue_side="input", response_to=record.sys_id, topic="HeartbeatProbe")) == 1
    assert _state_and_error(queue_url, bad.sys_id)[0] == "error"


# -- leases: no wall clock, never re-taken by the process that holds them --------------------------


def test_a_wall_clock_step_does_not_expire_a_lease(queue: EccQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    (output,) = _outputs(1)
    queue.enqueue(output)
    assert len(queue.claim("lab1", 5, 60.0)) == 1

    stepped = utc_now() + timedelta(hours=2)  # ntpd, a VM resume, an operator: the wall clock jumps
    monkeypatch.setattr(sqlite, "utc_now", lambda: stepped)

    assert queue.claim("lab2", 5, 60.0) == []
    lease = queue.get_lease(output.sys_id)
    assert lease is not None
    assert lease.owner == "mid.server.lab1"


class FakeMonotonic:
    """A lease clock the test moves by hand."""

    def __init__(self) -> None:
        self.epoch = "boot-1"
        self.seconds = 1000.0

    def __call__(self) -> tuple[str, float]:
        return self.epoch, self.seconds


def test_sqlite_leases_run_on_the_monotonic_clock_and_a_reboot_expires_them(tmp_path: Path) -> None:
    clock = FakeMonotonic()
    first, second = _outputs(2)
    with SqliteQueue(tmp_path / "ecc.db", lease_clock=clock) as queue:
        queue.set_setting(SETTING_AUTO_VALIDATE, "true")
        queue.enqueue_many([first, second])
        queue.claim("lab1", 1, 30.0)
        clock.seconds += 29.0
        assert queue.claim("lab1", 1, 30.0, priorities=(2,)) != []  # only the free one
        clock.seconds += 0.5
        assert queue.claim("lab1", 5, 30.0) == []  # the first lease has 0.5 s left
        clock.seconds += 1.0
        assert [record.sys_id for record in queue.claim("lab1", 5, 30.0)] == [first.sys_id]
        clock.epoch = "boot-2"  # the machine rebooted: no process from before can hold a lease
        assert sorted(record.sys_id for record in queue.claim("lab1", 5, 30.0)) == sorted(
            [first.sys_id, second.sys_id]
        )


def test_a_process_never_reclaims_work_it_holds_even_once_expired(tmp_path: Path) -> None:
    clock = FakeMonotonic()
    (output,) = _outputs(1, agent="lab1")
    with SqliteQueue(tmp_path / "ecc.db", lease_clock=clock) as queue:
        queue.set_setting(SETTING_AUTO_VALIDATE, "true")
        queue.enqueue(output)
        assert len(queue.claim("lab1", 5, 30.0, instance="process-a")) == 1
        clock.seconds += 300.0  # renewals failed: the lease ran out while process-a still runs it
        assert queue.claim("lab1", 5, 30.0, instance="process-a") == []
        assert queue.claim("lab1", 5, 30.0, instance="process-a", include_own_processing=True) == []
        # Another process of that name (a restart) may take it.
        assert len(queue.claim("lab1", 5, 30.0, instance="process-b")) == 1
        assert queue.renew("lab1", [output.sys_id], 30.0, instance="process-a") == []
        assert queue.renew("lab1", [output.sys_id], 30.0, instance="process-b") == [output.sys_id]


def test_a_restart_takes_back_its_name_s_work_but_not_its_own(queue: EccQueue) -> None:
    records = _outputs(2, agent="lab1")
    queue.enqueue_many(records)
    queue.claim("lab1", 5, 300.0, instance="old")
    assert queue.claim("lab1", 5, 300.0, instance="old", include_own_processing=True) == []
    again = queue.claim("lab1", 5, 300.0, instance="new", include_own_processing=True)
    assert sorted(record.sys_id for record in again) == sorted(record.sys_id for record in records)
    lease = queue.get_lease(records[0].sys_id)
    assert lease is not None
    assert lease.owner == "mid.server.lab1"


@pytest.mark.parametrize("lease", [0.01, 0.05])
def test_a_lease_not_longer_than_its_renewal_interval_is_refused(lease: float) -> None:
    with pytest.raises(ConfigError, match=r"^lease_seconds: .*renewal interval") as caught:
        AgentTimings(lease_seconds=lease)
    assert "\n" not in str(caught.value)


def test_cli_refuses_a_too_short_lease_in_one_line(queue_url: str) -> None:
    done = subprocess.run(
        [*AGENT_CLI, "--queue", queue_url, "--name", "lab1", "--lease", "0.01"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # A lease shorter than one second is below the option's range (the renewal interval's floor):
    # click's usage error names the option, exit 2, no traceback.
    assert done.returncode == 2
    assert "Invalid value for '--lease'" in done.stderr
    assert "Traceback" not in done.stderr


# -- one live process per agent name --------------------------------------------------------------


def _age_heartbeat(queue_url: str, name: str, hours: int) -> None:
    if queue_url.startswith("sqlite"):
        old = (utc_now() - timedelta(hours=hours)).strftime(sqlite.TIMESTAMP_FORMAT)
        _raw(queue_url, "UPDATE ecc_agent SET last_heartbeat = ? WHERE name = ?", (old, name))
    else:
        _raw(
            queue_url,
            "UPDATE ecc_agent SET last_heartbeat = now() - make_interval(hours => ?) WHERE name = ?",
            (hours, name),
        )


def test_a_name_held_by_a_live_process_is_refused_to_another(queue: EccQueue, queue_url: str) -> None:
    registration = AgentRegistration("dup", host="h1", pid=41)
    queue.register_agent(registration, instance="first", live_within_seconds=120.0)
    queue.register_agent(registration, instance="first", live_within_seconds=120.0)  # itself: fine

    with pytest.raises(AgentNameInUse, match=r"agent name dup is in use by a live agent \(host h1, pid 41"):
        queue.register_agent(AgentRegistration("dup"), instance="second", live_within_seconds=120.0)

    _age_heartbeat(queue_url, "mid.server.dup", hours=1)  # the first one crashed long ago
    queue.register_agent(AgentRegistration("dup", pid=42), instance="second", live_within_seconds=120.0)
    agent = queue.get_agent("dup")
    assert agent is not None
    assert agent.pid == 42


def test_a_stopped_agent_s_name_is_free_at_once(queue: EccQueue) -> None:
    queue.register_agent(AgentRegistration("dup"), instance="first", live_within_seconds=120.0)
    queue.set_agent_status("dup", "Down")
    queue.register_agent(AgentRegistration("dup"), instance="second", live_within_seconds=120.0)


@pytest.mark.timeout(120)
def test_cli_second_live_agent_with_a_name_exits_2_and_a_restart_after_a_crash_reruns_the_work(
    queue: EccQueue, queue_url: str
) -> None:
    (held,) = _outputs(1, agent="dup")
    queue.enqueue(held)
    # A live "dup" process: registered with its own instance token, running `held`.
    queue.register_agent(
        AgentRegistration("dup", host="elsewhere", pid=7), instance="live-one", live_within_seconds=120.0
    )
    assert len(queue.claim("dup", 5, 300.0, instance="live-one")) == 1
    argv = [*AGENT_CLI, "--queue", queue_url, "--name", "dup", "--log-level", "error"]

    refused = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)

    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1
    assert "agent name dup is in use" in refused.stderr
    assert queue.list(queue_side="input", response_to=held.sys_id, topic="HeartbeatProbe") == []

    _age_heartbeat(queue_url, "mid.server.dup", hours=1)  # now it has crashed: a restart takes over
    restarted = subprocess.run(argv, capture_output=True, text=True, timeout=90, check=False)

    assert restarted.returncode == 0, restarted.stderr
    assert len(queue.list(queue_side="input", response_to=held.sys_id, topic="HeartbeatProbe")) == 1


# -- timestamps from the database clock, not the agent's -------------------------------------------


def test_processed_and_claim_times_come_from_the_queue_clock_not_the_agent_s(
    queue: EccQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    (output,) = _outputs(1)
    queue.enqueue(output)
    skewed = utc_now() + timedelta(hours=3)  # this agent's clock is three hours fast
    monkeypatch.setattr(sqlbase, "utc_now", lambda: skewed, raising=False)
    before = utc_now()

    queue.claim("lab1", 1, 60.0)
    queue.complete(output.sys_id, new_input_record(output, agent="lab1", results=[], probe_time_ms=5))

    after = utc_now()
    done = queue.get(output.sys_id)
    (claim,) = queue.list(queue_side="input", topic="queue.processing")
    assert done is not None
    assert done.processed is not None
    for moment in (done.processed, claim.sys_created_on, claim.processed):
        assert isinstance(moment, datetime)
        assert before - timedelta(seconds=5) <= moment <= after + timedelta(seconds=5)


_LIFECYCLE_COLUMNS = (
    "public_key",
    "version",
    "pinned_version",
    "admin_state",
    "rekey_requested",
    "sealed_credentials",
)


def _as_version(queue_url: str, version: int) -> None:
    """Turn a queue's database into the layout of schema ``version`` (1, 2 or 3), as that midprobe made it."""
    # Version 3 had no MID lifecycle: no key, version or admin state of agents, no issues, no settings.
    for column in _LIFECYCLE_COLUMNS:
        _raw(queue_url, f"ALTER TABLE ecc_agent DROP COLUMN {column}")
    _raw(queue_url, "DROP TABLE ecc_agent_issue")
    _raw(queue_url, "DROP TABLE midprobe_setting")
    _raw(queue_url, "DROP INDEX ecc_queue_one_copy")
    _raw(queue_url, "DROP INDEX ecc_queue_one_result")
    for column in ("result_page", "result_last", "copy_of"):
        _raw(queue_url, f"ALTER TABLE ecc_queue DROP COLUMN {column}")
    _raw(
        queue_url,
        "CREATE UNIQUE INDEX ecc_queue_one_result ON ecc_queue (response_to)"
        " WHERE queue = 'input' AND topic <> 'queue.processing' AND response_to IS NOT NULL",
    )
    if version == 3:
        _raw(queue_url, "UPDATE midprobe_schema SET version = ?", (version,))
        return
    # Version 2 ordered claims by the enqueuer's sequence and had no arrival column.
    _raw(queue_url, "DROP INDEX ecc_queue_claim")
    if not queue_url.startswith("sqlite"):
        _raw(queue_url, "ALTER TABLE ecc_queue DROP COLUMN arrival")
    _raw(queue_url, "CREATE INDEX ecc_queue_claim ON ecc_queue (queue, state, priority, sequence, sys_id)")
    if version == 1:
        for table, column in (
            ("ecc_queue", "lease_instance"),
            ("ecc_queue", "lease_epoch"),
            ("ecc_queue", "lease_deadline"),
            ("ecc_agent", "instance"),
        ):
            _raw(queue_url, f"ALTER TABLE {table} DROP COLUMN {column}")
    _raw(queue_url, "UPDATE midprobe_schema SET version = ?", (version,))


def test_a_version_1_queue_is_upgraded_on_open_and_keeps_its_records(queue_url: str) -> None:
    (output,) = _outputs(1)
    with open_queue(queue_url) as queue:
        queue.enqueue(output)
    _as_version(queue_url, 1)

    with open_queue(trust_every_agent(queue_url)) as queue:
        assert [record.sys_id for record in queue.claim("lab1", 5, 60.0, instance="p1")] == [output.sys_id]
        queue.register_agent(AgentRegistration("lab1"), instance="p1", live_within_seconds=60.0)
    assert [int(str(row[0])) for row in _raw(queue_url, "SELECT version FROM midprobe_schema")] == [
        SCHEMA_VERSION
    ]


def test_a_version_2_queue_keeps_its_claim_order_and_takes_new_work_after_it(queue_url: str) -> None:
    old = _outputs(3)
    with open_queue(queue_url) as queue:
        queue.enqueue_many(old)
    _as_version(queue_url, 2)
    # A record enqueued later by a machine whose clock is behind: an older sequence than every other.
    late = new_output_record(agent="lab1", topic="HeartbeatProbe").with_changes(sequence="0" * 18)

    with open_queue(trust_every_agent(queue_url)) as queue:
        queue.enqueue(late)
        claimed = queue.claim("lab1", 10, 60.0)

    assert [record.sys_id for record in claimed] == [record.sys_id for record in [*old, late]]
    assert [int(str(row[0])) for row in _raw(queue_url, "SELECT version FROM midprobe_schema")] == [
        SCHEMA_VERSION
    ]


def _indexes(queue_url: str) -> set[str]:
    if queue_url.startswith("sqlite"):
        rows = _raw(
            queue_url, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'ecc_queue'"
        )
    else:
        rows = _raw(queue_url, "SELECT indexname FROM pg_indexes WHERE tablename = 'ecc_queue'")
    return {value.decode() if isinstance(value, bytes) else str(value) for (value,) in rows}


def test_a_version_5_queue_trades_its_response_to_index_for_the_partial_one(queue_url: str) -> None:
    output = _outputs(1)[0]
    follow_up = _outputs(1)[0].with_changes(response_to=output.sys_id)
    with open_queue(queue_url) as queue:
        queue.enqueue_many([output, follow_up])
        assert queue.complete(
            output.sys_id, new_input_record(output, agent="lab1", results=[], probe_time_ms=1)
        )
    # Version 5 indexed every record by response_to, and had no index of the others.
    _raw(queue_url, "DROP INDEX ecc_queue_other_response_to")
    _raw(queue_url, "CREATE INDEX ecc_queue_response_to ON ecc_queue (response_to)")
    _raw(queue_url, "UPDATE midprobe_schema SET version = 5")

    with open_queue(queue_url) as queue:
        assert sorted(record.queue for record in queue.list(response_to=output.sys_id)) == ["input", "output"]
    indexes = _indexes(queue_url)
    assert "ecc_queue_response_to" not in indexes
    assert {"ecc_queue_one_result", "ecc_queue_other_response_to"} <= indexes
    assert [int(str(row[0])) for row in _raw(queue_url, "SELECT version FROM midprobe_schema")] == [
        SCHEMA_VERSION
    ]


def test_a_version_3_queue_gains_the_mid_issue_table(queue_url: str) -> None:
    with open_queue(queue_url):
        pass
    _as_version(queue_url, 3)
    with open_queue(queue_url):
        pass
    assert _raw(queue_url, "SELECT COUNT(*) FROM ecc_agent_issue")[0][0] == 0


def test_a_version_3_queue_keeps_its_results_and_takes_pages_after_the_upgrade(queue_url: str) -> None:
    answered, waiting = _outputs(2)
    with open_queue(queue_url) as queue:
        queue.enqueue_many([answered, waiting])
        assert queue.complete(
            answered.sys_id, new_input_record(answered, agent="lab1", results=[], probe_time_ms=1)
        )
    _as_version(queue_url, 3)

    with open_queue(queue_url) as queue:
        again = new_input_record(answered, agent="lab1", results=[], probe_time_ms=1)
        assert queue.complete(answered.sys_id, again) is False  # still answered once
        pages = [
            new_input_record(waiting, agent="lab1", results=[], probe_time_ms=1, page=(n, n == 2))
            for n in (1, 2)
        ]
        assert queue.complete_many([(waiting.sys_id, page) for page in pages]) == [True, True]
        done = queue.get(waiting.sys_id)
        assert done is not None
        assert done.state == "processed"
    assert [int(str(row[0])) for row in _raw(queue_url, "SELECT version FROM midprobe_schema")] == [
        SCHEMA_VERSION
    ]


def test_a_version_3_queue_keeps_its_validated_agents_and_gains_the_lifecycle(queue_url: str) -> None:
    (output,) = _outputs(1)
    with open_queue(queue_url) as queue:
        queue.register_agent(AgentRegistration("lab1"))
        queue.update_agent("lab1", validated=True)
        queue.register_agent(AgentRegistration("lab2"))
        queue.update_agent("lab2", validated=False)
        queue.enqueue(output.with_changes(agent="mid.server.lab2"))
    _as_version(queue_url, 3)

    with open_queue(queue_url) as queue:
        lab1, lab2 = queue.get_agent("lab1"), queue.get_agent("lab2")
        assert lab1 is not None
        assert lab2 is not None
        assert (lab1.validated, lab2.validated) == (True, False)
        assert (lab1.public_key, lab1.version, lab1.admin_state) == ("", "", "")
        assert queue.claim("lab2", 5, 60.0) == []  # not validated before, not validated now
        # Registered again by a midprobe of this version, lab1 works at once: it was validated.
        queue.register_agent(AgentRegistration("lab1"))
        queue.enqueue(new_output_record(agent="lab1", topic="HeartbeatProbe"))
        assert len(queue.claim("lab1", 5, 60.0)) == 1
        assert queue.list_issues() == []
    assert [int(str(row[0])) for row in _raw(queue_url, "SELECT version FROM midprobe_schema")] == [
        SCHEMA_VERSION
    ]


def test_claim_order_is_the_database_s_whatever_the_enqueuers_clocks_say(queue: EccQueue) -> None:
    now = utc_now()

    def enqueued_by_a_machine_whose_clock_is_off_by(hours: int) -> EccRecord:
        moment = now + timedelta(hours=hours)
        sequence = f"{int(moment.timestamp() * 1000):012x}000000"  # what new_sequence() would give there
        record = new_output_record(agent="lab1", topic="HeartbeatProbe")
        queue.enqueue(record.with_changes(sequence=sequence, sys_created_on=moment))
        return record

    in_order = [enqueued_by_a_machine_whose_clock_is_off_by(hours) for hours in (5, 0, -5, 1)]

    one_by_one = [queue.claim("lab1", 1, 60.0)[0] for _ in range(2)]
    rest = queue.claim("lab1", 10, 60.0)

    assert [record.sys_id for record in [*one_by_one, *rest]] == [record.sys_id for record in in_order]


def test_a_process_that_lost_its_name_learns_it_and_cannot_mark_the_new_holder_down(
    queue: EccQueue, queue_url: str
) -> None:
    queue.register_agent(AgentRegistration("dup"), instance="frozen", live_within_seconds=120.0)
    _age_heartbeat(queue_url, "mid.server.dup", hours=1)  # it froze (a suspended VM) past the window
    queue.register_agent(AgentRegistration("dup", pid=2), instance="new", live_within_seconds=120.0)

    with pytest.raises(AgentNameInUse, match=r"agent name dup was taken over by another process"):
        queue.heartbeat_agent("dup", instance="frozen")
    with pytest.raises(AgentNameInUse):
        queue.set_agent_status("dup", "Down", instance="frozen")

    agent = queue.get_agent("dup")
    assert agent is not None
    assert agent.status == "Up"
    queue.heartbeat_agent("dup", instance="new")
    queue.heartbeat_agent("dup")  # without a token (the CLI, tools): as before

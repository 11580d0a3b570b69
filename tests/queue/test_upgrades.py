"""The upgrade history in the queue, on SQLite and PostgreSQL: a request per MID, its start and end,
the instance-wide version, and an older database brought up to the schema that holds it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from midprobe.capabilities.errors import ConfigError, QueueError
from midprobe.runner.queue import EccQueue, open_queue
from midprobe.runner.queue.base import AgentRegistration
from midprobe.runner.queue.lifecycle import SETTING_MID_VERSION
from midprobe.runner.queue.schema import SCHEMA_VERSION
from midprobe.runner.queue.url import sqlite_url


@pytest.fixture
def queue(queue_url: str) -> Iterator[EccQueue]:
    with open_queue(queue_url) as opened:
        opened.register_agent(AgentRegistration("m1", version="0.1.1"))
        yield opened


def test_a_request_waits_until_the_mid_starts_it_and_each_attempt_is_kept(queue: EccQueue) -> None:
    assert queue.pending_upgrade("m1") is None
    first = queue.request_upgrade("m1", "0.1.2")
    again = queue.request_upgrade("m1", "0.1.3")  # one request waits per MID: the newer replaces it
    assert again.sys_id == first.sys_id
    assert (again.from_version, again.to_version, again.state, again.ended) == (
        "0.1.1",
        "0.1.3",
        "Requested",
        None,
    )
    assert queue.pending_upgrade("mid.server.m1") == again

    started = queue.start_upgrade("m1", "0.1.1", "0.1.3", sys_id=again.sys_id)
    assert started.state == "Upgrading"
    assert queue.pending_upgrade("m1") is None
    failed = queue.end_upgrade(started.sys_id, succeeded=False, reason="the self-test failed: boom")
    assert (failed.state, failed.reason) == ("Failed", "the self-test failed: boom")
    assert failed.ended is not None
    assert failed.ended >= failed.started
    with pytest.raises(ConfigError, match="has ended already"):
        queue.end_upgrade(started.sys_id, succeeded=True)

    own = queue.start_upgrade("m1", "0.1.1", "0.1.2")  # the MID's own check: no request before
    queue.end_upgrade(own.sys_id, succeeded=True, reason="running 0.1.2")
    history = queue.list_upgrades("m1")
    assert [(row.to_version, row.state) for row in history] == [("0.1.2", "Succeeded"), ("0.1.3", "Failed")]
    assert queue.list_upgrades("other") == []
    assert len(queue.list_upgrades()) == 2


def test_bad_upgrade_input_is_refused_with_the_field_named(queue: EccQueue) -> None:
    with pytest.raises(ConfigError, match="not a version"):
        queue.request_upgrade("m1", "latest")
    with pytest.raises(QueueError, match="not registered"):
        queue.request_upgrade("nobody", "0.1.2")
    with pytest.raises(QueueError, match="no MID upgrade"):
        queue.end_upgrade("0" * 32, succeeded=True)
    own = queue.start_upgrade("m1", "0.1.1", "0.1.2")
    with pytest.raises(ConfigError, match="waiting to start"):
        queue.start_upgrade("m1", "0.1.1", "0.1.2", sys_id=own.sys_id)
    with pytest.raises(ConfigError, match="not a version"):
        queue.set_setting(SETTING_MID_VERSION, "newest")
    queue.set_setting(SETTING_MID_VERSION, "0.1.2")
    assert queue.get_setting(SETTING_MID_VERSION) == "0.1.2"


def test_a_version_4_database_gains_the_upgrade_history(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with open_queue(sqlite_url(path)) as queue:
        queue.register_agent(AgentRegistration("m1"))
    with sqlite3.connect(path) as connection:  # as midprobe left it before the history existed
        connection.execute("DROP TABLE ecc_agent_upgrade")
        connection.execute("UPDATE midprobe_schema SET version = 4")
    with open_queue(sqlite_url(path)) as queue:
        queue.request_upgrade("m1", "0.1.2")
        assert [row.to_version for row in queue.list_upgrades("m1")] == ["0.1.2"]
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT version FROM midprobe_schema").fetchall() == [(SCHEMA_VERSION,)]

"""Opening queues: URL parsing and its one-line errors, password redaction, backend specifics."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from midprobe.capabilities.errors import QueueError, QueueUrlError
from midprobe.runner.ecc.builders import new_output_record
from midprobe.runner.queue import open_queue, redact_url
from midprobe.runner.queue.schema import SCHEMA_VERSION
from midprobe.runner.queue.url import PostgresLocation, SqliteLocation, parse_queue_url, sqlite_url


@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("sqlite:///ecc.db", SqliteLocation("ecc.db")),
        ("sqlite:///demo-output/ecc.db", SqliteLocation("demo-output/ecc.db")),
        ("sqlite:////var/lib/midprobe/ecc.db", SqliteLocation("/var/lib/midprobe/ecc.db")),
        ("sqlite:////tmp/with%20space.db", SqliteLocation("/tmp/with space.db")),
        ("sqlite:///:memory:", SqliteLocation(":memory:")),
        ("  sqlite:///ecc.db  ", SqliteLocation("ecc.db")),
        ("postgresql://u:p@db.example:5432/ecc", PostgresLocation("postgresql://u:p@db.example:5432/ecc")),
        ("postgres:///ecc?host=/run/postgresql", PostgresLocation("postgres:///ecc?host=/run/postgresql")),
    ],
)
def test_good_urls(url: str, location: object) -> None:
    assert parse_queue_url(url) == location


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "the queue URL is empty"),
        ("ecc.db", "'ecc.db' is not a queue URL"),
        ("mysql://u:hunter2@h/db", "unsupported queue URL scheme 'mysql'"),
        ("sqlite://host/ecc.db", "a SQLite queue URL has no host"),
        ("sqlite:///", "names no database file"),
        ("sqlite:///dir/", "names no database file"),
        ("sqlite:///ecc.db?mode=ro", "takes no query"),
        ("postgresql://u:hunter2@h:notaport/db", "not a valid PostgreSQL URL"),
        ("postgresql://u:hunter2@h/db#x", "takes no #fragment"),
    ],
)
def test_bad_urls_give_one_line_without_the_password(url: str, message: str) -> None:
    with pytest.raises(QueueUrlError, match=message) as caught:
        open_queue(url)
    text = str(caught.value)
    assert "\n" not in text
    assert "hunter2" not in text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:hunter2@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:hun@ter2@h/db", "postgresql://u:***@h/db"),
        (
            "postgresql://u@h/db?password=hunter2&sslmode=require",
            "postgresql://u@h/db?password=***&sslmode=require",
        ),
        ("postgresql://h/db", "postgresql://h/db"),
        ("sqlite:///ecc.db", "sqlite:///ecc.db"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_sqlite_url_round_trips_paths(tmp_path: Path) -> None:
    path = tmp_path / "a b%c.db"
    location = parse_queue_url(sqlite_url(path))
    assert location == SqliteLocation(str(path))
    assert sqlite_url("rel.db") == "sqlite:///rel.db"


def test_payload_cap_must_be_positive() -> None:
    with pytest.raises(QueueUrlError, match=r"payload_cap"):
        open_queue("sqlite:///:memory:", payload_cap=0)


def test_sqlite_missing_directory_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(QueueError, match=r"directory .*nowhere does not exist"):
        open_queue(sqlite_url(tmp_path / "nowhere" / "ecc.db"))


def test_sqlite_file_is_in_wal_mode_and_shared_between_queue_objects(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "ecc.db")
    with open_queue(url) as writer, open_queue(url) as reader:
        record = new_output_record(agent="lab1", topic="HeartbeatProbe")
        writer.enqueue(record)
        assert reader.get(record.sys_id) == record
    with sqlite3.connect(tmp_path / "ecc.db") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_memory_queues_are_private() -> None:
    with open_queue("sqlite:///:memory:") as first, open_queue("sqlite:///:memory:") as second:
        first.enqueue(new_output_record(agent="lab1", topic="HeartbeatProbe"))
        assert len(first.list()) == 1
        assert second.list() == []


def test_sqlite_schema_version_mismatch_is_refused(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "ecc.db")
    open_queue(url).close()
    with sqlite3.connect(tmp_path / "ecc.db") as raw:
        raw.execute("UPDATE midprobe_schema SET version = 99")
    with pytest.raises(QueueError, match=rf"schema version 99, this midprobe expects {SCHEMA_VERSION}"):
        open_queue(url)


def test_sqlite_damaged_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "ecc.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(QueueError, match=r"file is not a database") as caught:
        open_queue(sqlite_url(path))
    assert "\n" not in str(caught.value)


def test_postgresql_wrong_password_is_one_line_and_never_shows_it(postgres_server: object) -> None:
    from tests.support.postgres import PrivatePostgres

    assert isinstance(postgres_server, PrivatePostgres)
    url = postgres_server.url().replace(postgres_server.password, "hunter2-wrong")
    with pytest.raises(QueueError, match=r"cannot connect: .*password authentication failed") as caught:
        open_queue(url)
    text = str(caught.value)
    assert "hunter2-wrong" not in text
    assert "\n" not in text
    assert text.startswith("queue postgresql://midprobe:***@127.0.0.1:")


def test_postgresql_unreachable_is_one_line(tmp_path: Path) -> None:
    # A unix socket folder with no server in it: no network traffic at all.
    url = f"postgresql://u:hunter2@/ecc?host={tmp_path}&connect_timeout=2"
    with pytest.raises(QueueError, match=r"cannot connect") as caught:
        open_queue(url)
    text = str(caught.value)
    assert "hunter2" not in text
    assert "\n" not in text


def test_postgresql_schema_version_mismatch_is_refused(postgres_database_url: str) -> None:
    open_queue(postgres_database_url).close()
    with psycopg.connect(postgres_database_url, autocommit=True) as raw:
        raw.execute("UPDATE midprobe_schema SET version = 99")
    with pytest.raises(QueueError, match=rf"schema version 99, this midprobe expects {SCHEMA_VERSION}"):
        open_queue(postgres_database_url)


def test_postgresql_reconnects_after_the_connection_is_killed(postgres_database_url: str) -> None:
    with open_queue(postgres_database_url) as queue:
        record = new_output_record(agent="lab1", topic="HeartbeatProbe")
        queue.enqueue(record)
        with psycopg.connect(postgres_database_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'midprobe' AND pid <> pg_backend_pid()"
            )
        with pytest.raises(QueueError) as caught:
            queue.list()
        assert "\n" not in str(caught.value)
        assert queue.get(record.sys_id) == record  # the next call connects again


def test_two_postgresql_queues_create_the_schema_at_once(postgres_database_url: str) -> None:
    import threading

    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_one() -> None:
        barrier.wait()
        try:
            open_queue(postgres_database_url).close()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []

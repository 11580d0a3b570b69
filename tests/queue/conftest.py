"""The queue suite runs every behavioural test against both backends: a SQLite file and real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from midprobe.runner.queue.url import sqlite_url
from tests.support.trust import trust_every_agent


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty queue: a SQLite file in tmp_path, or a new database on the private PostgreSQL."""
    if request.param == "sqlite":
        return trust_every_agent(sqlite_url(tmp_path / "ecc.db"))
    url: str = request.getfixturevalue("postgres_database_url")
    return trust_every_agent(url)

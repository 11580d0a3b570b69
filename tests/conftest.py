"""Fixtures every test folder may use: the private PostgreSQL server (see tests/support/postgres.py).

Tests that use a PostgreSQL fixture are marked ``postgres`` automatically, so
``-m "not postgres"`` leaves them out; when they run and PostgreSQL is missing they
FAIL with a message saying what to install (never a silent skip).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import Phase, settings

from tests.support.postgres import PostgresUnavailable, PrivatePostgres

# For tests/mutation/mutate.py: a mutant is dead at its first failing example, so no shrinking.
settings.register_profile("mutation", phases=(Phase.explicit, Phase.reuse, Phase.generate))

POSTGRES_FIXTURES = frozenset({"postgres_server", "postgres_url", "postgres_database_url"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if POSTGRES_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PrivatePostgres]:
    """One private PostgreSQL 15 server for the whole session, on 127.0.0.1 (password auth)."""
    server = PrivatePostgres()
    try:
        server.start()
    except PostgresUnavailable as error:
        server.stop()
        pytest.fail(f"PostgreSQL test server unavailable: {error}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PrivatePostgres) -> str:
    """URL of the session's shared ``midprobe`` database (other tests write to it too)."""
    return postgres_server.url()


@pytest.fixture
def postgres_database_url(postgres_server: PrivatePostgres) -> Iterator[str]:
    """URL of an empty place for this test only: a new schema, selected by the URL's ``search_path``.

    Everything that connects through this URL (queues, agent processes, psql) sees only
    this test's tables; the schema is dropped afterwards.
    """
    url = postgres_server.create_schema()
    try:
        yield url
    finally:
        postgres_server.drop_schema(url)

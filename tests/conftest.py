"""Fixtures every test folder may use: the private PostgreSQL server (see tests/support/postgres.py).

Tests that use a PostgreSQL fixture are marked ``postgres`` automatically, so
``-m "not postgres"`` leaves them out; when they run and PostgreSQL is missing they
FAIL with a message saying what to install (never a silent skip).

``make test`` runs ``-n 2 --dist loadfile`` (pytest-xdist): each file's tests run in one worker, one
after the other, and each worker that reaches a lab test brings up its own session lab.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, Phase, settings

from tests.support.postgres import PostgresUnavailable, PrivatePostgres

# The properties are what is checked, not how fast examples come: on a busy 2-core machine (the
# lab tests run beside these) generation and a single example can take seconds, which must not
# fail a test. So no per-example deadline and no "too slow" health check, for every profile.
settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
# For tests/mutation/mutate.py: a mutant is dead at its first failing example, so no shrinking.
settings.register_profile(
    "mutation",
    parent=settings.get_profile("default"),
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
)
settings.load_profile("default")

POSTGRES_FIXTURES = frozenset({"postgres_server", "postgres_url", "postgres_database_url"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if POSTGRES_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(autouse=True)
def _midprobe_logging_restored() -> Iterator[None]:
    """Each test starts with the ``midprobe`` logger as the process had it: a command run in-process
    that configured its logs (``midprobe agent``) must not make a later test's commands log too."""
    logger = logging.getLogger("midprobe")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        yield
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved


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

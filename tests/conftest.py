"""Shared pytest configuration for the orchestr8 test suite."""

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings
from postgres_server import PostgresServer, binaries, running_server

settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=60
)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile("ci")


# A real PostgreSQL server (tests/postgres_server.py): one per session, a database per test.


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server on loopback for the session (skipped where none is installed)."""
    if binaries() is None:
        if os.environ.get("ORCHESTR8_POSTGRES_TESTS") == "required":
            pytest.fail("PostgreSQL is required (ORCHESTR8_POSTGRES_TESTS) but not installed")
        pytest.skip("no PostgreSQL server binaries (apt-get install postgresql)")
    with running_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a fresh database holding an empty journal, for this test alone."""
    return postgres_server.create_database()

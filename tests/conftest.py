"""Shared fixtures: a PostgreSQL server for the run, a fresh database per test, clusters for fault tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "backend"))
sys.path.insert(0, str(REPO / "tests"))

import procs  # noqa: E402
from pgfixtures import (  # noqa: E402
    ExternalPostgres,
    drop_database,
    new_app_database,
    throwaway_cluster,
)

from supervisor.database.pgcluster import LocalPostgres  # noqa: E402


@pytest.fixture(autouse=True)
def _end_to_end_marker(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tell the harness whether this test may start real supervisors (only tests marked ``slow``)."""
    procs.SLOW_TEST_RUNNING = request.node.get_closest_marker("slow") is not None
    try:
        yield
    finally:
        procs.SLOW_TEST_RUNNING = None


@pytest.fixture(scope="session")
def pg_server() -> Iterator[LocalPostgres | ExternalPostgres]:
    """The run's PostgreSQL: TEST_DATABASE_URL when set, else a cluster started for the run."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield ExternalPostgres(external)
        return
    with throwaway_cluster(max_connections=200) as cluster:
        yield cluster


@pytest.fixture
def app_db(pg_server: LocalPostgres | ExternalPostgres) -> Iterator[str]:
    """URL of a fresh, empty database owned by a non-superuser role (as in production)."""
    name, url = new_app_database(pg_server)
    try:
        yield url
    finally:
        drop_database(pg_server, name)


@pytest.fixture
def own_cluster() -> Iterator[LocalPostgres]:
    """A cluster of the test's own, to stop and start (fault tests)."""
    with throwaway_cluster() as cluster:
        yield cluster

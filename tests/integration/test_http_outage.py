"""A database that goes away under load, behind a real uvicorn server: 503 + Retry-After, no traceback."""

from __future__ import annotations

import httpx
import pytest
from loadgen import Load  # type: ignore[import-not-found]
from pgfixtures import new_app_database  # type: ignore[import-not-found]
from procs import wait_for  # type: ignore[import-not-found]
from served import served  # type: ignore[import-not-found]
from test_api import migrate  # type: ignore[import-not-found]

from supervisor.database.pgcluster import LocalPostgres

TRACEBACK_MARKERS = ("Exception in ASGI application", "Traceback (most recent call last)")


@pytest.mark.slow
class TestDatabaseGoneUnderLoad:
    """PostgreSQL stopped while a pool of 2 is exhausted is an outage, not an application error."""

    def test_outage_is_503_without_traceback(self, own_cluster: LocalPostgres) -> None:
        """Answers 503 with Retry-After, logs no traceback, and serves again once the database is back."""
        _, url = new_app_database(own_cluster)
        migrate(url)
        with served(url, DB_POOL_SIZE="2", DB_MAX_OVERFLOW="0", DB_POOL_TIMEOUT="0.5") as server:
            with Load(server.port, "/api/epics", threads=8, max_seconds=60) as load:
                wait_for(lambda: load.result.statuses[200] >= 50, 30, "50 answers before the outage")
                own_cluster.stop(mode="immediate")
                wait_for(lambda: load.result.statuses[503] >= 50, 30, "50 answers during the outage")
                during = load.stop()
            response = httpx.get(f"{server.url}/api/epics", timeout=10)
            assert response.status_code == 503, response.text
            assert int(response.headers["Retry-After"]) > 0
            own_cluster.start()
            wait_for(lambda: httpx.get(f"{server.url}/api/epics", timeout=10).status_code == 200, 30,
                     "the API to serve again once the database is back")
            output = server.output()
        assert set(during.statuses) <= {200, 503}, (during.statuses, output[-3000:])
        assert not [marker for marker in TRACEBACK_MARKERS if marker in output], "\n".join(
            line for line in output.splitlines() if line != "db.unavailable")[-6000:]

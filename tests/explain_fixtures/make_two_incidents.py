"""Writes two_incidents_real.log: a serving day with two independent incidents, from a real run.

The real backend (with ``tests/apps/poolapp.py``'s routes) under the real
supervisor, on a PostgreSQL cluster of its own, pool of two, 2 s pool timeout:

1. a ``psql`` session takes ``LOCK TABLE epics IN ACCESS EXCLUSIVE MODE``; six
   concurrent ``GET /api/epics`` exhaust the pool, which reports
   ``lock_contention`` naming the session's pid; the session rolls back and
   requests succeed again;
2. three seconds later PostgreSQL is stopped for four seconds (requests get 503
   with ``db.unavailable``), then started; requests succeed again; SIGTERM.

It takes about half a minute.  It is what issue #14 describes, and the test of
``jarlpm explain`` expects two root causes from it, in every envelope.

    .venv/bin/python tests/explain_fixtures/make_two_incidents.py > tests/explain_fixtures/two_incidents_real.log
"""

from __future__ import annotations

import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(TESTS.parent))

import psycopg2  # noqa: E402
from pgfixtures import new_app_database, throwaway_cluster  # noqa: E402
from procs import APPS, Supervisor, base_env, http_get, wait_for  # noqa: E402

from supervisor.database.pgcluster import LocalPostgres  # noqa: E402

POOL_ENV = {"JARLPM_APP": "poolapp:app", "JARLPM_APP_DIR": str(APPS), "DB_POOL_SIZE": "2",
            "DB_MAX_OVERFLOW": "0", "DB_POOL_TIMEOUT": "2"}
QUIET_S = 3.0  # between the lock's release and the outage, as in the issue
OUTAGE_S = 4.0


def _status(port: int, path: str = "/api/epics") -> int:
    try:
        return http_get(port, path, timeout=10)[0]
    except OSError:
        return 0


def lock_contention(sup: Supervisor, cluster: LocalPostgres, dbname: str) -> None:
    """A psql session holds ACCESS EXCLUSIVE on epics until the pool reports lock_contention."""
    admin = psycopg2.connect(cluster.url(dbname), application_name="psql", connect_timeout=10)
    try:
        with admin.cursor() as cur:
            cur.execute("LOCK TABLE epics IN ACCESS EXCLUSIVE MODE")
        with ThreadPoolExecutor(max_workers=6) as executor:
            futures = [executor.submit(_status, sup.port) for _ in range(6)]
            sup.wait_event("db.pool.exhausted", timeout=20)
            admin.rollback()
            codes = [f.result() for f in futures]
        assert 503 in codes, codes
    finally:
        admin.close()
    wait_for(lambda: _status(sup.port) == 200, 15, "requests served after the lock is released")


def outage(sup: Supervisor, cluster: LocalPostgres) -> None:
    """PostgreSQL stopped for OUTAGE_S seconds while requests keep coming, then started."""
    cluster.stop(mode="fast")
    stopped = time.monotonic()
    wait_for(lambda: _status(sup.port) == 503, 15, "a 503 while PostgreSQL is down")
    while time.monotonic() - stopped < OUTAGE_S:
        _status(sup.port)
        time.sleep(0.5)  # a request every half second, as load would
    cluster.start()
    wait_for(lambda: _status(sup.port) == 200, 30, "requests served after PostgreSQL is back")


def run() -> list[str]:
    """The supervisor's lines for the whole scenario."""
    with throwaway_cluster() as cluster:
        name, url = new_app_database(cluster)
        sup = Supervisor(base_env(url, **POOL_ENV))
        try:
            sup.wait_event("supervisor.ready", timeout=60)
            sup.wait_event("db.pool.instrumented", timeout=10)
            assert _status(sup.port) == 200
            lock_contention(sup, cluster, name)
            time.sleep(QUIET_S)  # the gap between the two incidents, not a wait for anything
            outage(sup, cluster)
            sup.signal(signal.SIGTERM)
            assert sup.wait_exit(30) == 0
        finally:
            sup.kill()
        return list(sup.lines)


if __name__ == "__main__":
    sys.stdout.write("\n".join(run()) + "\n")

"""Pool exhaustion arrives diagnosed: one scenario per diagnosis, through the real supervisor.

Each scenario runs the real backend (plus the misbehaving routes of
``tests/apps/poolapp.py``) under ``python -m supervisor run`` with a pool of two
connections and a 2 s pool timeout, drives it with concurrent HTTP requests,
and reads the ``db.pool.*`` events from the supervisor's JSON stream.  Every
scenario also checks that no request got a 500, and that the server's liveness
route and the supervisor's status socket answered throughout.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from pgfixtures import APP_PASSWORD, APP_ROLE, new_app_database, throwaway_cluster
from procs import APPS, Supervisor, base_env, http_get, running, wait_for

from supervisor.database.pgcluster import LocalPostgres
from supervisor.supervision import status

pytestmark = pytest.mark.slow

POOL_ENV = {
    "JARLPM_APP": "poolapp:app",
    "JARLPM_APP_DIR": str(APPS),
    "DB_POOL_SIZE": "2",
    "DB_MAX_OVERFLOW": "0",
    "DB_POOL_TIMEOUT": "2",
}
EXHAUSTED_FIELDS = ("pool_size", "max_overflow", "checked_out", "waiting", "timeout_s", "holders", "database",
                    "diagnosis", "also", "hint")


class Watchdog:
    """Polls the server's liveness route and the supervisor's status socket until stopped."""

    def __init__(self, sup: Supervisor, state_dir: Path) -> None:
        self.sup = sup
        self.socket = state_dir / status.SOCKET_NAME
        self.failures: list[str] = []
        self.slowest_s = 0.0
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            started = time.monotonic()
            try:
                code = http_get(self.sup.port, "/api/health", timeout=5)[0]
                if code != 200:
                    self.failures.append(f"/api/health answered {code}")
                if status.query(self.socket).get("state") is None:
                    self.failures.append("status socket answered without a state")
            except (OSError, ValueError) as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            self.slowest_s = max(self.slowest_s, time.monotonic() - started)
            self.polls += 1

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def assert_responsive(self) -> None:
        assert self.polls >= 3, "the watchdog barely ran"
        assert not self.failures, self.failures
        assert self.slowest_s < 1.5, f"liveness or status took {self.slowest_s:.2f}s"


@contextlib.contextmanager
def pool_server(url: str, state_dir: Path, **extra: str) -> Iterator[Supervisor]:
    """The backend with a 2-connection pool, under the supervisor, ready to serve."""
    env = base_env(url, **{**POOL_ENV, "JARLPM_STATE_DIR": str(state_dir), **extra})
    with running(env) as sup:
        sup.wait_event("supervisor.ready", timeout=60)
        sup.wait_event("db.pool.instrumented", timeout=10)
        yield sup


def burst(port: int, path: str, count: int, timeout: float = 30) -> list[tuple[int, dict[str, str]]]:
    """``count`` concurrent GETs of ``path``; their status codes and headers."""
    with ThreadPoolExecutor(max_workers=count) as executor:
        futures = [executor.submit(http_get, port, path, timeout) for _ in range(count)]
        return [(f.result()[0], f.result()[1]) for f in futures]


def start_burst(port: int, path: str, count: int) -> tuple[ThreadPoolExecutor, list[Any]]:
    """Like ``burst`` but returns at once; the caller collects the futures."""
    executor = ThreadPoolExecutor(max_workers=count)
    return executor, [executor.submit(http_get, port, path, 30) for _ in range(count)]


def assert_503s(results: list[tuple[int, dict[str, str]]]) -> None:
    """Only 200s and 503s, at least one 503, and every 503 says when to retry."""
    codes = [code for code, _ in results]
    assert set(codes) <= {200, 503}, codes
    assert 503 in codes, codes
    assert all(int(headers["retry-after"]) > 0 for code, headers in results if code == 503)


def assert_no_500(sup: Supervisor) -> None:
    """No response was a 500, no traceback was printed, no server process died or stalled."""
    access = sup.find("http.access")
    assert access, "no access log lines"
    assert all(int(e["status"]) < 500 or int(e["status"]) == 503 for e in access), access
    assert not sup.find("server.traceback")
    assert not sup.find("child.exited") and not sup.find("child.unresponsive")


def exhausted(sup: Supervisor, timeout: float = 10) -> dict[str, Any]:
    """The one ``db.pool.exhausted`` event, checked for the fields the contract names."""
    event = sup.wait_event("db.pool.exhausted", timeout=timeout)
    assert event["source"] == "server" and event["level"] == "error"
    for field in EXHAUSTED_FIELDS:
        assert field in event, field
    assert (event["pool_size"], event["max_overflow"], event["timeout_s"]) == (2, 0, 2.0)
    assert event["diagnosis"] not in event["also"]
    return event


def stamp(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def logged(sup: Supervisor, name: str) -> list[dict[str, Any]]:
    """Events named ``name``, or plain log records whose message is ``name``."""
    return [e for e in sup.events() if e.get("event") == name or e.get("message") == name]


def assert_within_two_seconds(sup: Supervisor, event: dict[str, Any], trigger: str = "db.pool.timeout") -> None:
    """The report followed the first 503 of its kind by less than two seconds."""
    first = logged(sup, trigger)[0]
    assert 0 <= stamp(event) - stamp(first) < 2.0, (first["timestamp"], event["timestamp"])


def dbname(url: str) -> str:
    return url.rsplit("/", 1)[-1].split("?", 1)[0]


class TestConnectionLeak:
    """A route that never returns its connection is named, with the line that took it."""

    def test_leak(self, app_db: str, tmp_path: Path) -> None:
        """leak_suspected carries the stack; exhaustion says connection_leak and where; release recovers."""
        with pool_server(app_db, tmp_path, DB_LEAK_THRESHOLD="1") as sup, Watchdog(sup, tmp_path) as dog:
            assert sup.get("/test/leak")[0] == 200
            assert sup.get("/test/leak")[0] == 200
            code, headers, _ = sup.get("/api/epics")
            assert_503s([(code, headers)])
            event = exhausted(sup)
            assert_within_two_seconds(sup, event)
            assert event["diagnosis"] == "connection_leak"
            assert event["checked_out"] == 2
            (group,) = event["holders"]
            assert (group["method"], group["route"], group["count"]) == ("GET", "/test/leak", 2)
            assert group["requests_finished"] == 2 and group["kinds"] == {"leaked": 2}
            assert group["where"].startswith("tests/apps/poolapp.py:") and group["where"].endswith(" in leak")
            assert "GET /test/leak" in event["hint"] and group["where"] in event["hint"]
            assert event["trigger"]["request"] == "GET /api/epics"
            leaks = sup.find("db.pool.leak_suspected")
            assert len(leaks) == 2 and {e["request_id"] for e in leaks} == set(group["request_ids"])
            for leak in leaks:
                assert leak["route"] == "/test/leak" and leak["request_finished"] is True
                assert leak["stack"][-1] == group["where"]
                assert leak["held_s"] >= 1.0 and leak["threshold_s"] == 1.0
            assert sup.get("/test/release")[0] == 200
            assert sup.get("/api/epics")[0] == 200
            dog.assert_responsive()
        assert_no_500(sup)


class TestLockContention:
    """A session holding ACCESS EXCLUSIVE on a table JarlPM reads is named by pid, even as another role."""

    def test_lock_contention(self, app_db: str, pg_server: Any, tmp_path: Path) -> None:
        """Requests pile up behind the lock; the event names the blocker's pid, lock and application."""
        with pool_server(app_db, tmp_path) as sup, Watchdog(sup, tmp_path) as dog:
            admin = psycopg2.connect(pg_server.url(dbname(app_db)), application_name="maintenance-psql",
                                     connect_timeout=10)
            try:
                with admin.cursor() as cur:
                    cur.execute("LOCK TABLE epics IN ACCESS EXCLUSIVE MODE")
                    blocker = admin.get_backend_pid()
                executor, futures = start_burst(sup.port, "/api/epics", 6)
                event = exhausted(sup)
            finally:
                admin.rollback()
                admin.close()
            results = [(f.result()[0], f.result()[1]) for f in futures]
            executor.shutdown()
            assert_503s(results)
            assert_within_two_seconds(sup, event)
            assert event["diagnosis"] == "lock_contention"
            assert event["holders"][0]["route"] == "/api/epics"
            assert event["holders"][0]["kinds"] == {"lock_wait": event["holders"][0]["count"]}
            database = event["database"]
            first = database["blockers"][0]
            assert first["pid"] == blocker and first["application"] == "maintenance-psql"
            assert "AccessExclusiveLock on epics" in first["locks"]
            assert first["state"] is None and "hidden" in first["note"]  # another role's session
            assert all(blocker in row["blocked_by"] for row in database["blocked"])
            assert {row.get("holder") for row in database["blocked"]} == {"GET /api/epics"}
            assert f"pid {blocker}" in event["hint"] and "maintenance-psql" in event["hint"]
            assert f"pg_terminate_backend({blocker})" in event["hint"]
            wait_for(lambda: sup.get("/api/epics")[0] == 200, 10, "recovery after the lock is released")
            dog.assert_responsive()
        assert_no_500(sup)


class TestLongTransactions:
    """Transactions left open and idle by a route are named, with their age."""

    def test_long_transactions(self, app_db: str, tmp_path: Path) -> None:
        """Idle-in-transaction holders: long_transactions, their pids, and the timeout to set."""
        with pool_server(app_db, tmp_path) as sup, Watchdog(sup, tmp_path) as dog:
            executor, futures = start_burst(sup.port, "/test/idle_tx?s=5", 6)
            event = exhausted(sup)
            results = [(f.result()[0], f.result()[1]) for f in futures]
            executor.shutdown()
            assert_503s(results)
            assert [code for code, _ in results].count(200) == 2
            assert_within_two_seconds(sup, event)
            assert event["diagnosis"] == "long_transactions"
            (group,) = event["holders"]
            assert (group["route"], group["count"], group["kinds"]) == ("/test/idle_tx", 2, {"long_transaction": 2})
            idle = event["database"]["idle_in_transaction"]
            assert {row["pid"] for row in idle} == set(group["backend_pids"])
            assert all(row["holder"] == "GET /test/idle_tx" and row["transaction_age_s"] >= 1.5 for row in idle)
            assert "GET /test/idle_tx" in event["hint"] and "DB_IDLE_IN_TRANSACTION_TIMEOUT=5" in event["hint"]
            dog.assert_responsive()
        assert_no_500(sup)


class TestSlowQueries:
    """Statements that run long are named with their (literal-free) text."""

    def test_slow_queries(self, app_db: str, tmp_path: Path) -> None:
        """Active long statements: slow_queries, the statement without its values, DB_STATEMENT_TIMEOUT."""
        with pool_server(app_db, tmp_path) as sup, Watchdog(sup, tmp_path) as dog:
            executor, futures = start_burst(sup.port, "/test/query?s=4", 6)
            event = exhausted(sup)
            results = [(f.result()[0], f.result()[1]) for f in futures]
            executor.shutdown()
            assert_503s(results)
            assert_within_two_seconds(sup, event)
            assert event["diagnosis"] == "slow_queries"
            assert event["holders"][0]["route"] == "/test/query"
            statements = event["database"]["longest_statements"]
            assert statements[0]["statement"] == "SELECT pg_sleep(?)"
            assert statements[0]["holder"] == "GET /test/query" and statements[0]["running_s"] >= 1.5
            assert f"pid {statements[0]['pid']}" in event["hint"] and "DB_STATEMENT_TIMEOUT=5" in event["hint"]
            dog.assert_responsive()
        assert_no_500(sup)


class TestUndersizedPool:
    """More concurrent short requests than connections: the size that would have sufficed, warned early."""

    def test_undersized_pool(self, app_db: str, tmp_path: Path) -> None:
        """saturated comes first; exhausted says undersized_pool, the peak demand and the pool size to set."""
        with pool_server(app_db, tmp_path) as sup, Watchdog(sup, tmp_path) as dog:
            results = burst(sup.port, "/test/query?s=0.25", 24)
            assert_503s(results)
            event = exhausted(sup)
            assert_within_two_seconds(sup, event)
            assert event["diagnosis"] == "undersized_pool"
            assert all(group["longest_hold_s"] < 1.0 for group in event["holders"])
            peak = event["peak_demand"]
            assert 6 <= peak <= 24
            assert f"{peak} wanted one at once" in event["hint"]
            assert f"DB_POOL_SIZE={peak} (with DB_MAX_OVERFLOW=0) would have sufficed" in event["hint"]
            assert event["budget"]["fits"] is True and event["budget"]["per_process"] == 2
            saturated = sup.find("db.pool.saturated")
            assert len(saturated) == 1
            assert saturated[0]["checked_out"] == 2 and saturated[0]["waiting"] >= 1
            assert saturated[0]["longest_wait_s"] >= 1.0
            assert stamp(saturated[0]) < stamp(sup.find("db.pool.timeout")[0])
            # Many 503s, one full report: the rest are counted for the next one.
            assert len(sup.find("db.pool.timeout")) >= 2
            assert len(sup.find("db.pool.exhausted")) == 1 and event["suppressed"] == 0
            dog.assert_responsive()
        assert_no_500(sup)


class TestDatabaseAtCapacity:
    """A cluster with a small max_connections, used up by other clients, is named as the cause."""

    def test_database_at_capacity(self, tmp_path: Path) -> None:
        """Refused overflow connections give 503s and database_at_capacity with max_connections."""
        hogs: list[Any] = []
        with throwaway_cluster(max_connections=12) as cluster:
            try:
                _, url = new_app_database(cluster)
                with pool_server(url, tmp_path, DB_MAX_OVERFLOW="4") as sup, Watchdog(sup, tmp_path) as dog:
                    occupy_every_slot(cluster, dbname(url), hogs)
                    results = burst(sup.port, "/test/query?s=1", 6)
                    assert_503s(results)
                    event = sup.wait_event("db.pool.exhausted", timeout=10)
                    assert_within_two_seconds(sup, event, trigger="db.unavailable")
                    assert event["diagnosis"] == "database_at_capacity"
                    assert (event["pool_size"], event["max_overflow"]) == (2, 4)
                    assert event["trigger"]["kind"] == "refused"
                    database = event["database"]
                    assert database["max_connections"] == 12 and database["reserved_connections"] == 3
                    assert database["reachable"] is False  # no slot left for the diagnosis either
                    assert "max_connections=12 (3 reserved for superusers)" in event["hint"]
                    assert "the deployment 6" in event["hint"]
                    dog.assert_responsive()
                assert_no_500(sup)
            finally:
                for conn in hogs:
                    conn.close()


def occupy_every_slot(cluster: LocalPostgres, name: str, into: list[Any]) -> None:
    """Open connections as the app's role ("batch-job") until PostgreSQL refuses one."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            into.append(psycopg2.connect(cluster.url(name, user=APP_ROLE, password=APP_PASSWORD),
                                         application_name="batch-job", connect_timeout=5))
        except psycopg2.OperationalError as exc:
            assert "slots are reserved" in str(exc) or "too many clients" in str(exc), exc
            return
    raise AssertionError("PostgreSQL kept accepting connections")


class TestSwitchedOff:
    """JARLPM_POOL_INSTRUMENTATION=0 (the benchmark's baseline) removes the instrumentation, not the 503s."""

    def test_off(self, app_db: str, tmp_path: Path) -> None:
        """No db.pool events from the server, and exhaustion is still a 503 with Retry-After."""
        env = base_env(app_db, **{**POOL_ENV, "JARLPM_STATE_DIR": str(tmp_path), "JARLPM_POOL_INSTRUMENTATION": "0"})
        with running(env) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            assert sup.get("/test/leak")[0] == 200 and sup.get("/test/leak")[0] == 200
            code, headers, _ = sup.get("/api/epics")
            assert_503s([(code, headers)])
            wait_for(lambda: logged(sup, "db.pool.timeout"), 10, "the 503's own warning")
            instrumentation = {"db.pool.instrumented", "db.pool.thread_budget", "db.pool.saturated",
                               "db.pool.leak_suspected", "db.pool.exhausted"}
            assert not [e for e in sup.events() if e["event"] in instrumentation]
        assert_no_500(sup)

"""Connecting to PostgreSQL from the supervisor: probes, waits with backoff, the database's numbers."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg2

from supervisor.contract import budget, dburl
from supervisor.contract.budget import ConnectionBudget
from supervisor.contract.exitcodes import StopRequested, SupervisorError
from supervisor.database import errors
from supervisor.system.backoff import backoff_delay
from supervisor.system.signals import SignalQueue

SUPERVISOR_APPLICATION_NAME = "jarlpm-supervisor"


def connect(url: str, timeout: float = 5.0, application_name: str = SUPERVISOR_APPLICATION_NAME) -> Any:
    """A plain psycopg2 connection (autocommit) for the supervisor's own queries."""
    conn = psycopg2.connect(
        dburl.libpq_dsn(url),
        connect_timeout=max(1, int(round(timeout))),
        application_name=application_name,
    )
    conn.autocommit = True
    return conn


@contextlib.contextmanager
def connection(url: str, timeout: float = 5.0) -> Iterator[Any]:
    conn = connect(url, timeout)
    try:
        yield conn
    finally:
        with contextlib.suppress(psycopg2.Error):
            conn.close()


def probe(url: str, timeout: float) -> None:
    """One real query with the app's credentials."""
    with connection(url, timeout) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        cur.fetchone()


def wait_for_database(url: str, timeout: float, signals: SignalQueue, log: Any,
                      base: float = 0.1, cap: float = 1.0) -> int:
    """Probe until the database answers; return the number of attempts.

    Errors that waiting cannot fix (credentials, missing database, permissions) end
    the wait at once.  A database at capacity is waited for too (slots free up), and
    at the deadline it fails with its own exit code (75) and hint.  The short cap on
    the backoff means a database that comes back is noticed within about a second.
    """
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        attempt += 1
        remaining = deadline - time.monotonic()
        try:
            probe(url, timeout=min(5.0, max(1.0, remaining)))
            return attempt
        except psycopg2.Error as exc:
            diagnosis = errors.classify_exception(exc)
            message = dburl.redact(errors.first_line(str(exc)))
            if not diagnosis.retryable:
                raise SupervisorError(
                    f"database refused the connection: {message}", diagnosis.exit_code,
                    diagnosis.hint, reason=diagnosis.kind, database=dburl.describe(url),
                ) from None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                what = ("database at capacity (no free connection slot)" if diagnosis is errors.AT_CAPACITY
                        else "database not reachable")
                raise SupervisorError(
                    f"{what} within DB_WAIT_TIMEOUT={timeout:g}s: {message}",
                    diagnosis.exit_code, diagnosis.hint, attempts=attempt, reason=diagnosis.kind,
                    database=dburl.describe(url),
                ) from None
            delay = min(remaining, backoff_delay(attempt, base, cap))
            log.info("db.wait.retry", attempt=attempt, delay_s=round(delay, 3), error=message,
                     remaining_s=round(remaining, 1))
            if signals.sleep(delay):
                raise StopRequested(signals.name(signals.stop_signal or 15)) from None


def read_budget(conn: Any, workers: int, per_process: int, exclude_pids: Sequence[int] = ()) -> ConnectionBudget:
    """The connection budget as the database shows it, counted as a server process counts it.

    ``exclude_pids``: our own sessions (the phase's connections), which are not clients
    of the deployment.  Same session filter and same arithmetic as the backend's pool
    report (``supervisor.contract.budget``), so the two figures agree.
    """
    with conn.cursor() as cur:
        cur.execute(
            "SELECT current_setting('max_connections')::int,"
            " current_setting('superuser_reserved_connections')::int"
            " + COALESCE(NULLIF(current_setting('reserved_connections', true), '')::int, 0)"
        )
        max_conn, reserved = cur.fetchone()
        cur.execute(
            "SELECT COALESCE(a.application_name, ''), a.datname = current_database()"
            f" FROM pg_stat_activity a WHERE {budget.CLIENT_SESSIONS_SQL} AND NOT a.pid = ANY(%s)",
            (list(exclude_pids),),
        )
        sessions = [(str(app), bool(same)) for app, same in cur.fetchall()]
    return budget.from_sessions(workers, per_process, int(max_conn), int(reserved), len(sessions), sessions)

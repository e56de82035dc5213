"""The database's side of an exhaustion, read through a connection of its own, outside the pool.

The pool is empty by definition when this runs, so the view opens one direct
psycopg2 connection (``DATABASE_DIRECT_URL`` when set: behind PgBouncer,
``pg_stat_activity`` shows PgBouncer's sessions) with short connect and
statement timeouts, in a helper thread the caller stops waiting for at its
deadline.  Everything read is visible to a role that merely owns the
database: other roles' sessions show pid, user and application only, and
``pg_locks`` and ``pg_blocking_pids`` still say who blocks whom.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from typing import Any

import psycopg2

from jarlpm.pool.model import DbLock, DbSession, DbSettings, DbView
from supervisor.contract.budget import CLIENT_SESSIONS_SQL
from supervisor.contract.sqltext import normalise

DIAGNOSTICS_APPLICATION = "jarlpm-diagnostics"
CONNECT_TIMEOUT_S = 2  # libpq's minimum
STATEMENT_TIMEOUT_MS = 1000
MAX_LOCK_ROWS = 100

SETTINGS_SQL = (
    "SELECT current_setting('max_connections')::int,"
    " current_setting('superuser_reserved_connections')::int"
    " + COALESCE(NULLIF(current_setting('reserved_connections', true), '')::int, 0),"
    " current_setting('server_version_num')::int"
)

# The contract's filter (other roles' rows show backend_type as NULL), so the
# supervisor's db.pool.budget counts the same sessions.
SESSIONS_SQL = f"""
SELECT a.pid, COALESCE(a.application_name, ''), a.usename, a.datname = current_database(), a.state,
       EXTRACT(EPOCH FROM clock_timestamp() - a.xact_start)::float8,
       EXTRACT(EPOCH FROM clock_timestamp() - a.query_start)::float8,
       EXTRACT(EPOCH FROM clock_timestamp() - a.state_change)::float8,
       a.wait_event_type, a.wait_event,
       CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid) ELSE '{{}}'::int[] END,
       CASE WHEN a.state IS NOT NULL THEN left(a.query, 2000) END
FROM pg_stat_activity a
WHERE a.pid <> pg_backend_pid() AND {CLIENT_SESSIONS_SQL}
"""

LOCKS_SQL = """
SELECT l.pid, l.mode, COALESCE(l.relation::regclass::text, l.locktype), l.granted, {waited}
FROM pg_locks l
WHERE l.pid = ANY(%s) AND (NOT l.granted OR l.locktype = 'relation')
ORDER BY l.granted, l.pid
LIMIT {limit}
"""


def connect_kwargs(base: Mapping[str, Any]) -> dict[str, Any]:
    """psycopg2 arguments for the diagnostics connection: ``base`` plus its name and timeouts."""
    kwargs = dict(base)
    options = [str(kwargs.pop("options", "")).strip(), f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
               "-c lock_timeout=500", "-c idle_in_transaction_session_timeout=5000"]
    kwargs.update(
        connect_timeout=CONNECT_TIMEOUT_S,
        application_name=f"{DIAGNOSTICS_APPLICATION}:{os.getpid()}",
        options=" ".join(option for option in options if option),
    )
    return kwargs


def read_settings(cursor: Any) -> tuple[DbSettings, int]:
    """The connection limits and the server's version number."""
    cursor.execute(SETTINGS_SQL)
    max_connections, reserved, version = cursor.fetchone()
    return DbSettings(int(max_connections), int(reserved)), int(version)


def _age(seconds: float | None) -> float | None:
    """An age in seconds; clock_timestamp() may read a hair before a session's own timestamp."""
    return None if seconds is None else max(0.0, float(seconds))


def _session(row: tuple[Any, ...]) -> DbSession:
    (pid, app, user, same_db, state, xact_age, query_age, state_age, wait_type, wait_event, blocking,
     query) = row
    return DbSession(
        pid=int(pid), application=app, user=user, same_database=bool(same_db), state=state,
        xact_age_s=_age(xact_age), query_age_s=_age(query_age), state_age_s=_age(state_age),
        wait_event_type=wait_type, wait_event=wait_event, blocked_by=tuple(blocking or ()),
        statement=normalise(query) or None,
    )


def query_view(kwargs: Mapping[str, Any]) -> DbView:
    """Connect, read settings, sessions and the locks of blocked and blocking sessions; close."""
    started = time.monotonic()
    conn = psycopg2.connect(**kwargs)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            settings, version = read_settings(cur)
            cur.execute(SESSIONS_SQL)
            sessions = tuple(_session(row) for row in cur.fetchall())
            involved = sorted({s.pid for s in sessions if s.blocked_by}
                              | {pid for s in sessions for pid in s.blocked_by})
            locks: tuple[DbLock, ...] = ()
            if involved:
                # pg_locks.waitstart exists from PostgreSQL 14 on.
                waited = "EXTRACT(EPOCH FROM clock_timestamp() - l.waitstart)::float8" if version >= 140000 else "NULL"
                cur.execute(LOCKS_SQL.format(waited=waited, limit=MAX_LOCK_ROWS), (involved,))
                locks = tuple(DbLock(int(pid), mode, str(rel), bool(granted), _age(waited_s))
                              for pid, mode, rel, granted, waited_s in cur.fetchall())
    finally:
        conn.close()
    return DbView(settings=settings, in_use=len(sessions), sessions=sessions, locks=locks,
                  duration_ms=round((time.monotonic() - started) * 1000))


def read_view(kwargs: Mapping[str, Any], deadline_s: float) -> DbView:
    """``query_view`` within ``deadline_s``; a failure or a late answer becomes ``DbView(error=...)``.

    The helper thread is left to finish on its own (the connect and statement
    timeouts bound it): the report must not wait for a database that hangs.
    """
    result: list[DbView] = []

    def run() -> None:
        try:
            result.append(query_view(kwargs))
        except psycopg2.Error as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            result.append(DbView(error=message))

    worker = threading.Thread(target=run, name="pool-dbview", daemon=True)
    worker.start()
    worker.join(deadline_s)
    if result:
        return result[0]
    return DbView(error=f"the database did not answer within {deadline_s:g}s")

"""The replica-wide migration lock: one replica migrates, the others wait for it, then find head.

A PostgreSQL session advisory lock on a connection of its own (never the one the
migration runs on, so a revision's failed transaction cannot release it early).  It
is polled with ``pg_try_advisory_lock`` rather than waited for, so the wait has a
deadline (``MIGRATION_LOCK_TIMEOUT``, then exit 75), names the holder every ten
seconds, and ends at once on a stop request.  A session lock dies with its
connection: a replica killed mid-migration releases it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import psycopg2

from supervisor.contract.exitcodes import ExitCode, StopRequested, SupervisorError
from supervisor.database import probe
from supervisor.system.signals import SignalQueue

LOCK_KEYS = (0x4A61726C, 0x504D3031)
LOCK_WAIT_LOG_INTERVAL = 10.0


class MigrationLock:
    """The replica-wide migration lock, held on a dedicated connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = None

    def holder_pid(self, conn: Any) -> int | None:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND classid = %s AND objid = %s AND objsubid = 2"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                LOCK_KEYS,
            )
            row = cur.fetchone()
        return int(row[0]) if row else None

    def acquire(self, timeout: float, signals: SignalQueue, log: Any) -> float:
        """Poll for the lock until ``timeout``; return seconds waited.  Exit 75 on timeout."""
        conn = probe.connect(self.url, application_name="jarlpm-migrate-lock")
        started = time.monotonic()
        last_log = -LOCK_WAIT_LOG_INTERVAL
        try:
            while True:
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_try_advisory_lock(%s, %s)", LOCK_KEYS)
                    got = bool(cur.fetchone()[0])
                if got:
                    self._conn, conn = conn, None
                    return time.monotonic() - started
                waited = time.monotonic() - started
                holder = self.holder_pid(conn)
                if waited >= timeout:
                    raise SupervisorError(
                        f"another replica held the migration lock for {waited:.0f}s "
                        f"(MIGRATION_LOCK_TIMEOUT={timeout:g})",
                        ExitCode.TEMPFAIL,
                        f"the holder is PostgreSQL backend pid {holder}: check that replica's logs; "
                        "if it is stuck, pg_terminate_backend it; raise MIGRATION_LOCK_TIMEOUT for "
                        "long migrations",
                        holder_pid=holder,
                    )
                if waited - last_log >= LOCK_WAIT_LOG_INTERVAL:
                    last_log = waited
                    log.info("migrate.lock_waiting", holder_pid=holder, waited_s=round(waited, 1),
                             timeout_s=timeout)
                if signals.sleep(min(0.25 + 0.05 * (waited // 1), 1.0, max(0.0, timeout - waited))):
                    raise StopRequested(signals.name(signals.stop_signal or 15))
        finally:
            if conn is not None:
                with contextlib.suppress(psycopg2.Error):
                    conn.close()

    def release(self) -> None:
        if self._conn is None:
            return
        with contextlib.suppress(psycopg2.Error):
            with self._conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s, %s)", LOCK_KEYS)
            self._conn.close()
        self._conn = None

    @contextlib.contextmanager
    def held(self, timeout: float, signals: SignalQueue, log: Any) -> Iterator[float]:
        waited = self.acquire(timeout, signals, log)
        try:
            yield waited
        finally:
            self.release()

"""Applying or reverting revisions one at a time, each in its own transaction, watched for blockers.

Shared by the migrate phase and ``jarlpm migrate``: one step per revision so that
progress is logged, a failure names its revision, SQLSTATE and message, a stop
request is honoured between revisions (never inside one), and a DDL statement that
waits longer than ``MIGRATION_DDL_LOCK_TIMEOUT`` for a table lock fails naming the
session that held it instead of freezing the traffic queued behind it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg2
import sqlalchemy as sa
from alembic.config import Config

from supervisor.contract import dburl
from supervisor.contract.config import Settings
from supervisor.contract.exitcodes import ExitCode, StopRequested, SupervisorError
from supervisor.database import probe
from supervisor.migrations.alembic_api import (
    BlockerInfo,
    backend_pid,
    current_revisions,
    downgrade_one,
    set_lock_timeout,
    upgrade_one,
)
from supervisor.system.signals import SignalQueue

LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of a lock_timeout
INSUFFICIENT_PRIVILEGE = "42501"


@dataclass(frozen=True)
class Step:
    """One revision to apply (``up``) or revert (``down``); ``target`` is what alembic is asked for."""

    revision: str
    target: str
    direction: str = "up"


class BlockerMonitor:
    """Watches, on a connection of its own, which sessions block the migration's connection.

    After a ``lock_timeout`` the blocker may already be gone or unknowable, so the
    blockers last seen while waiting are kept to name in the failure event.
    """

    def __init__(self, url: str, watched_pid: int, interval: float = 0.1) -> None:
        self.url = url
        self.watched_pid = watched_pid
        self.interval = interval
        self.blockers: list[BlockerInfo] = []
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="blocker-monitor", daemon=True)

    def __enter__(self) -> BlockerMonitor:
        self._thread.start()
        # Watching must have begun before the first statement can wait: with a short
        # lock_timeout on a loaded host, a late monitor would see nothing to name.
        self._connected.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def reset(self) -> None:
        """Forget the blockers of the previous step."""
        self.blockers = []

    def _run(self) -> None:
        try:
            conn = probe.connect(self.url, application_name="jarlpm-migrate-monitor")
        except psycopg2.Error:
            return
        finally:
            self._connected.set()
        try:
            while not self._stop.is_set():
                rows = self._blocking(conn)
                if rows:
                    self.blockers = rows
                self._stop.wait(self.interval)
        except psycopg2.Error:
            pass
        finally:
            with contextlib.suppress(psycopg2.Error):
                conn.close()

    def _blocking(self, conn: Any) -> list[BlockerInfo]:
        # pg_blocking_pids works for a non-superuser role; other roles' query text stays hidden.
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pid, application_name, state, query, extract(epoch FROM now() - xact_start)"
                " FROM pg_stat_activity WHERE pid = ANY(pg_blocking_pids(%s))",
                (self.watched_pid,),
            )
            rows = cur.fetchall()
        return [BlockerInfo(int(r[0]), r[1] or "", r[2], r[3],
                            round(float(r[4]), 1) if r[4] is not None else None) for r in rows]


def _lock_timeout_hint(blockers: list[BlockerInfo], settings: Settings) -> str:
    if not blockers:
        return ("another session held a lock the migration needed: find it with "
                "SELECT * FROM pg_locks WHERE NOT granted, and retry when it is gone")
    b = blockers[0]
    who = (f"PostgreSQL session pid {b.pid} (application {b.application_name or '?'}, "
           f"state {b.state or '?'}, transaction open {b.xact_age_s}s)")
    return (f"{who} held a lock the migration needed for longer than MIGRATION_DDL_LOCK_TIMEOUT="
            f"{settings.migration_ddl_lock_timeout:g}s: let it finish or end it with "
            f"SELECT pg_terminate_backend({b.pid}), then retry (restart, or `jarlpm migrate upgrade`)")


def step_failure(step: Step, exc: BaseException, blockers: list[BlockerInfo], now_at: tuple[str, ...] | None,
                 settings: Settings) -> SupervisorError:
    """The failure (65; 77 for a missing privilege) naming the revision, SQLSTATE, message, and where it stayed."""
    orig = getattr(exc, "orig", None) or exc
    sqlstate = getattr(orig, "pgcode", None)
    message = dburl.redact(" ".join(str(orig).split())[:600])
    stayed = ", ".join(now_at) if now_at else ("an empty schema" if now_at == () else "an unknown revision")
    verb = "migration" if step.direction == "up" else "downgrade of"
    code = ExitCode.DATAERR
    if sqlstate == LOCK_NOT_AVAILABLE:
        hint = _lock_timeout_hint(blockers, settings)
    elif sqlstate == INSUFFICIENT_PRIVILEGE:
        code = ExitCode.NOPERM
        hint = (f"the role of DATABASE_DIRECT_URL (else DATABASE_URL) lacks a privilege revision {step.revision} "
                f"needs: migrate as the owner of the schema and tables, or GRANT it; the database stays at {stayed}")
    else:
        hint = (f"fix revision {step.revision} (or the data it trips over) and redeploy; the database "
                f"stays at {stayed}; no server process ever serves a half-migrated schema")
    return SupervisorError(
        f"{verb} {step.revision} failed: {message}", code, hint,
        revision=step.revision, direction=step.direction, sqlstate=sqlstate,
        last_good_revision=", ".join(now_at) if now_at else None,
        blockers=[b.as_dict() for b in blockers],
    )


def _revisions_after_failure(conn: sa.Connection) -> tuple[str, ...] | None:
    """Where the failed step left the database (its transaction rolled back), if we can still ask."""
    try:
        conn.rollback()
        at = current_revisions(conn)
        conn.rollback()
        return at
    except sa.exc.SQLAlchemyError:
        return None


def run_steps(conn: sa.Connection, cfg: Config, steps: Sequence[Step], settings: Settings,
              signals: SignalQueue, log: Any) -> list[str]:
    """Run ``steps`` in order on ``conn``; return the revisions done.  Raises ``SupervisorError``."""
    set_lock_timeout(conn, settings.migration_ddl_lock_timeout)
    watched = backend_pid(conn)
    conn.commit()
    done: list[str] = []
    with BlockerMonitor(settings.migration_url or "", watched) as monitor:
        for step in steps:
            if signals.stop_pending():
                raise StopRequested(signals.name(signals.stop_signal or 15))
            monitor.reset()
            started = time.monotonic()
            try:
                (upgrade_one if step.direction == "up" else downgrade_one)(cfg, conn, step.target)
            except Exception as exc:  # migration scripts are user code: any error fails the step
                blockers = list(monitor.blockers)
                raise step_failure(step, exc, blockers, _revisions_after_failure(conn), settings) from None
            done.append(step.revision)
            log.info("migrate.step", revision=step.revision, direction=step.direction,
                     duration_ms=round((time.monotonic() - started) * 1000))
    return done

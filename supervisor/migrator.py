"""The migrate phase's work: bring the schema to head exactly once across all replicas.

Reads the revision without any lock (the common case on a deploy that brings no
migration); otherwise takes the replica-wide lock, re-reads, and applies the pending
revisions one by one with a DDL ``lock_timeout``.  A failure leaves the database at
the last good revision and names the failing one, its SQLSTATE and, for a lock
timeout, the session that blocked it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import sqlalchemy as sa

from . import dbprobe, dburl, stamp
from .config import Settings
from .exitcodes import ExitCode, StopRequested, SupervisorError
from .migrations import (
    BlockerInfo,
    MigrationLock,
    alembic_config,
    backend_pid,
    current_revisions,
    engine_for,
    known_revisions,
    pending_path,
    script_directory,
    set_lock_timeout,
    single_head,
    upgrade_one,
)
from .signals import SignalQueue


@dataclass
class MigrationResult:
    """What the migrate phase did."""

    head: str
    from_revision: str | None
    applied: list[str] = field(default_factory=list)
    ahead: bool = False


class BlockerMonitor:
    """Watches, on a connection of its own, which sessions block the migration's connection.

    After a ``lock_timeout`` the blocker may already be gone or unknowable, so the
    last blockers seen while waiting are kept to name in the failure event.
    """

    def __init__(self, url: str, watched_pid: int, interval: float = 0.2) -> None:
        self.url = url
        self.watched_pid = watched_pid
        self.interval = interval
        self.blockers: list[BlockerInfo] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="blocker-monitor", daemon=True)

    def __enter__(self) -> BlockerMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        try:
            conn = dbprobe.connect(self.url, application_name="jarlpm-migrate-monitor")
        except psycopg2.Error:
            return
        try:
            while not self._stop.wait(self.interval):
                with conn.cursor() as cur:
                    cur.execute(
                        "SELECT pid, application_name, state, query,"
                        " extract(epoch FROM now() - xact_start)"
                        " FROM pg_stat_activity WHERE pid = ANY(pg_blocking_pids(%s))",
                        (self.watched_pid,),
                    )
                    rows = cur.fetchall()
                if rows:
                    self.blockers = [
                        BlockerInfo(int(r[0]), r[1] or "", r[2], r[3],
                                    round(float(r[4]), 1) if r[4] is not None else None)
                        for r in rows
                    ]
        except psycopg2.Error:
            pass
        finally:
            with contextlib.suppress(psycopg2.Error):
                conn.close()


def _failure(revision: str, exc: BaseException, blockers: list[BlockerInfo], last_good: str | None,
             settings: Settings) -> SupervisorError:
    orig = getattr(exc, "orig", None) or exc
    sqlstate = getattr(orig, "pgcode", None)
    message = dburl.redact(" ".join(str(orig).split())[:600])
    if sqlstate == "55P03":
        if blockers:
            b = blockers[0]
            who = (f"PostgreSQL session pid {b.pid} (application {b.application_name or '?'}, "
                   f"state {b.state or '?'}, transaction open {b.xact_age_s}s)")
            hint = (f"{who} held a lock the migration needed for longer than "
                    f"MIGRATION_DDL_LOCK_TIMEOUT={settings.migration_ddl_lock_timeout:g}s: let it finish "
                    f"or end it with SELECT pg_terminate_backend({b.pid}); then restart")
        else:
            hint = ("another session held a lock the migration needed: find it with "
                    "SELECT * FROM pg_locks WHERE NOT granted; then restart")
    else:
        hint = (f"fix revision {revision} (or the data it trips over) and redeploy; the database "
                f"stays at {last_good or 'an empty schema'}, and no server was started")
    return SupervisorError(
        f"migration {revision} failed: {message}", ExitCode.DATAERR, hint,
        revision=revision, sqlstate=sqlstate, last_good_revision=last_good,
        blockers=[b.as_dict() for b in blockers],
    )


def migrate_to_head(settings: Settings, signals: SignalQueue, log: Any) -> MigrationResult:
    """Bring the database to head (see module docstring); raises ``SupervisorError`` on failure."""
    url = settings.migration_url
    assert url is not None
    cfg = alembic_config()
    script = script_directory(cfg)
    head = single_head(script)
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            current = current_revisions(conn)
        if not settings.db_reset_on_startup:
            if current == (head,):
                log.info("migrate.up_to_date", revision=head, locked=False)
                return MigrationResult(head=head, from_revision=head)
            unknown = [rev for rev in current if rev not in known_revisions(script)]
            if unknown:
                return _database_ahead(settings, head, unknown, log)
        with MigrationLock(url).held(settings.migration_lock_timeout, signals, log):
            return _upgrade_locked(settings, engine, cfg, script, head, signals, log)
    finally:
        engine.dispose()


def _database_ahead(settings: Settings, head: str, unknown: list[str], log: Any) -> MigrationResult:
    if settings.migration_database_ahead == "refuse":
        raise SupervisorError(
            f"the database is at revision {', '.join(unknown)}, which this code does not know "
            f"(its head is {head})", ExitCode.DATAERR,
            "deploy the newer code, or downgrade the database with that code's `jarlpm migrate "
            "downgrade`; set MIGRATION_DATABASE_AHEAD=warn to start anyway during rolling deploys",
            database_revision=unknown, code_head=head,
        )
    log.warning("migrate.database_ahead", database_revision=unknown, code_head=head,
                hint="a newer release migrated this database (rolling deploy?): starting anyway; "
                     "set MIGRATION_DATABASE_AHEAD=refuse to refuse instead")
    return MigrationResult(head=head, from_revision=unknown[0], ahead=True)


def _upgrade_locked(settings: Settings, engine: sa.Engine, cfg: Any, script: Any, head: str,
                    signals: SignalQueue, log: Any) -> MigrationResult:
    with engine.connect() as conn:
        if settings.db_reset_on_startup:
            stamp.reset_schema(conn, settings, log)
        current = current_revisions(conn)
        if current == (head,):
            log.info("migrate.up_to_date", revision=head, locked=True)
            stamp.ensure(conn, settings.jarlpm_env)
            return MigrationResult(head=head, from_revision=head)
        from_revision = current[0] if current else None
        path = pending_path(script, from_revision, head)
        set_lock_timeout(conn, settings.migration_ddl_lock_timeout)
        watched = backend_pid(conn)
        conn.commit()
        applied: list[str] = []
        for revision in path:
            if signals.stop_pending():
                raise StopRequested(signals.name(signals.stop_signal or 15))
            started = time.monotonic()
            with BlockerMonitor(settings.migration_url or "", watched) as monitor:
                try:
                    upgrade_one(cfg, conn, revision)
                except Exception as exc:  # migration scripts are user code: any error fails the phase
                    with contextlib.suppress(sa.exc.SQLAlchemyError):
                        conn.rollback()
                    last_good = applied[-1] if applied else from_revision
                    raise _failure(revision, exc, monitor.blockers, last_good, settings) from None
            applied.append(revision)
            log.info("migrate.step", revision=revision,
                     duration_ms=round((time.monotonic() - started) * 1000))
        stamp.ensure(conn, settings.jarlpm_env)
        log.info("migrate.applied", from_revision=from_revision, to_revision=head, revisions=applied)
        return MigrationResult(head=head, from_revision=from_revision, applied=applied)

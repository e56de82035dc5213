"""The migrate phase's work: bring the schema to head exactly once across all replicas, then check drift.

Reads the revision without any lock (the common case on a deploy that brings no
migration); otherwise takes the replica-wide lock, re-reads, and applies the pending
revisions one by one (``migration_steps``).  Either way it ends by comparing the
models with the database (``drift``) and refuses to start on a difference.  The
database is stamped with its environment (``stamp``) so that a development reset can
never run against a database that production has used.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

from supervisor.contract import dburl
from supervisor.contract.config import Settings
from supervisor.contract.exitcodes import ExitCode, SupervisorError
from supervisor.database import errors
from supervisor.migrations import drift, fingerprint, stamp
from supervisor.migrations.alembic_api import (
    alembic_config,
    current_revisions,
    engine_for,
    known_revisions,
    pending_path,
    script_directory,
    single_head,
)
from supervisor.migrations.lock import MigrationLock
from supervisor.migrations.steps import Step, run_steps
from supervisor.system.signals import SignalQueue


@dataclass
class MigrationResult:
    """What the migrate phase did."""

    head: str
    from_revision: str | None
    applied: list[str] = field(default_factory=list)
    ahead: bool = False
    drift_check_ms: int | None = None


@contextlib.contextmanager
def locked_engine(settings: Settings, signals: SignalQueue, log: Any) -> Iterator[sa.Engine]:
    """An engine on the direct URL, used only while this process holds the replica-wide lock."""
    url = settings.migration_url
    assert url is not None
    engine = engine_for(url)
    try:
        with MigrationLock(url).held(settings.migration_lock_timeout, signals, log):
            yield engine
    finally:
        engine.dispose()


def migrate_to_head(settings: Settings, signals: SignalQueue, log: Any) -> MigrationResult:
    """Bring the database to head and check drift (see module docstring); raises ``SupervisorError``."""
    url = settings.migration_url
    assert url is not None
    try:
        return _migrate(settings, url, signals, log)
    except (sa.exc.DBAPIError, psycopg2.Error) as exc:
        # Not a migration's failure (those are reported by their step): the
        # connection, the lock or the stamp, e.g. a role without CREATE (77).
        raise database_failure(exc) from None


def _migrate(settings: Settings, url: str, signals: SignalQueue, log: Any) -> MigrationResult:
    cfg = alembic_config()
    script = script_directory(cfg)
    head = single_head(script)
    if not settings.db_reset_on_startup:
        engine = engine_for(url)
        try:
            with engine.connect() as conn:
                fast = _without_lock(settings, cfg, script, head, conn, log)
            if fast is not None:
                return fast
        finally:
            engine.dispose()
    with locked_engine(settings, signals, log) as engine, engine.connect() as conn:
        return _upgrade_locked(settings, conn, cfg, script, head, signals, log)


def database_failure(exc: BaseException) -> SupervisorError:
    """A database error outside any migration, with the exit code and hint its kind deserves."""
    diagnosis = errors.classify_exception(exc)
    orig = getattr(exc, "orig", None) or exc
    return SupervisorError(f"database error: {dburl.redact(errors.first_line(str(orig)))}",
                           diagnosis.exit_code, diagnosis.hint, reason=diagnosis.kind,
                           sqlstate=getattr(orig, "pgcode", None))


def _without_lock(settings: Settings, cfg: Config, script: ScriptDirectory, head: str,
                  conn: sa.Connection, log: Any) -> MigrationResult | None:
    """The no-migration deploy: at head and stamped, so only drift is checked.  None = take the lock."""
    current = current_revisions(conn)
    unknown = [rev for rev in current if rev not in known_revisions(script)]
    if unknown:
        return database_ahead(settings, head, unknown, log)
    if current != (head,) or not stamp.satisfied(conn, settings.jarlpm_env):
        conn.rollback()
        return None
    conn.rollback()
    result = MigrationResult(head=head, from_revision=head)
    check = verify_models(cfg, script, conn, head, settings, log)
    result.drift_check_ms = check.ms
    log.info("migrate.up_to_date", revision=head, locked=False, drift_check=check.how, drift_check_ms=check.ms)
    return result


@dataclass(frozen=True)
class DriftCheck:
    """How the models were found in step: ``compared`` now, or ``cached`` (same code, same schema)."""

    how: str
    ms: int


def verify_models(cfg: Config, script: ScriptDirectory, conn: sa.Connection, head: str,
                  settings: Settings, log: Any, force: bool = False) -> DriftCheck:
    """Compare the models with the database; exit 65 listing the differences.

    Skipped (``cached``) when this code and this schema were already found in step,
    as on every restart of the same release; ``force`` always compares.
    """
    started = time.monotonic()
    code = drift.code_digest(cfg, script)

    def fingerprint_now() -> str | None:
        return fingerprint.compose(head, code, drift.catalog_digest(conn)) if code else None

    before = fingerprint_now()
    if before and not force and stamp.models_checked(conn) == before:
        conn.rollback()
        return DriftCheck("cached", _ms_since(started))
    differences = drift.compare(cfg, script, conn)
    if not differences:
        # Remember it only if the schema did not move during the comparison.
        if before and before == fingerprint_now() and stamp.read(conn):
            stamp.record_models_checked(conn, before)
        return DriftCheck("compared", _ms_since(started))
    now_at = current_revisions(conn)
    conn.rollback()
    if now_at != (head,):
        # A newer release migrated while we compared (rolling deploy): its schema is
        # ahead of our models, which is the database_ahead case, not drift.
        unknown = [rev for rev in now_at if rev not in known_revisions(script)]
        if unknown:
            database_ahead(settings, head, unknown, log)
            return DriftCheck("skipped_database_ahead", _ms_since(started))
    raise drift.drift_error(differences, head)


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def database_ahead(settings: Settings, head: str, unknown: list[str], log: Any) -> MigrationResult:
    """The database is at revisions this code does not know: warn and go on, or refuse (65)."""
    if settings.migration_database_ahead == "refuse":
        raise SupervisorError(
            f"the database is at revision {', '.join(unknown)}, which this code does not know "
            f"(its head is {head})", ExitCode.DATAERR,
            "deploy the newer code, or downgrade the database with that code's `jarlpm migrate "
            "downgrade`; set MIGRATION_DATABASE_AHEAD=warn to start anyway during rolling deploys",
            database_revision=unknown, code_head=head,
        )
    log.warning("migrate.database_ahead", database_revision=unknown, code_head=head,
                hint="a newer release migrated this database (rolling deploy?): starting anyway without "
                     "the drift check; set MIGRATION_DATABASE_AHEAD=refuse to refuse instead")
    return MigrationResult(head=head, from_revision=unknown[0], ahead=True)


def _upgrade_locked(settings: Settings, conn: sa.Connection, cfg: Config, script: ScriptDirectory,
                    head: str, signals: SignalQueue, log: Any) -> MigrationResult:
    if settings.db_reset_on_startup:
        stamp.reset_schema(conn, settings, log)
    current = current_revisions(conn)
    conn.rollback()
    unknown = [rev for rev in current if rev not in known_revisions(script)]
    if unknown:
        # Another replica, running newer code, migrated while we waited for the lock.
        return database_ahead(settings, head, unknown, log)
    from_revision = current[0] if current else None
    applied: list[str] = []
    if current != (head,):
        steps = [Step(rev, rev) for rev in pending_path(script, current, head)]
        applied = run_steps(conn, cfg, steps, settings, signals, log)
    stamp.ensure(conn, settings.jarlpm_env)
    result = MigrationResult(head=head, from_revision=from_revision, applied=applied)
    if applied:
        log.info("migrate.applied", from_revision=from_revision, to_revision=head, revisions=applied)
    check = verify_models(cfg, script, conn, head, settings, log)
    result.drift_check_ms = check.ms
    if not applied:
        log.info("migrate.up_to_date", revision=head, locked=True, drift_check=check.how, drift_check_ms=check.ms)
    return result

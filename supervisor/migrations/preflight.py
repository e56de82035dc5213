"""``jarlpm check``'s migrate phase: what a start would do to the schema, without doing it.

Read-only, like ``alembic check``, ``nginx -t`` or ``gunicorn --check-config``: the
session is ``default_transaction_read_only``, no lock is taken, nothing is stamped,
nothing is reset.  It refuses what ``run`` would refuse, with the same exit codes:
several heads (65), a database ahead when MIGRATION_DATABASE_AHEAD=refuse (65), a
reset a start would refuse (78), drift when the database is at head (65); and it
lists the revisions a start would apply.

``--rehearse`` also applies them inside one transaction that is always rolled back,
under MIGRATION_DDL_LOCK_TIMEOUT, then compares the models with the result: a
failing revision is named (65).  A revision that cannot run inside a transaction
(``autocommit_block``, ``CREATE INDEX CONCURRENTLY``) is reported as not rehearsable,
and the rehearsal stops before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

from alembic import command
from supervisor.contract.config import Settings
from supervisor.migrations import drift, migrator, stamp
from supervisor.migrations.alembic_api import (
    alembic_config,
    current_revisions,
    engine_for,
    known_revisions,
    pending_path,
    script_directory,
    set_lock_timeout,
    single_head,
)
from supervisor.migrations.steps import Step, step_failure

# What cannot run in a transaction block; read from the revision's source, since
# running it is the only other way to find out.
NOT_TRANSACTIONAL = re.compile(r"autocommit_block|\bconcurrently\b", re.IGNORECASE)


@dataclass(frozen=True)
class Pending:
    """A revision a start would apply."""

    revision: str
    message: str
    rehearsable: bool

    def as_dict(self) -> dict[str, Any]:
        return {"revision": self.revision, "message": self.message, "rehearsable": self.rehearsable}


def inspect(settings: Settings, log: Any, rehearse: bool) -> list[Pending]:
    """Check the migrations as described above; the pending revisions.  Raises ``SupervisorError``."""
    url = settings.migration_url
    assert url is not None
    cfg = alembic_config()
    script = script_directory(cfg)
    head = single_head(script)
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return _inspect(settings, cfg, script, head, conn, log, rehearse)
    except (sa.exc.DBAPIError, psycopg2.Error) as exc:
        raise migrator.database_failure(exc) from None
    finally:
        engine.dispose()


def _inspect(settings: Settings, cfg: Config, script: ScriptDirectory, head: str, conn: sa.Connection,
             log: Any, rehearse: bool) -> list[Pending]:
    if not rehearse:
        # The guarantee, not a promise: PostgreSQL refuses any write on this session.
        conn.exec_driver_sql("SET default_transaction_read_only = on")
        conn.commit()
    reset = settings.db_reset_on_startup
    if reset:
        stamp.refuse_reset(settings, stamp.read(conn))
    current = () if reset else current_revisions(conn)
    conn.rollback()
    unknown = [rev for rev in current if rev not in known_revisions(script)]
    if unknown:
        migrator.database_ahead(settings, head, unknown, log)
        log.info("check.migrations", revision=list(current), head=head, pending=[], reset=False)
        return []
    pending = [_pending(script, rev) for rev in pending_path(script, current, head)]
    log.info("check.migrations", revision=list(current), head=head, reset=reset,
             pending=[p.as_dict() for p in pending])
    if not pending and not reset:
        differences = drift.compare(cfg, script, conn)
        if differences:
            raise drift.drift_error(differences, head)
    if rehearse and pending and not reset:
        _rehearse(settings, cfg, script, conn, current, pending, log)
    return pending


def _pending(script: ScriptDirectory, revision: str) -> Pending:
    rev = script.get_revision(revision)
    assert rev is not None
    source = Path(rev.path).read_text(encoding="utf-8", errors="replace")
    message = (rev.doc or "").strip().splitlines()[0] if rev.doc else ""
    return Pending(revision, message, NOT_TRANSACTIONAL.search(source) is None)


def _rehearse(settings: Settings, cfg: Config, script: ScriptDirectory, conn: sa.Connection,
              current: tuple[str, ...], pending: list[Pending], log: Any) -> None:
    """Apply ``pending`` in one transaction, compare the models, roll everything back."""
    set_lock_timeout(conn, settings.migration_ddl_lock_timeout)
    runnable: list[Pending] = []
    for item in pending:
        if not item.rehearsable:
            break
        runnable.append(item)
    skipped = pending[len(runnable):]
    if skipped:
        log.warning("check.not_rehearsable", revision=skipped[0].revision,
                    not_rehearsed=[p.revision for p in skipped],
                    hint=f"revision {skipped[0].revision} cannot run inside a transaction (autocommit_block "
                         "or CONCURRENTLY), so it and the revisions after it were not rehearsed: rehearse "
                         "them against a copy of the database")
    transaction = conn.begin()
    try:
        for item in runnable:
            # A connection handed over inside a transaction: env.py runs every revision in it.
            cfg.attributes["connection"] = conn
            try:
                command.upgrade(cfg, item.revision)
            except Exception as exc:  # migration scripts are user code: any error fails the rehearsal
                raise step_failure(Step(item.revision, item.revision), exc, [], current, settings) from None
            finally:
                cfg.attributes.pop("connection", None)
        differences = drift.compare(cfg, script, conn, within=True) if not skipped else []
    finally:
        transaction.rollback()
    if differences:
        raise drift.drift_error(differences, runnable[-1].revision)
    log.info("check.rehearsed", revisions=[p.revision for p in runnable],
             drift_checked=not skipped, rolled_back=True)

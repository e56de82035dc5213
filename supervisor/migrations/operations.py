"""What ``jarlpm migrate`` does, apart from its command line: status, history, upgrade, downgrade, check, revisions.

Every operation that changes or compares the schema takes the replica-wide lock the
migrate phase takes and runs the same steps (``migration_steps``), so a command run
by hand during a deploy waits for the replicas, or they for it, and logs the same
events.  ``current`` and ``history`` only read, without the lock, so that they can
watch a long migration in progress.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError

from alembic import command
from supervisor.contract.config import Settings
from supervisor.contract.exitcodes import ExitCode, SupervisorError
from supervisor.migrations import migrator, stamp
from supervisor.migrations.alembic_api import (
    alembic_config,
    current_revisions,
    engine_for,
    known_revisions,
    pending_path,
    revert_path,
    script_directory,
    single_head,
)
from supervisor.migrations.lock import MigrationLock
from supervisor.migrations.steps import Step, run_steps
from supervisor.system.signals import SignalQueue

HISTORY_HINT = "see `jarlpm migrate history` for the revisions this code knows"


@dataclass(frozen=True)
class Status:
    """Where the database stands against the code's migrations."""

    current: tuple[str, ...]
    heads: tuple[str, ...]
    pending: tuple[str, ...]
    unknown: tuple[str, ...]
    environment: str | None
    lock_holder_pid: int | None

    @property
    def state(self) -> str:
        if self.unknown:
            return "ahead"
        if len(self.heads) != 1:
            return "several_heads"
        if self.current == self.heads:
            return "at_head"
        return "empty" if not self.current else "behind"


def status(settings: Settings) -> Status:
    """Read the revision, the environment stamp and the lock's holder (no lock taken)."""
    cfg = alembic_config()
    script = script_directory(cfg)
    heads = tuple(sorted(script.get_heads()))
    engine = engine_for(_url(settings))
    try:
        with engine.connect() as conn:
            current = current_revisions(conn)
            environment = stamp.read(conn)
            holder = MigrationLock(_url(settings)).holder_pid(conn.connection.dbapi_connection)
            conn.rollback()
    finally:
        engine.dispose()
    unknown = tuple(rev for rev in current if rev not in known_revisions(script))
    pending: tuple[str, ...] = ()
    if not unknown and len(heads) == 1:
        pending = tuple(pending_path(script, current, heads[0]))
    return Status(current, heads, pending, unknown, environment, holder)


@dataclass(frozen=True)
class HistoryEntry:
    revision: str
    down_revision: str | None
    doc: str
    is_head: bool


def history() -> list[HistoryEntry]:
    """The code's revisions, newest first (no database needed)."""
    script = script_directory(alembic_config())
    entries = []
    for rev in script.walk_revisions():
        down = rev.down_revision
        shown = down if isinstance(down, str) or down is None else ", ".join(down)
        entries.append(HistoryEntry(rev.revision, shown, (rev.doc or "").strip().splitlines()[0]
                                    if rev.doc else "", rev.is_head))
    return entries


def current_of(settings: Settings) -> tuple[str, ...]:
    engine = engine_for(_url(settings))
    try:
        with engine.connect() as conn:
            return current_revisions(conn)
    finally:
        engine.dispose()


def upgrade(settings: Settings, signals: SignalQueue, log: Any, target: str) -> migrator.MigrationResult:
    """To head: exactly the migrate phase (drift check included).  To another revision: the steps only."""
    settings = replace(settings, db_reset_on_startup=False)  # a CLI upgrade never resets
    cfg = alembic_config()
    script = script_directory(cfg)
    head = single_head(script)
    resolved = _resolve(script, target)
    if resolved == head:
        return migrator.migrate_to_head(settings, signals, log)
    with migrator.locked_engine(settings, signals, log) as engine, engine.connect() as conn:
        current = current_revisions(conn)
        conn.rollback()
        try:
            path = pending_path(script, current, resolved)
        except RevisionError as exc:
            raise _usage(f"cannot upgrade from {', '.join(current) or 'base'} to {target}: {exc}",
                         "to go back, use `jarlpm migrate downgrade`; " + HISTORY_HINT) from None
        applied = run_steps(conn, cfg, [Step(rev, rev) for rev in path], settings, signals, log)
        if applied:
            stamp.ensure(conn, settings.jarlpm_env)
            log.info("migrate.applied", from_revision=current[0] if current else None, to_revision=resolved,
                     revisions=applied)
        else:
            log.info("migrate.up_to_date", revision=resolved, locked=True)
        return migrator.MigrationResult(head=head, from_revision=current[0] if current else None,
                                        applied=applied)


def _resolve(script: ScriptDirectory, target: str) -> str:
    if target in ("head", "heads"):
        return single_head(script)
    try:
        rev = script.get_revision(target)
    except (RevisionError, CommandError) as exc:
        raise _usage(f"unknown revision {target!r}: {exc}", HISTORY_HINT) from None
    if rev is None:
        raise _usage(f"unknown revision {target!r}", HISTORY_HINT)
    return rev.revision


def _usage(message: str, hint: str, **fields: object) -> SupervisorError:
    return SupervisorError(message, ExitCode.USAGE, hint, **fields)


@dataclass
class DowngradePlan:
    """The revisions a downgrade reverts (newest first), where it ends, and what its SQL drops."""

    from_revisions: tuple[str, ...]
    steps: list[Step]
    to_revision: str
    drops: list[str] = field(default_factory=list)


_DESTRUCTIVE = re.compile(r"^\s*(DROP\s|TRUNCATE\s|DELETE\s+FROM\s|ALTER\s+TABLE\s.*\sDROP\s)", re.I | re.S)


def destructive_statements(sql: str) -> list[str]:
    """The statements of an offline SQL script that destroy schema or data (alembic's own excepted)."""
    found = []
    for raw in sql.split(";"):
        lines = [ln for ln in raw.strip().splitlines() if ln.strip() and not ln.strip().startswith("--")]
        statement = " ".join(" ".join(lines).split())
        if _DESTRUCTIVE.match(statement) and "alembic_version" not in statement:
            found.append(statement)
    return found


def plan_downgrade(cfg: Config, script: ScriptDirectory, current: tuple[str, ...], target: str) -> DowngradePlan:
    """Resolve ``target`` (revision, ``base`` or ``-N``) against ``current``; list what it drops."""
    unknown = [rev for rev in current if rev not in known_revisions(script)]
    if unknown:
        raise SupervisorError(
            f"the database is at {', '.join(unknown)}, which this code does not know", ExitCode.DATAERR,
            "downgrade with the release that created that revision (its code has the downgrade scripts)",
            database_revision=unknown)
    try:
        pairs = revert_path(script, current, target)
    except RevisionError as exc:
        raise _usage(f"cannot downgrade from {', '.join(current) or 'base'} to {target}: {exc}",
                     "give a revision below the current one, `base`, or -N; " + HISTORY_HINT) from None
    if not pairs:
        return DowngradePlan(current, [], ", ".join(current) or "base")
    linear = all(down for _rev, down in pairs)
    final = pairs[-1][1] if linear else target
    steps = ([Step(rev, down, "down") for rev, down in pairs] if linear
             else [Step(", ".join(rev for rev, _ in pairs), target, "down")])
    plan = DowngradePlan(current, steps, final)
    if linear and len(current) == 1:
        plan.drops = destructive_statements(offline_sql(cfg, f"{current[0]}:{final}", downgrade=True))
    return plan


def offline_sql(cfg: Config, revision_range: str, downgrade: bool = False) -> str:
    """The SQL alembic would run for ``revision_range`` (``start:end``), without a database."""
    buffer = io.StringIO()
    cfg.output_buffer = buffer
    try:
        (command.downgrade if downgrade else command.upgrade)(cfg, revision_range, sql=True)
    finally:
        cfg.output_buffer = None
    return buffer.getvalue()


def downgrade(settings: Settings, signals: SignalQueue, log: Any, target: str,
              confirm: Callable[[DowngradePlan], None]) -> DowngradePlan:
    """Plan, let ``confirm`` refuse (raise), then revert under the lock, one revision per transaction."""
    cfg = alembic_config()
    script = script_directory(cfg)
    plan = plan_downgrade(cfg, script, current_of(settings), target)
    if not plan.steps:
        log.info("migrate.up_to_date", revision=plan.to_revision, locked=False, direction="down")
        return plan
    confirm(plan)
    with migrator.locked_engine(settings, signals, log) as engine, engine.connect() as conn:
        now = current_revisions(conn)
        conn.rollback()
        if now != plan.from_revisions:
            raise SupervisorError(
                f"the database moved from {', '.join(plan.from_revisions)} to {', '.join(now) or 'base'} "
                "while this command waited for the migration lock", ExitCode.TEMPFAIL,
                "another replica or operator migrated meanwhile: check `jarlpm migrate current` and re-run")
        log.warning("migrate.downgrade_plan", from_revision=", ".join(now), to_revision=plan.to_revision,
                    revisions=[s.revision for s in plan.steps], drops=plan.drops)
        done = run_steps(conn, cfg, plan.steps, settings, signals, log)
    log.info("migrate.downgraded", from_revision=", ".join(plan.from_revisions), to_revision=plan.to_revision,
             revisions=done)
    return plan


def check(settings: Settings, signals: SignalQueue, log: Any) -> str:
    """Under the lock: one head, the database at it, the models matching it.  Returns the head."""
    cfg = alembic_config()
    script = script_directory(cfg)
    head = single_head(script)
    with migrator.locked_engine(settings, signals, log) as engine, engine.connect() as conn:
        current = current_revisions(conn)
        conn.rollback()
        if current != (head,):
            raise not_at_head(current, head)
        check = migrator.verify_models(cfg, script, conn, head, settings, log, force=True)
    log.info("migrate.check_passed", revision=head, drift_check=check.how, drift_check_ms=check.ms)
    return head


def not_at_head(current: tuple[str, ...], head: str) -> SupervisorError:
    return SupervisorError(
        f"the database is at {', '.join(current) or 'base (empty)'}, not at the head {head}",
        ExitCode.DATAERR, "apply the pending migrations first: `jarlpm migrate upgrade`",
        database_revision=list(current), code_head=head)


def _url(settings: Settings) -> str:
    url = settings.migration_url
    if url is None:
        raise SupervisorError("no database URL", ExitCode.CONFIG,
                              "set DATABASE_URL (and DATABASE_DIRECT_URL behind PgBouncer)")
    return url


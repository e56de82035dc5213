"""The ``jarlpm migrate`` actions: each runs its operation and prints the result for people.

Results go to the invocation's stdout; events go through the log.  Failures are
raised as ``SupervisorError`` and reported once by ``migrate_cli.execute``.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import sqlalchemy as sa
from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError

from supervisor.contract import config, dburl
from supervisor.contract.exitcodes import ExitCode, SupervisorError
from supervisor.database import errors
from supervisor.migrations import migrator, operations, revisions
from supervisor.migrations.alembic_api import alembic_config, revert_path, script_directory
from supervisor.system.signals import SignalQueue


@dataclass
class Invocation:
    """What a command handler gets: its arguments, validated settings, signals, the log and stdout."""

    args: argparse.Namespace
    settings: config.Settings | None
    signals: SignalQueue
    log: Any
    out: TextIO

    def print(self, *lines: str) -> None:
        for line in lines:
            print(line, file=self.out)
        self.out.flush()


Handler = Callable[[Invocation], int]


def upgrade(inv: Invocation) -> int:
    args = inv.args
    if args.sql:
        return _offline(inv, args.revision, downgrade=False)
    assert inv.settings is not None
    result = operations.upgrade(inv.settings, inv.signals, inv.log, args.revision)
    if result.applied:
        inv.print(f"upgraded {result.from_revision or 'base'} -> {result.applied[-1]}: {', '.join(result.applied)}")
    elif result.ahead:
        inv.print(f"the database is ahead of this code ({result.from_revision}); nothing done")
    else:
        inv.print(f"already at {args.revision if args.revision != 'head' else result.head}")
    return 0


def _offline(inv: Invocation, target: str, downgrade: bool) -> int:
    """``--sql``: the script alembic would run, for a DBA to review, with the same lock_timeout."""
    start = inv.args.from_revision
    if start is None:
        current: tuple[str, ...] = ()
        if inv.settings and inv.settings.migration_url:
            try:
                current = operations.current_of(inv.settings)
            except sa.exc.OperationalError as exc:
                error = migrator.database_failure(exc)
                error.hint += "; or pass --from REV (--from base) to write the SQL without a database"
                raise error from None
        start = current[0] if current else "base"
        if downgrade and start == "base":
            raise SupervisorError("nothing to downgrade from: the database is empty", ExitCode.USAGE,
                                  "pass --from REV to write the SQL for another starting revision")
    cfg = alembic_config()
    try:
        if downgrade and re.fullmatch(r"-\d+", target):
            # Relative to the starting revision (alembic would count from the head).
            pairs = revert_path(script_directory(cfg), (start,), target)
            target = pairs[-1][1] if pairs else start
        sql = operations.offline_sql(cfg, f"{start}:{target}", downgrade=downgrade)
    except (CommandError, RevisionError) as exc:
        raise SupervisorError(f"cannot write the SQL from {start} to {target}: {exc}", ExitCode.USAGE,
                              operations.HISTORY_HINT) from None
    timeout = inv.settings.migration_ddl_lock_timeout if inv.settings else 10.0
    verb = "downgrade" if downgrade else "upgrade"
    inv.print(f"-- jarlpm migrate {verb} --sql: {start} -> {target}",
              "-- Review, then apply on the direct (not PgBouncer) URL:",
              '--   psql "$DATABASE_DIRECT_URL" -v ON_ERROR_STOP=1 -f this-file.sql',
              "-- Each revision is one transaction; DDL waits at most MIGRATION_DDL_LOCK_TIMEOUT for a lock.",
              f"SET lock_timeout = '{int(timeout * 1000)}ms';", "", sql.rstrip())
    return 0


def downgrade(inv: Invocation) -> int:
    args = inv.args
    if args.sql:
        return _offline(inv, args.revision, downgrade=True)
    assert inv.settings is not None
    settings = inv.settings

    def confirm(plan: operations.DowngradePlan) -> None:
        if args.yes or settings.development:
            return
        inv.print(*_plan_lines(plan), "", "Nothing was changed. Re-run with --yes to do it.")
        raise SupervisorError(
            f"a downgrade in production needs --yes: it would revert {len(plan.steps)} revision(s) "
            f"and run {len(plan.drops)} destructive statement(s)", ExitCode.USAGE,
            "read `drops` (what it destroys), back up the database, then re-run with --yes; "
            "to review the whole script: `jarlpm migrate downgrade --sql " + args.revision + "`",
            revisions=[s.revision for s in plan.steps], to_revision=plan.to_revision, drops=plan.drops,
        )

    plan = operations.downgrade(settings, inv.signals, inv.log, args.revision, confirm)
    if plan.steps:
        inv.print(f"downgraded {', '.join(plan.from_revisions)} -> {plan.to_revision}: "
                  + ", ".join(s.revision for s in plan.steps))
    else:
        inv.print(f"nothing to downgrade: the database is at {plan.to_revision}")
    return 0


def _plan_lines(plan: operations.DowngradePlan) -> list[str]:
    lines = [f"Downgrade {', '.join(plan.from_revisions)} -> {plan.to_revision} would revert:"]
    lines += [f"  {step.revision}" for step in plan.steps]
    lines.append("and run these destructive statements:" if plan.drops else "(no destructive statement found)")
    lines += [f"  {statement};" for statement in plan.drops]
    return lines


def current(inv: Invocation) -> int:
    assert inv.settings is not None
    st = operations.status(inv.settings)
    shown = ", ".join(st.current) or "base"
    detail = {
        "at_head": "(head)",
        "behind": f"(behind: {len(st.pending)} pending: {', '.join(st.pending)})",
        "empty": f"(empty: {len(st.pending)} pending)",
        "ahead": "(unknown to this code: a newer release migrated this database)",
        "several_heads": f"(the code has several heads: {', '.join(st.heads)}; merge them)",
    }[st.state]
    inv.print(f"{shown} {detail}", f"environment stamp: {st.environment or 'none'}")
    if st.lock_holder_pid:
        inv.print(f"migration lock: held by PostgreSQL backend pid {st.lock_holder_pid} (a migration is running)")
    inv.log.info("migrate.current", revision=list(st.current), state=st.state, heads=list(st.heads),
                 pending=list(st.pending), environment=st.environment, lock_holder_pid=st.lock_holder_pid)
    return 0


def history(inv: Invocation) -> int:
    current: tuple[str, ...] = ()
    if inv.settings is not None and inv.settings.migration_url:
        try:
            current = operations.current_of(inv.settings)
        except sa.exc.OperationalError as exc:
            inv.log.warning("migrate.history_offline", error=dburl.redact(errors.first_line(str(exc.orig))),
                            hint="the database is unreachable: the history is shown without the current mark")
    entries = operations.history()
    labels = []
    for entry in entries:
        marks = [m for m, on in (("head", entry.is_head), ("current", entry.revision in current)) if on]
        labels.append(f"{entry.revision} ({', '.join(marks)})" if marks else entry.revision)
    width = max((len(label) for label in labels), default=0)
    for label, entry in zip(labels, entries, strict=True):
        inv.print(f"{label:<{width}}  <- {entry.down_revision or 'base'}  {entry.doc}")
    return 0


def check(inv: Invocation) -> int:
    assert inv.settings is not None
    head = operations.check(inv.settings, inv.signals, inv.log)
    inv.print(f"ok: the database is at the head {head} and matches the models")
    return 0


def revision(inv: Invocation) -> int:
    args = inv.args
    path = revisions.revision(inv.settings, inv.signals, inv.log, args.message, args.autogenerate)
    inv.print(str(path) if path else "no changes detected: no revision written")
    return 0


def merge(inv: Invocation) -> int:
    path = revisions.merge(inv.log, inv.args.message)
    inv.print(str(path) if path else "one head only: nothing to merge")
    return 0

"""Alembic, in-process: heads, the current revision, the replica-wide lock and step-wise upgrades.

The lock is a PostgreSQL session advisory lock on a connection of its own (never
Alembic's), polled with ``pg_try_advisory_lock`` until a deadline: a replica that
dies holding it releases it with its connection, and the waiting replicas can say
who holds it.  Upgrades go one revision at a time so that progress is logged, a
failure names its revision, and a stop request is honoured between revisions.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError

from alembic import command
from supervisor.contract import dburl, sqltext
from supervisor.contract.exitcodes import ExitCode, SupervisorError
from supervisor.contract.paths import alembic_ini
from supervisor.migrations import inflight

# Two int4 keys ("Jarl", "PM01"): pg_locks shows them as classid/objid with objsubid 2.


def alembic_config(url: str | None = None) -> Config:
    """Alembic's config for this repo; ``url`` is for offline (``--sql``) mode only."""
    ini = alembic_ini()
    # quiet: alembic's "Generating ... done" would land on our stdout (JSON only under
    # `jarlpm run`, the command's result under `jarlpm migrate`).  A cmd_opts makes
    # env.py believe it runs under the alembic CLI, so it is told not to set up logging.
    cfg = Config(str(ini), cmd_opts=argparse.Namespace(quiet=True, x=None), attributes={"configure_logger": False})
    cfg.set_main_option("script_location", str(ini.parent / (cfg.get_main_option("script_location") or "alembic")))
    if url:
        cfg.set_main_option("sqlalchemy.url", dburl.normalise(url).replace("%", "%%"))
    return cfg


def script_directory(cfg: Config) -> ScriptDirectory:
    """The migration scripts; alembic also puts ``prepend_sys_path`` (backend/) on ``sys.path``."""
    script = ScriptDirectory.from_config(cfg)
    _dedupe_sys_path()
    return script


def _dedupe_sys_path() -> None:
    """``from_config`` prepends on every call: keep sys.path from growing with each reload."""
    seen: set[str] = set()
    unique = []
    for entry in sys.path:
        if entry not in seen:
            seen.add(entry)
            unique.append(entry)
    sys.path[:] = unique


def single_head(script: ScriptDirectory) -> str:
    """The one head revision, or exit 65 telling how to merge several."""
    heads = list(script.get_heads())
    if len(heads) != 1:
        raise SupervisorError(
            f"the migration history has {len(heads)} heads: {', '.join(sorted(heads))}",
            ExitCode.DATAERR,
            "two branches of migrations were developed in parallel: merge them with `jarlpm migrate "
            f"merge -m \"merge heads\"` (alembic merge -m 'merge heads' {' '.join(sorted(heads))}), "
            "review and commit the merge revision, then redeploy",
            heads=sorted(heads),
        )
    return heads[0]


def known_revisions(script: ScriptDirectory) -> set[str]:
    return {rev.revision for rev in script.walk_revisions()}


def engine_for(url: str) -> sa.Engine:
    """A pool-less engine for migrations (each phase opens and closes what it needs).

    Its connections are tracked (``inflight``) so that a phase process whose supervisor
    died can cancel the statement it is running.
    """
    return inflight.track(sa.create_engine(
        dburl.normalise(url), poolclass=sa.pool.NullPool,
        connect_args={"application_name": "jarlpm-migrate", "connect_timeout": 10},
    ))


def current_revisions(conn: sa.Connection) -> tuple[str, ...]:
    return tuple(MigrationContext.configure(conn).get_current_heads())


def pending_path(script: ScriptDirectory, current: tuple[str, ...], target: str) -> list[str]:
    """Revisions to apply, in order, from ``current`` (``()`` = empty) up to ``target``."""
    revs = list(script.iterate_revisions(target, current or "base"))
    return [rev.revision for rev in reversed(revs) if rev is not None]


def revert_path(script: ScriptDirectory, current: tuple[str, ...], target: str) -> list[tuple[str, str]]:
    """(revision, revision it goes back to) pairs, newest first, from ``current`` down to ``target``.

    ``target`` may be a revision, ``base`` or ``-N``: N revisions below ``current``
    (alembic would count from the head instead).  A merge revision goes back to all
    its parents at once: its pair's second element is ``""``.
    """
    if re.fullmatch(r"-\d+", target):
        return _relative_path(script, current, int(target[1:]))
    revs = [rev for rev in script.iterate_revisions(current or "base", target) if rev is not None]
    return [(rev.revision, _down_of(rev.down_revision)) for rev in revs]


def _down_of(down: str | Sequence[str] | None) -> str:
    return down if isinstance(down, str) else "base" if down is None else ""


def _relative_path(script: ScriptDirectory, current: tuple[str, ...], count: int) -> list[tuple[str, str]]:
    if len(current) > 1:
        raise RevisionError(f"the database is at several revisions ({', '.join(current)}): name the target")
    pairs: list[tuple[str, str]] = []
    revision = current[0] if current else "base"
    for _ in range(count):
        rev = script.get_revision(revision) if revision != "base" else None
        if rev is None:
            raise RevisionError(f"-{count} goes below base: the database is only {len(pairs)} revision(s) up")
        down = _down_of(rev.down_revision)
        if not down:
            raise RevisionError(f"{rev.revision} is a merge: name the revision to go back to")
        pairs.append((rev.revision, down))
        revision = down
    return pairs


@dataclass
class BlockerInfo:
    """A session blocking ours, as pg_stat_activity shows it (query text hidden from non-owners)."""

    pid: int
    application_name: str
    state: str | None
    query: str | None
    xact_age_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "application_name": self.application_name, "state": self.state,
                # The shape names the blocker; its literals (values, a PASSWORD '…') stay out of the log.
                "query": sqltext.normalise(self.query, 300) or None, "xact_age_s": self.xact_age_s}


def _on_connection(cfg: Config, conn: sa.Connection, run: Callable[[], None]) -> None:
    """Run an alembic command with ``conn`` handed to env.py, outside any caller transaction.

    Handed over outside a transaction, env.py's ``transaction_per_migration`` gives each
    revision a transaction of its own: a failure rolls back that revision only.
    """
    if conn.in_transaction():
        conn.commit()
    cfg.attributes["connection"] = conn
    try:
        run()
    finally:
        cfg.attributes.pop("connection", None)
    if conn.in_transaction():
        conn.commit()


def upgrade_one(cfg: Config, conn: sa.Connection, revision: str) -> None:
    """Upgrade to ``revision`` (the next one) on the handed-over connection."""
    _on_connection(cfg, conn, lambda: command.upgrade(cfg, revision))


def downgrade_one(cfg: Config, conn: sa.Connection, target: str) -> None:
    """Downgrade to ``target`` (the previous revision, or ``base``) on the handed-over connection."""
    _on_connection(cfg, conn, lambda: command.downgrade(cfg, target))


def set_lock_timeout(conn: sa.Connection, seconds: float) -> None:
    """DDL waits at most this long for a table lock, so it cannot freeze live traffic behind it."""
    conn.exec_driver_sql(f"SET lock_timeout = '{int(seconds * 1000)}ms'")
    conn.commit()


def backend_pid(conn: sa.Connection) -> int:
    return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())

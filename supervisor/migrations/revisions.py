"""Writing revision files: from the models' differences (``--autogenerate``), empty, or merging heads.

New files are named ``NNNN_slug`` after the highest existing number, as this
repository names its revisions.  ``--autogenerate`` compares the models with a
database at head, under the migration lock, and writes nothing when they match.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory

from alembic import command
from supervisor.contract.config import Settings
from supervisor.migrations import drift, migrator, operations
from supervisor.migrations.alembic_api import (
    alembic_config,
    current_revisions,
    known_revisions,
    script_directory,
    single_head,
)
from supervisor.system.signals import SignalQueue


def next_revision_id(script: ScriptDirectory, message: str) -> str | None:
    """``NNNN_slug`` after the highest ``NNNN_`` revision, as this repo names them; None = alembic's own."""
    numbers = [int(m.group(1)) for rev in known_revisions(script) if (m := re.match(r"^(\d{4})_", rev))]
    if not numbers:
        return None
    slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")[:40].rstrip("_") or "revision"
    return f"{max(numbers) + 1:04d}_{slug}"


def revision(settings: Settings | None, signals: SignalQueue, log: Any, message: str,
             autogenerate: bool) -> Path | None:
    """Write a new revision file (``--autogenerate``: from the models' differences, under the lock)."""
    cfg = alembic_config()
    script = script_directory(cfg)
    head = single_head(script)
    rev_id = next_revision_id(script, message)
    if not autogenerate:
        return _written(command.revision(cfg, message=message, rev_id=rev_id), log, [])
    assert settings is not None
    differences: list[str] = []

    def keep_or_skip(_context: Any, _revision: Any, directives: list[Any]) -> None:
        ops = directives[0].upgrade_ops
        differences.extend(drift.describe(d) for d in ops.as_diffs())
        if ops.is_empty():
            directives[:] = []

    with migrator.locked_engine(settings, signals, log) as engine, engine.connect() as conn:
        current = current_revisions(conn)
        conn.rollback()
        if current != (head,):
            raise operations.not_at_head(current, head)
        cfg.attributes["connection"] = conn
        try:
            written = command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id,
                                       process_revision_directives=keep_or_skip)
        finally:
            cfg.attributes.pop("connection", None)
            conn.rollback()
    return _written(written, log, differences)


def _written(result: Any, log: Any, differences: list[str]) -> Path | None:
    script = result[0] if isinstance(result, list) and result else result
    if not script:
        log.info("migrate.revision_empty", hint="the models match the database: nothing to generate; for a data "
                 "migration write one by hand with `jarlpm migrate revision -m MSG` (without --autogenerate)")
        return None
    path = Path(script.path)
    log.info("migrate.revision_created", revision=script.revision, path=str(path), operations=differences,
             hint="review the file (autogenerate misses renames and data changes), then commit it")
    return path


def merge(log: Any, message: str) -> Path | None:
    """A merge revision joining every head (no database needed)."""
    cfg = alembic_config()
    script = script_directory(cfg)
    heads = sorted(script.get_heads())
    if len(heads) < 2:
        log.info("migrate.merge_unneeded", heads=heads)
        return None
    written = command.merge(cfg, revisions=heads, message=message, rev_id=next_revision_id(script, message))
    return _written(written, log, [f"merges {', '.join(heads)}"])

"""Drift: do the models still match the migrated database?  Alembic's autogenerate comparison, in-process.

The deployment guide's "column does not exist" comes from a model changed without a
migration: the server starts and fails on the first request that touches the column.
Comparing after the migrate phase turns that into a refusal to start (exit 65) that
lists the differences.  The comparison runs ``env.py`` on a handed-over connection, so
it sees exactly what ``alembic check`` sees: the same models, the same
``include_object`` (the supervisor's ``jarlpm_*`` tables are ignored) and the same
``compare_type``/``compare_server_default`` options.  A fingerprint of the code and of
the schema's catalog lets a restart of the same release skip the comparison (its cost
is mostly importing the models and Alembic's comparison machinery).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from supervisor.contract.exitcodes import ExitCode, SupervisorError
from supervisor.migrations import fingerprint

# Enough to act on; a model that lost every table would otherwise flood one event.
MAX_LISTED = 50


def compare(cfg: Config, script: ScriptDirectory, conn: sa.Connection, within: bool = False) -> list[Any]:
    """Alembic's raw differences between ``env.py``'s target metadata and the database.

    ``within``: compare inside the caller's open transaction (``jarlpm check
    --rehearse`` compares the models with migrations it will roll back) and leave it open.
    """
    found: list[Any] = []

    def collect(_rev: Any, context: MigrationContext) -> list[Any]:
        found.extend(compare_metadata(context, context.opts["target_metadata"]))
        return []

    if conn.in_transaction() and not within:
        conn.commit()
    cfg.attributes["connection"] = conn
    try:
        with EnvironmentContext(cfg, script, fn=collect, as_sql=False):
            script.run_env()
    finally:
        cfg.attributes.pop("connection", None)
        if not within:
            # Reflection ran in a read-only transaction: end it, nothing to keep.
            conn.rollback()
    return found


def code_digest(cfg: Config, script: ScriptDirectory) -> str | None:
    """The code's fingerprint (see ``fingerprint.code_digest``), with the roots Alembic resolved."""
    return fingerprint.code_digest(Path(script.dir), cfg.get_prepend_sys_paths_list() or [])


def catalog_digest(conn: sa.Connection) -> str:
    """A hash of the current schema as the comparison would reflect it (one query, a few ms)."""
    value = str(conn.execute(sa.text(fingerprint.CATALOG_SQL)).scalar_one())
    conn.rollback()
    return value


def _table_of(obj: Any) -> str:
    table = getattr(obj, "table", None)
    return str(getattr(table, "name", "?"))


def _side(op: str) -> str:
    return "in the models, missing in the database" if op.startswith("add") else \
        "in the database, not in the models"


def describe(diff: Any) -> str:
    """One difference as a sentence naming the object and which side has it.

    ``compare_metadata`` yields tuples (``("add_column", schema, table, Column)``) and,
    for column changes, lists of ``("modify_…", schema, table, column, existing, db, model)``.
    """
    if isinstance(diff, list):
        return "; ".join(describe(d) for d in diff)
    op = str(diff[0])
    if op in ("add_table", "remove_table"):
        return f"table {diff[1].name}: {_side(op)}"
    if op in ("add_column", "remove_column"):
        return f"column {diff[2]}.{diff[3].name}: {_side(op)}"
    if op in ("add_index", "remove_index", "add_constraint", "remove_constraint", "add_fk", "remove_fk"):
        kind = op.split("_", 1)[1].replace("fk", "foreign key")
        name = getattr(diff[1], "name", None) or "(unnamed)"
        return f"{kind} {name} on {_table_of(diff[1])}: {_side(op)}"
    if op.startswith("modify_"):
        what = op.removeprefix("modify_").replace("_", " ")
        _, _schema, table, column, _existing, in_db, in_models = diff
        return f"column {table}.{column}: {what} is {_show(in_db)} in the database, {_show(in_models)} in the models"
    return repr(diff)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "nullable" if value else "NOT NULL"
    if value is None:
        return "none"
    text = getattr(value, "arg", value)
    return str(getattr(text, "text", text))


def drift_error(differences: list[Any], revision: str) -> SupervisorError:
    """The exit-65 failure listing the differences, with the command that fixes them."""
    described = [describe(d) for d in differences]
    shown = described[:MAX_LISTED]
    more = len(described) - len(shown)
    return SupervisorError(
        f"the models differ from the database at revision {revision} in {len(described)} place(s)"
        + (f" (first {MAX_LISTED} listed)" if more else ""),
        ExitCode.DATAERR,
        "a model changed without a migration (the guide's \"column does not exist\"): create one with "
        "`jarlpm migrate revision --autogenerate -m \"describe the change\"`, review it, commit it and "
        "redeploy; if the database was changed by hand, revert that change instead",
        revision=revision, differences=shown,
    )

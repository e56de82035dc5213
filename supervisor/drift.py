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

import hashlib
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

import alembic

from .exitcodes import ExitCode, SupervisorError

# Enough to act on; a model that lost every table would otherwise flood one event.
MAX_LISTED = 50


def compare(cfg: Config, script: ScriptDirectory, conn: sa.Connection) -> list[Any]:
    """Alembic's raw differences between ``env.py``'s target metadata and the database."""
    found: list[Any] = []

    def collect(_rev: Any, context: MigrationContext) -> list[Any]:
        found.extend(compare_metadata(context, context.opts["target_metadata"]))
        return []

    if conn.in_transaction():
        conn.commit()
    cfg.attributes["connection"] = conn
    try:
        with EnvironmentContext(cfg, script, fn=collect, as_sql=False):
            script.run_env()
    finally:
        cfg.attributes.pop("connection", None)
        # Reflection ran in a read-only transaction: end it, nothing to keep.
        conn.rollback()
    return found


# What the comparison looks at, as PostgreSQL's catalog describes it, for the current
# schema (the supervisor's jarlpm_* tables excepted): tables and views, columns with
# their types, nullability, defaults, identity and comments, constraints, indexes, enums.
_CATALOG = r"""
SELECT md5(coalesce(string_agg(item, E'\n' ORDER BY item), '')) FROM (
  SELECT format('rel %s %s %s', c.relname, c.relkind, obj_description(c.oid, 'pg_class')) AS item
    FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace
     AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relname NOT LIKE 'jarlpm\_%'
  UNION ALL
  SELECT format('col %s.%s %s %s %s %s %s %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
                col_description(c.oid, a.attnum))
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
   WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
     AND a.attnum > 0 AND NOT a.attisdropped AND c.relname NOT LIKE 'jarlpm\_%'
  UNION ALL
  SELECT format('con %s %s %s', c.relname, k.conname, pg_get_constraintdef(k.oid))
    FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
   WHERE k.connamespace = current_schema()::regnamespace AND c.relname NOT LIKE 'jarlpm\_%'
  UNION ALL
  SELECT format('idx %s', pg_get_indexdef(i.indexrelid))
    FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
   WHERE c.relnamespace = current_schema()::regnamespace AND c.relname NOT LIKE 'jarlpm\_%'
  UNION ALL
  SELECT format('enum %s %s %s', t.typname, e.enumsortorder, e.enumlabel)
    FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
   WHERE t.typnamespace = current_schema()::regnamespace
) AS catalog
"""

# Directories too big to be the models' (a prepend_sys_path of "." would hash a whole tree).
_SKIPPED_DIRS = {".git", ".venv", "venv", "node_modules", "site-packages", "__pycache__"}
_MAX_FILES = 2000


def code_digest(cfg: Config, script: ScriptDirectory) -> str | None:
    """A hash of what decides the comparison on the code's side: env.py, the revisions, the models.

    The models live somewhere on alembic.ini's ``prepend_sys_path`` (backend/): every
    Python file there is hashed, with the SQLAlchemy and Alembic versions.  None when
    the tree is too large to hash cheaply (then the comparison always runs).
    """
    digest = hashlib.sha256(f"sqlalchemy {sa.__version__} alembic {alembic.__version__}".encode())
    roots = [Path(script.dir), *(Path(p) for p in cfg.get_prepend_sys_paths_list() or [])]
    count = 0
    for number, root in enumerate(roots):
        for path in sorted(root.rglob("*.py")):
            relative = path.relative_to(root)
            if _SKIPPED_DIRS.intersection(relative.parts):
                continue
            count += 1
            if count > _MAX_FILES:
                return None
            # Relative names: replicas with the same code in other directories agree.
            digest.update(f"\0{number}/{relative}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def catalog_digest(conn: sa.Connection) -> str:
    """A hash of the current schema as the comparison would reflect it (one query, a few ms)."""
    value = str(conn.execute(sa.text(_CATALOG)).scalar_one())
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

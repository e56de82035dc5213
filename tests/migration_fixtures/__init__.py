"""Throwaway copies of the migrations with extra revisions (failing, slow, locking, branching) for tests.

``make_alembic`` copies ``alembic/`` (env.py included, as the other engineer keeps
it) and writes an ``alembic.ini`` pointing at the copy; the supervisor and the CLI
use it when ``JARLPM_ALEMBIC_INI`` names it.  Extra revisions come from
``revisions/``, chained after the repository's head (or all on it, for branches).
``prepend_sys_path`` is absolute, so env.py finds the models from a temp directory;
``drifted_backend`` gives a copy of the backend whose models gained a column that no
migration creates (the deployment guide's "column does not exist").
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

REPO = Path(__file__).resolve().parents[2]
REVISIONS = Path(__file__).resolve().parent / "revisions"
DRIFT_COLUMN = "drift_probe"


def repo_head() -> str:
    """The repository's own head revision (fixtures chain after it, whatever it is)."""
    heads = ScriptDirectory.from_config(Config(str(REPO / "alembic.ini"))).get_heads()
    assert len(heads) == 1, heads
    return heads[0]


def make_alembic(base: Path, *extra: str, branch: bool = False, backend: Path | None = None) -> Path:
    """Copy the migrations under ``base`` with the ``extra`` fixture revisions; return the ini's path.

    Revisions are chained in the order given, after the repository's head; with
    ``branch`` each one starts from that head instead (several heads).
    """
    target = base / "alembic"
    shutil.copytree(REPO / "alembic", target, ignore=shutil.ignore_patterns("__pycache__"))
    down = repo_head()
    for name in extra:
        text = (REVISIONS / f"{name}.py").read_text()
        text = text.replace('"__DOWN__"', repr(down))
        (target / "versions" / f"{name}.py").write_text(text)
        if not branch:
            down = _revision_id(text)
    ini = (REPO / "alembic.ini").read_text()
    ini = re.sub(r"(?m)^script_location\s*=.*$", f"script_location = {target}", ini)
    ini = re.sub(r"(?m)^prepend_sys_path\s*=.*$", f"prepend_sys_path = {backend or REPO / 'backend'}", ini)
    path = base / "alembic.ini"
    path.write_text(ini)
    return path


def _revision_id(text: str) -> str:
    match = re.search(r'(?m)^revision(?::\s*str)?\s*=\s*"([^"]+)"', text)
    assert match, "fixture revision without a revision id"
    return match.group(1)


def drifted_backend(base: Path) -> Path:
    """A copy of backend/ whose ``epics`` model has a column no migration creates."""
    target = base / "backend"
    shutil.copytree(REPO / "backend", target, ignore=shutil.ignore_patterns("__pycache__"))
    models = target / "jarlpm" / "models.py"
    models.write_text(
        models.read_text()
        + "\n\n# Test fixture: a model change without a migration.\n"
        + f'Base.metadata.tables["epics"].append_column(sa.Column("{DRIFT_COLUMN}", sa.Integer(), nullable=True))\n'
    )
    return target


# -- helpers shared by the migration tests --------------------------------------------------


def query(url: str, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Run one statement on ``url`` (autocommit) and return its rows."""
    import psycopg2

    conn = psycopg2.connect(url, connect_timeout=10)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql, params or None)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def revisions_in(url: str) -> set[str]:
    """The database's alembic_version rows (empty when it was never migrated)."""
    if not query(url, "SELECT to_regclass('alembic_version')")[0][0]:
        return set()
    return {str(row[0]) for row in query(url, "SELECT version_num FROM alembic_version")}


def tables_in(url: str) -> set[str]:
    return {str(r[0]) for r in query(url, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}


def stamp_of(url: str) -> str | None:
    if not query(url, "SELECT to_regclass('jarlpm_environment')")[0][0]:
        return None
    rows = query(url, "SELECT environment FROM jarlpm_environment")
    return str(rows[0][0]) if rows else None

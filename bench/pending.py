"""A copy of the repo's migrations with N trivial revisions on top of head: "a deploy that migrates".

Each revision creates, fills and drops a small table: real DDL in its own
transaction, but nothing left behind that the models do not describe (the
supervisor refuses to start on model drift, rightly).

The copy's ``alembic.ini`` keeps importing the models from the repo's backend, so
``alembic -c <copy>`` (the shell chain) and ``JARLPM_ALEMBIC_INI=<copy>`` (the
supervisor) see the same history.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from bench.paths import REPO

REVISION = '''"""Bench revision {index}: create a small table, write to it, drop it (real DDL, no model drift).

Revision ID: {revision}
Revises: {down}
"""

import sqlalchemy as sa

from alembic import op

revision = {revision!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "bench_pending_{index:02d}",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("note", sa.Text(), nullable=True),
    )
    op.bulk_insert(table, [{{"id": 1, "note": "revision {index}"}}])
    op.drop_table("bench_pending_{index:02d}")


def downgrade() -> None:
    pass
'''


def repo_head() -> str:
    head = ScriptDirectory.from_config(Config(str(REPO / "alembic.ini"))).get_current_head()
    if head is None:
        raise RuntimeError("the repo's migrations have no head")
    return head


def make_pending_tree(dest: Path, count: int) -> Path:
    """Write the copy under ``dest`` with ``count`` revisions past head; return its alembic.ini."""
    shutil.copytree(REPO / "alembic", dest / "alembic", ignore=shutil.ignore_patterns("__pycache__"))
    ini = (REPO / "alembic.ini").read_text()
    ini = re.sub(r"^prepend_sys_path\s*=.*$", f"prepend_sys_path = {REPO / 'backend'}", ini, flags=re.M)
    (dest / "alembic.ini").write_text(ini)
    down = repo_head()
    for index in range(1, count + 1):
        revision = f"bench_p{index:02d}"
        text = REVISION.format(index=index, revision=revision, down=down)
        (dest / "alembic" / "versions" / f"{revision}.py").write_text(text)
        down = revision
    return dest / "alembic.ini"

"""A private copy of the repo's migrations that a test can extend with revisions of its own."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

from procs import REPO


def copy_alembic(tmp_path: Path) -> Path:
    """Copy alembic/ and alembic.ini to ``tmp_path``; the models still come from the repo."""
    target = tmp_path / "migrations"
    shutil.copytree(REPO / "alembic", target / "alembic", ignore=shutil.ignore_patterns("__pycache__"))
    ini = (REPO / "alembic.ini").read_text().replace("%(here)s/backend", str(REPO / "backend"))
    (target / "alembic.ini").write_text(ini)
    return target / "alembic.ini"


def head_of(ini: Path) -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory.from_config(Config(str(ini))).get_current_head())


def add_revision(ini: Path, revision: str, upgrade_sql: str, down_revision: str | None = None) -> str:
    """Append a revision running ``upgrade_sql`` on top of the current head; return its id."""
    down = down_revision or head_of(ini)
    body = textwrap.dedent(f'''
        """Test revision {revision}."""
        from alembic import op

        revision = "{revision}"
        down_revision = "{down}"
        branch_labels = None
        depends_on = None


        def upgrade() -> None:
            op.execute({upgrade_sql!r})


        def downgrade() -> None:
            pass
        ''')
    (ini.parent / "alembic" / "versions" / f"{revision}.py").write_text(body)
    return revision

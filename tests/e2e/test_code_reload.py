"""RELOAD in development: an edited file is served by new processes; a broken edit keeps the old ones."""

from __future__ import annotations

import json
from pathlib import Path

from alembic_copy import add_revision, copy_alembic
from loadgen import Load
from procs import APPS, base_env, running, wait_for

VERSION_ROUTE = '''

@app.get("/version")
async def version() -> dict[str, str]:
    return {{"version": "{version}"}}
'''


def write_app(path: Path, version: str) -> None:
    path.write_text((APPS / "sampleapp.py").read_text() + VERSION_ROUTE.format(version=version))


class TestCodeReload:
    """With JARLPM_ENV=development, RELOAD is on: edits replace the processes through the reload."""

    def test_an_edit_is_served_and_a_syntax_error_keeps_the_old_code(self, app_db: str, tmp_path: Path) -> None:
        """Edit: child.recycling (code_changed), the new code answers; broken edit: reload_failed, old code serves."""
        app_dir = tmp_path / "app"
        app_dir.mkdir()
        source = app_dir / "devapp.py"
        write_app(source, "v1")
        env = base_env(app_db, JARLPM_ENV="development", WORKERS="1", JARLPM_APP="devapp:app",
                       JARLPM_APP_DIR=str(app_dir))
        with running(env) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            watching = sup.wait_event("supervisor.watching", timeout=10)
            assert str(app_dir) in watching["paths"]
            with Load(sup.port, path="/pid", threads=2, max_seconds=90) as load:
                write_app(source, "v2")
                sup.wait_event("supervisor.reloaded", timeout=60)
                status, _, body = sup.get("/version")
                assert status == 200 and json.loads(body) == {"version": "v2"}
                recycling = sup.find("child.recycling")
                assert recycling and recycling[0]["reason"] == "code_changed"
                assert any("devapp.py" in path for path in recycling[0]["changed"])

                source.write_text(source.read_text() + "\ndef broken(:\n")
                failed = sup.wait_event("supervisor.reload_failed", timeout=60)
                assert failed["reason"] == "new_process_died"
                assert any("SyntaxError" in line for line in failed["stderr_tail"])
                before = load.count()
                wait_for(lambda: load.count() > before + 20, 30, "requests after the failed reload")
                result = load.stop()
            status, _, body = sup.get("/version")
            assert status == 200 and json.loads(body) == {"version": "v2"}
            assert result.refused == 0 and result.failed == 0, result.errors[:5]
            assert not sup.find("child.crash_loop") and sup.proc.poll() is None

    def test_a_new_revision_is_applied_before_the_processes_are_replaced(self, app_db: str, tmp_path: Path) -> None:
        """A revision file added to the watched migrations: migrate.applied, then the reload completes."""
        ini = copy_alembic(tmp_path)
        env = base_env(app_db, JARLPM_ENV="development", JARLPM_ALEMBIC_INI=str(ini),
                       JARLPM_APP="sampleapp:app", JARLPM_APP_DIR=str(APPS))
        with running(env) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            watching = sup.wait_event("supervisor.watching", timeout=10)
            assert str(ini.parent / "alembic") in watching["paths"]
            revision = add_revision(ini, "0100_dev_touch", "UPDATE epics SET title = title")
            sup.wait_event("supervisor.reloaded", timeout=60)
            applied = sup.find("migrate.applied")
            assert applied[-1]["revisions"] == [revision]
            assert sup.find("child.recycling", reason="code_changed")

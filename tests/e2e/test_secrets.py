"""Secrets stay secret: a URL read from a file never appears in any process's environment."""

from __future__ import annotations

import signal
from pathlib import Path

from migration_fixtures import make_alembic
from pgfixtures import APP_PASSWORD
from procs import APPS, base_env, running, wait_for

from supervisor.system import reaper


def environ_of(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def tree(root: int) -> list[int]:
    return [root, *reaper.descendants(root)]


class TestUrlFromFile:
    """DATABASE_URL_FILE / DATABASE_DIRECT_URL_FILE: handed to children by descriptor, not by environment."""

    def test_no_process_environment_holds_the_password(self, app_db: str, tmp_path: Path) -> None:
        """/proc/*/environ of the supervisor, the phase process and every server process: no password."""
        secret = tmp_path / "database-url"
        secret.write_text(app_db + "\n")
        secret.chmod(0o600)
        ini = make_alembic(tmp_path, "x_sleeps")
        env = base_env(None, DATABASE_URL_FILE=str(secret), DATABASE_DIRECT_URL_FILE=str(secret), WORKERS="2",
                       JARLPM_APP="sampleapp:app", JARLPM_APP_DIR=str(APPS), JARLPM_ALEMBIC_INI=str(ini),
                       TEST_MIGRATION_SLEEP="2")
        password = APP_PASSWORD.encode()
        seen: set[int] = set()
        with running(env) as sup:
            def during_migration() -> bool:
                pids = tree(sup.pid)
                seen.update(pids)
                for pid in pids:
                    assert password not in environ_of(pid), f"pid {pid} has the password in its environment"
                return bool(sup.find("phase.started", phase="migrate")) and len(pids) >= 4
            # The supervisor, its two prespawned server processes and the phase process, all at once.
            wait_for(during_migration, 60, "the phase process and the server processes running")
            sup.wait_event("supervisor.ready", timeout=90)
            status, _, body = sup.get("/api/health/ready")
            assert status == 200, body
            for pid in tree(sup.pid):
                seen.add(pid)
                assert password not in environ_of(pid), f"pid {pid} has the password in its environment"
            sup.signal(signal.SIGTERM)
            assert sup.wait_exit(60) == 0
        assert len(seen) >= 4
        assert not [line for line in sup.lines if APP_PASSWORD in line]

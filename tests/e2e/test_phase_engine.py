"""The phase engine across the process boundary: resets, parent death, failures that name their phase.

Each test runs a real supervisor whose database phases run in its phase process
(``supervisor.supervision.phase_process``), and looks at what a user would see: the
events, the exit code, the database.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from migration_fixtures import make_alembic, query, repo_head, revisions_in
from procs import APPS, Supervisor, base_env, http_get, pids_alive, running, wait_for

from supervisor.contract.exitcodes import ExitCode
from supervisor.migrations import lock
from supervisor.system import reaper


def sample_env(url: str, ini: Path | None = None, **extra: str) -> dict[str, str]:
    env = base_env(url, JARLPM_APP="sampleapp:app", JARLPM_APP_DIR=str(APPS), **extra)
    if ini is not None:
        env["JARLPM_ALEMBIC_INI"] = str(ini)
    return env


def phase_process_of(sup: Supervisor) -> int | None:
    """The pid of the supervisor's phase process, if one runs."""
    for pid, parent in reaper.parent_map().items():
        if parent != sup.pid:
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"supervisor.supervision.phase_process" in cmdline:
            return pid
    return None


def sleeping_backend(url: str) -> int | None:
    rows = query(url, "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                      " AND state = 'active' AND query ILIKE '%pg_sleep%' AND pid <> pg_backend_pid()")
    return int(rows[0][0]) if rows else None  # type: ignore[arg-type]


def migration_lock_held(url: str) -> bool:
    return bool(query(url, "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = %s"
                           " AND objid = %s", *lock.LOCK_KEYS))


class TestResetOncePerStart:
    """DB_RESET_ON_STARTUP drops the development database at start-up, never on a reload."""

    def test_reload_keeps_the_rows_written_since_the_start(self, app_db: str) -> None:
        """A row written through the API survives SIGHUP: the reload's migration does not reset."""
        env = base_env(app_db, JARLPM_ENV="development", DB_RESET_ON_STARTUP="true", RELOAD="false")
        with running(env) as sup:
            sup.wait_event("supervisor.ready", timeout=90)
            status, _, body = http_get(sup.port, "/api/epics", method="POST",
                                       body=json.dumps({"title": "written after the start"}).encode())
            assert status == 201, body
            sup.signal(signal.SIGHUP)
            sup.wait_event("supervisor.reloaded", timeout=90)
            assert len(sup.find("db.reset")) == 1, "reset at start-up only"
            assert query(app_db, "SELECT title FROM epics") == [("written after the start",)]


class TestSupervisorKilled:
    """SIGKILL of the supervisor alone: its phase process ends too, and leaves the database clean."""

    def test_phase_process_ends_and_releases_the_lock(self, app_db: str, tmp_path: Path) -> None:
        """Within seconds: no phase process, no migration lock, no running statement, the last good revision."""
        ini = make_alembic(tmp_path, "x_sleeps")
        sup = Supervisor(sample_env(app_db, ini, TEST_MIGRATION_SLEEP="60"))
        phase_pid = None
        try:
            wait_for(lambda: sleeping_backend(app_db), 60, "the slow migration to start")
            phase_pid = phase_process_of(sup)
            assert phase_pid is not None and migration_lock_held(app_db)
            os.kill(sup.pid, signal.SIGKILL)  # the supervisor alone, not its process group
            sup.wait_exit(10)
            wait_for(lambda: not pids_alive([phase_pid]), 10, "the phase process to end")
            wait_for(lambda: not migration_lock_held(app_db), 10, "the migration lock to be released")
            wait_for(lambda: sleeping_backend(app_db) is None, 10, "the migration's statement to be cancelled")
            assert revisions_in(app_db) == {repo_head()}
        finally:
            if phase_pid is not None and pids_alive([phase_pid]):
                os.kill(phase_pid, signal.SIGKILL)
            sup.kill()


class TestFailuresNameTheirPhase:
    """When the phase process itself dies, phase.failed still says which phase."""

    def test_phase_process_killed_during_migrate(self, app_db: str, tmp_path: Path) -> None:
        """kill -9 of the phase process mid-migration: phase.failed names migrate; exit 70; nothing served."""
        ini = make_alembic(tmp_path, "x_sleeps")
        with running(sample_env(app_db, ini, TEST_MIGRATION_SLEEP="60")) as sup:
            wait_for(lambda: sleeping_backend(app_db), 60, "the slow migration to start")
            phase_pid = phase_process_of(sup)
            assert phase_pid is not None
            os.kill(phase_pid, signal.SIGKILL)
            assert sup.wait_exit(30) == ExitCode.SOFTWARE
        failed = sup.find("phase.failed")
        assert [f["phase"] for f in failed] == ["migrate"], sup.dump()
        assert failed[0]["exit_code"] == 70 and "SIGKILL" in failed[0]["error"]
        assert not sup.find("supervisor.ready")

    def test_phase_process_crash_during_migrate(self, app_db: str, tmp_path: Path) -> None:
        """An unexpected exception in the phase process: supervisor.crashed, then phase.failed naming migrate."""
        ini = make_alembic(tmp_path, "x_crashes")
        with running(sample_env(app_db, ini)) as sup:
            assert sup.wait_exit(60) == ExitCode.SOFTWARE
        crashed = sup.find("supervisor.crashed")
        assert crashed and "x_crashes" in crashed[0]["error"], sup.dump()
        failed = sup.find("phase.failed")
        assert [f["phase"] for f in failed] == ["migrate"] and failed[0]["exit_code"] == 70
        assert not sup.find("supervisor.ready")


class TestShortGracefulTimeout:
    """GRACEFUL_TIMEOUT below one second is a limit, not "no limit"."""

    def test_half_a_second_cuts_a_slow_request(self, app_db: str) -> None:
        """GRACEFUL_TIMEOUT=0.5: a 30 s request in flight is cut soon after SIGTERM; the process exits by itself."""
        with running(sample_env(app_db, GRACEFUL_TIMEOUT="0.5")) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            result: dict[str, Any] = {}

            def slow() -> None:
                try:
                    result["status"] = http_get(sup.port, "/slow?s=30", timeout=40)[0]
                except OSError as exc:
                    result["error"] = exc
                result["ended"] = time.monotonic()

            thread = threading.Thread(target=slow, daemon=True)
            thread.start()
            wait_for(lambda: json.loads(sup.get("/inflight")[2])["slow"] == 1, 10, "the slow request in flight")
            stopped = time.monotonic()
            sup.signal(signal.SIGTERM)
            assert sup.wait_exit(30) == 0
            thread.join(10)
        assert "ended" in result and result.get("status") != 200, result
        assert result["ended"] - stopped < 4, "cut after about 0.5 s of grace, not served to the end"
        exited = sup.find("child.exited")
        assert exited and all(e.get("signal") is None for e in exited), "uvicorn's own limit, not SIGKILL"

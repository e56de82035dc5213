"""Process-behaviour statements of the design, each proven end to end."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from alembic_copy import add_revision, copy_alembic
from loadgen import Load
from procs import APPS, REPO, Supervisor, base_env, running, wait_for

from supervisor.database.pgcluster import LocalPostgres

SAMPLE = {"JARLPM_APP": "sampleapp:app", "JARLPM_APP_DIR": str(APPS)}


def serving_pids(sup: Supervisor) -> list[int]:
    ready = {e["pid"] for e in sup.find("child.ready")}
    exited = {e["pid"] for e in sup.find("child.exited")}
    return sorted(ready - exited)


class TestReloadWithMigrations:
    """SIGHUP re-runs migrate: new migrations are applied, failing ones keep the old processes."""

    def test_sighup_applies_a_new_migration(self, app_db: str, tmp_path: Path) -> None:
        """A revision added after start is applied on SIGHUP, then fresh processes serve."""
        ini = copy_alembic(tmp_path)
        with running(base_env(app_db, JARLPM_ALEMBIC_INI=str(ini))) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            old = serving_pids(sup)
            new_rev = add_revision(ini, "0100_touch", "UPDATE epics SET title = title")
            sup.signal(signal.SIGHUP)
            sup.wait_event("supervisor.reloaded", timeout=60)
            applied = sup.find("migrate.applied")
            assert applied[-1]["to_revision"] == new_rev and applied[-1]["revisions"] == [new_rev]
            wait_for(lambda: set(old).isdisjoint(serving_pids(sup)), 30, "old processes replaced")
            status, _, body = sup.get("/api/health/ready")
            assert status == 200 and json.loads(body)["schema"] == "at_head"

    def test_sighup_with_failing_migration_keeps_serving(self, app_db: str, tmp_path: Path) -> None:
        """A failing migration on SIGHUP: the event says why; the old processes keep serving."""
        ini = copy_alembic(tmp_path)
        with running(base_env(app_db, JARLPM_ALEMBIC_INI=str(ini))) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            old = serving_pids(sup)
            add_revision(ini, "0100_broken", "SELECT * FROM no_such_table_here")
            with Load(sup.port, path="/api/health", threads=2, max_seconds=60) as load:
                sup.signal(signal.SIGHUP)
                failed = sup.wait_event("supervisor.reload_failed", timeout=60)
                before = load.count()
                wait_for(lambda: load.count() > before + 20, 30, "requests after the failed reload")
                result = load.stop()
            assert failed["reason"] == "migrate" and "0100_broken" in failed["error"]
            assert "keep serving" in failed["hint"]
            assert result.failed == 0 and result.refused == 0
            assert serving_pids(sup) == old
            assert sup.proc.poll() is None


    def test_sigterm_during_reload_migration(self, app_db: str, tmp_path: Path) -> None:
        """A stop during the reload's migration lets it finish, then drains and exits 0."""
        ini = copy_alembic(tmp_path)
        with running(base_env(app_db, JARLPM_ALEMBIC_INI=str(ini))) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            add_revision(ini, "0100_slow", "SELECT pg_sleep(2)")
            sup.signal(signal.SIGHUP)
            wait_for(lambda: _running_query(app_db, "pg_sleep(2)"), 30, "the reload's migration running")
            assert sup.get("/api/health")[0] == 200  # still serving while it migrates
            sup.signal(signal.SIGTERM)
            assert sup.wait_exit(60) == 0
            assert sup.find("migrate.step", revision="0100_slow"), sup.dump()
            assert not sup.find("supervisor.reloaded")
            assert all(e.get("hint") == "stopped by the supervisor" for e in sup.find("child.exited"))


def _running_query(url: str, fragment: str) -> bool:
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()",
                        (f"%{fragment}%",))
            return bool(cur.fetchone()[0])
    finally:
        conn.close()


class TestRollingDeploy:
    """A database migrated by a newer release is ahead of this code: warn and start (or refuse)."""

    def test_database_ahead_warns_and_starts(self, app_db: str, tmp_path: Path) -> None:
        """The old code starts against a newer schema and logs migrate.database_ahead."""
        newer = copy_alembic(tmp_path / "newer")
        add_revision(newer, "0200_newer_release", "UPDATE epics SET title = title")
        with running(base_env(app_db, JARLPM_ALEMBIC_INI=str(newer), **SAMPLE)) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            sup.signal(signal.SIGTERM)
            assert sup.wait_exit(30) == 0
        with running(base_env(app_db, **SAMPLE)) as old_release:
            ahead = old_release.wait_event("migrate.database_ahead", timeout=60)
            assert ahead["database_revision"] == ["0200_newer_release"] and ahead["level"] == "warning"
            old_release.wait_event("supervisor.ready", timeout=60)
        with running(base_env(app_db, MIGRATION_DATABASE_AHEAD="refuse", **SAMPLE)) as strict:
            assert strict.wait_exit(60) == 65
            assert strict.find("phase.failed")[0]["phase"] == "migrate"


class TestDatabaseOutage:
    """While the database is down requests get 503 with Retry-After; it all recovers by itself."""

    def test_outage_gives_503_then_recovers_without_restart(self, own_cluster: LocalPostgres) -> None:
        """No 500, no server restart, no supervisor restart across a database restart."""
        url = own_cluster.create_database("outage", owner="outage_app", owner_password="outage-pw")
        with running(base_env(url)) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            assert sup.get("/api/epics")[0] == 200
            own_cluster.stop()
            status, headers, _ = sup.get("/api/epics")
            assert status == 503 and "retry-after" in headers
            assert sup.get("/api/health")[0] == 200
            assert sup.get("/api/health/ready")[0] == 503
            own_cluster.start()
            wait_for(lambda: sup.get("/api/epics")[0] == 200, 30, "recovery")
            assert sup.get("/api/health/ready")[0] == 200
            assert not sup.find("child.exited")
            statuses = [e.get("status") for e in sup.find("http.access")]
            assert 500 not in statuses


class TestLogStream:
    """One JSON stream that a slow reader cannot use to stall the supervisor."""

    def test_unread_stdout_does_not_stall_the_loop(self, app_db: str, tmp_path: Path) -> None:
        """With nobody reading stdout, the supervisor still restarts, answers status and stops."""
        env = base_env(app_db, JARLPM_STATE_DIR=str(tmp_path / "run"), LOG_LEVEL="debug", **SAMPLE)
        read_end, write_end = os.pipe()
        proc = subprocess.Popen([sys.executable, "-m", "supervisor", "run"], env=env, cwd=REPO,
                                stdout=write_end, stderr=subprocess.DEVNULL, start_new_session=True)
        os.close(write_end)
        try:
            status_cmd = [sys.executable, "-m", "supervisor", "status", "--json"]

            def ready() -> bool:
                out = subprocess.run(status_cmd, env=env, capture_output=True, text=True, timeout=30)
                return out.returncode == 0 and json.loads(out.stdout)["ready"]

            wait_for(ready, 60, "the supervisor ready (status socket)", interval=0.3)
            # Fill the pipe: the server logs every request, and nobody reads.
            with Load(int(env["PORT"]), path="/pid", threads=4, max_seconds=15, max_requests=3000) as load:
                wait_for(lambda: load.count() >= 3000 or not load._threads[0].is_alive(), 30, "load done")
            out = subprocess.run(status_cmd, env=env, capture_output=True, text=True, timeout=30)
            assert out.returncode == 0 and json.loads(out.stdout)["state"] == "running"
            os.kill(proc.pid, signal.SIGTERM)
            assert proc.wait(60) == 0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            os.close(read_end)

    def test_console_format_for_people(self, app_db: str) -> None:
        """LOG_FORMAT=console prints readable lines, not JSON, for the supervisor and the server."""
        with running(base_env(app_db, LOG_FORMAT="console", **SAMPLE)) as sup:
            wait_for(lambda: any("supervisor.ready" in line for line in sup.lines), 60, "ready line")
            sup.signal(signal.SIGTERM)
            assert sup.wait_exit(30) == 0
        text = "\n".join(sup.lines)
        assert "phase.completed" in text and "server[" in text
        assert not any(line.startswith("{") for line in sup.lines)


class TestListening:
    """The supervisor binds IPv6 too, and hands the right socket family to the servers."""

    @pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
    def test_ipv6_loopback(self, app_db: str) -> None:
        """HOST=::1 serves over IPv6."""
        try:
            probe = socket.socket(socket.AF_INET6)
            probe.bind(("::1", 0))
            probe.close()
        except OSError:
            pytest.skip("IPv6 loopback unavailable here")
        env = base_env(app_db, HOST="::1", **SAMPLE)
        with running(env) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            conn = socket.create_connection(("::1", sup.port), timeout=10)
            conn.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
            conn.close()
            assert data.startswith(b"HTTP/1.1 200")

    def test_port_in_use_is_a_config_error(self, app_db: str) -> None:
        """A taken port is reported in one event with the fix, exit 78, before any phase runs."""
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        env = base_env(app_db, PORT=str(blocker.getsockname()[1]), **SAMPLE)
        try:
            with running(env) as sup:
                assert sup.wait_exit(30) == 78
                failed = sup.find("phase.failed")
                assert len(failed) == 1 and "PORT" in failed[0]["hint"]
                assert failed[0]["phase"] == "validate_env"
                assert not sup.find("phase.started", phase="wait_for_db")
        finally:
            blocker.close()


class TestStatementTimeout:
    """DB_STATEMENT_TIMEOUT and DB_IDLE_IN_TRANSACTION_TIMEOUT reach the server's connections."""

    def test_timeouts_applied_to_server_connections(self, app_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """The engine's sessions carry the configured timeouts."""
        sys.path.insert(0, str(REPO / "backend"))
        from jarlpm.db import create_db_engine
        from jarlpm.settings import Settings as BackendSettings

        monkeypatch.setenv("DATABASE_URL", app_db)
        monkeypatch.setenv("DB_STATEMENT_TIMEOUT", "2.5")
        monkeypatch.setenv("DB_IDLE_IN_TRANSACTION_TIMEOUT", "7")
        engine = create_db_engine(BackendSettings.from_env())
        try:
            with engine.connect() as conn:
                assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "2500ms"
                assert conn.exec_driver_sql("SHOW idle_in_transaction_session_timeout").scalar() == "7s"
                with pytest.raises(Exception, match="statement timeout"):
                    conn.exec_driver_sql("SELECT pg_sleep(5)")
        finally:
            engine.dispose()


def _status(sup: Supervisor) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-m", "supervisor", "status", "--json"], env=sup.env,
                         capture_output=True, text=True, timeout=30)
    return json.loads(out.stdout) if out.returncode == 0 else {}


class TestReloadWithBrokenCode:
    """A reload whose new code cannot start keeps the old processes serving, and can be retried."""

    def test_new_code_fails_to_import(self, app_db: str, tmp_path: Path) -> None:
        """The new process dies at import: reload_failed with its traceback; old pids serve; no crash loop."""
        app_dir = tmp_path / "app"
        app_dir.mkdir()
        (app_dir / "flipapp.py").write_text((APPS / "sampleapp.py").read_text())
        env = base_env(app_db, JARLPM_APP="flipapp:app", JARLPM_APP_DIR=str(app_dir), CRASH_LOOP_LIMIT="2")
        with running(env) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            old = serving_pids(sup)
            (app_dir / "flipapp.py").write_text("import not_a_real_module_jarlpm\n")
            for attempt in range(1, 4):
                sup.signal(signal.SIGHUP)
                wait_for(lambda n=attempt: len(sup.find("supervisor.reload_failed")) >= n, 60, "the reload to fail")
                # The reload ends when its migration does; then SIGHUP is taken again.
                wait_for(lambda n=attempt: len(sup.find("phase.completed", phase="migrate")) > n, 60, "its migration")
                wait_for(lambda: _status(sup)["state"] == "running", 30, "the reload to end")
            failed = sup.find("supervisor.reload_failed")[0]
            assert failed["reason"] == "new_process_died"
            assert any("not_a_real_module_jarlpm" in line for line in failed["stderr_tail"])
            assert serving_pids(sup) == old and sup.get("/pid")[0] == 200
            assert not sup.find("child.crash_loop") and sup.proc.poll() is None

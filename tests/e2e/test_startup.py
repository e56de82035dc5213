"""The foundation end to end: phases in order, exit codes, redaction, the start script, dev mode."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pgfixtures import APP_PASSWORD
from procs import APPS, REPO, base_env, http_get, running, wait_for

from supervisor.database.pgcluster import LocalPostgres, free_port

PHASES = ["validate_env", "wait_for_db", "migrate", "warm_pool"]
SAMPLE = {"JARLPM_APP": "sampleapp:app", "JARLPM_APP_DIR": str(APPS)}


def all_json(lines: list[str]) -> bool:
    for line in lines:
        value = json.loads(line)
        assert isinstance(value, dict), line
        for key in ("timestamp", "level", "event", "source", "pid"):
            assert key in value, f"{key} missing in {line}"
    return True


class TestStartScript:
    """scripts/start.sh runs the phases in order, serves, and stops with exit 0 on SIGTERM."""

    def test_fresh_database_phases_then_serve_then_stop(self, app_db: str) -> None:
        """Logs the four phases in order, then child.spawned; every line is JSON; SIGTERM exits 0."""
        env = base_env(app_db, VIRTUAL_ENV=str(Path(sys.executable).parent.parent))
        with running(env, command=[str(REPO / "scripts" / "start.sh")]) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            status, _, body = sup.get("/api/health")
            assert status == 200 and json.loads(body) == {"status": "healthy", "service": "jarlpm"}
            status, _, _ = sup.get("/api/health/ready")
            assert status == 200
            sup.signal(signal.SIGTERM)
            assert sup.wait_exit(30) == 0
            events = sup.events()
            names = [(e["event"], e.get("phase")) for e in events if e["event"].startswith("phase.")]
            assert names == [(kind, phase) for phase in PHASES
                             for kind in ("phase.started", "phase.completed")]
            order = [e["event"] for e in events if e["source"] == "supervisor"]
            last_phase = max(i for i, name in enumerate(order) if name == "phase.completed")
            assert order.index("child.spawned") > last_phase, "phases first, then the server"
            assert sup.find("migrate.applied")[0]["to_revision"]
            assert sup.find("supervisor.stopped")[0]["exit_code"] == 0
            assert all_json(sup.lines)
            assert not sup.stderr_lines, sup.stderr_lines

    def test_no_environment_is_a_json_error(self, tmp_path: Path) -> None:
        """Without a virtualenv or .venv the script says so in one JSON line and exits 78."""
        script_dir = tmp_path / "repo" / "scripts"
        script_dir.mkdir(parents=True)
        target = script_dir / "start.sh"
        target.write_text((REPO / "scripts" / "start.sh").read_text())
        target.chmod(0o755)
        result = subprocess.run([str(target)], env={"PATH": os.environ["PATH"]}, capture_output=True,
                                text=True, timeout=30)
        assert result.returncode == 78
        event = json.loads(result.stdout.strip())
        assert event["event"] == "start.no_environment" and "hint" in event and "T" in event["timestamp"]


class TestValidateEnv:
    """Configuration problems are all reported in one event, exit 78, nothing else touched."""

    def test_missing_url_and_bad_pool_size(self) -> None:
        """Both problems are named in one phase.failed event; no traceback; no later phase."""
        env = base_env(None, DB_POOL_SIZE="abc")
        with running(env) as sup:
            assert sup.wait_exit(30) == 78
            failed = sup.find("phase.failed")
            assert len(failed) == 1 and failed[0]["phase"] == "validate_env"
            variables = {p["variable"] for p in failed[0]["problems"]}
            assert variables == {"DATABASE_URL", "DB_POOL_SIZE"}
            assert failed[0]["hint"]
            assert not sup.find("phase.started", phase="wait_for_db")
            assert not sup.find("child.spawned")
            text = "\n".join(sup.lines + sup.stderr_lines)
            assert "Traceback" not in text
            assert all_json(sup.lines)

    def test_reset_outside_development_refused(self, app_db: str) -> None:
        """DB_RESET_ON_STARTUP=true in production is a configuration error (exit 78)."""
        with running(base_env(app_db, DB_RESET_ON_STARTUP="true")) as sup:
            assert sup.wait_exit(30) == 78
            problem = sup.find("phase.failed")[0]["problems"][0]
            assert problem["variable"] == "DB_RESET_ON_STARTUP"

    def test_typo_gets_did_you_mean(self, app_db: str) -> None:
        """An unknown DB_* variable is warned about with the closest real name."""
        with running(base_env(app_db, DB_POOLSIZE="3", **SAMPLE)) as sup:
            warning = sup.wait_event("config.unknown_variable", timeout=30)
            assert warning["variable"] == "DB_POOLSIZE" and warning["suggestion"] == "DB_POOL_SIZE"

    def test_url_from_file(self, app_db: str, tmp_path: Path) -> None:
        """DATABASE_URL_FILE (a container secret) is read and used."""
        secret = tmp_path / "db_url"
        secret.write_text(app_db + "\n")
        env = base_env(None, DATABASE_URL_FILE=str(secret), **SAMPLE)
        with running(env) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            sup.signal(signal.SIGTERM)
            assert sup.wait_exit(30) == 0
            assert APP_PASSWORD not in "\n".join(sup.lines)


class TestWaitForDatabase:
    """Waits for the database with backoff; gives up clearly on what waiting cannot fix."""

    def test_database_comes_up_late(self, own_cluster: LocalPostgres) -> None:
        """Database down at start and up seconds later: retries, then serves."""
        url = own_cluster.create_database("late", owner="late_app", owner_password="late-pw")
        own_cluster.stop()
        with running(base_env(url, DB_WAIT_TIMEOUT="60", **SAMPLE)) as sup:
            sup.wait_event("db.wait.retry", timeout=30)
            wait_for(lambda: len(sup.find("db.wait.retry")) >= 3, 30, "three retries")
            own_cluster.start()
            sup.wait_event("supervisor.ready", timeout=60)
            retries = sup.find("db.wait.retry")
            assert [r["attempt"] for r in retries] == list(range(1, len(retries) + 1))
            assert all(r["delay_s"] <= 1.0 for r in retries)
            assert sup.get("/api/health")[0] == 200

    def test_unreachable_gives_up_with_69(self) -> None:
        """Nothing listens: exit 69 after DB_WAIT_TIMEOUT, with a hint."""
        url = f"postgresql://u:p@127.0.0.1:{free_port()}/db"
        with running(base_env(url, DB_WAIT_TIMEOUT="2", **SAMPLE)) as sup:
            assert sup.wait_exit(30) == 69
            failed_events = sup.find("phase.failed")
            assert len(failed_events) == 1, "a failure is one event"
            failed = failed_events[0]
            assert failed["phase"] == "wait_for_db" and failed["exit_code"] == 69 and failed["hint"]
            assert not sup.find("child.ready")

    def test_wrong_password_is_77_and_never_logged(self, pg_server: object, app_db: str) -> None:
        """Wrong password: exit 77 at once, with a hint; the password appears nowhere."""
        bad_password = "Wr0ng-Pa55-xyz"
        url = app_db.replace(APP_PASSWORD, bad_password)
        started = time.monotonic()
        with running(base_env(url, **SAMPLE)) as sup:
            assert sup.wait_exit(30) == 77
            elapsed = time.monotonic() - started
            failed = sup.find("phase.failed")[0]
            assert failed["phase"] == "wait_for_db" and "credentials" in failed["hint"]
            text = "\n".join(sup.lines + sup.stderr_lines)
            assert bad_password not in text
            assert not sup.find("db.wait.retry")
            assert elapsed < 30

    def test_missing_database_is_77(self, app_db: str) -> None:
        """A database that does not exist cannot appear by waiting: exit 77."""
        url = app_db.rsplit("/", 1)[0] + "/no_such_database_here"
        with running(base_env(url, **SAMPLE)) as sup:
            assert sup.wait_exit(30) == 77
            assert "does not exist" in sup.find("phase.failed")[0]["hint"]

    def test_stop_while_waiting_exits_0(self) -> None:
        """SIGTERM during the phases is a requested stop: exit 0, no server started."""
        url = f"postgresql://u:p@127.0.0.1:{free_port()}/db"
        with running(base_env(url, DB_WAIT_TIMEOUT="60", **SAMPLE)) as sup:
            sup.wait_event("db.wait.retry", timeout=30)
            sup.signal(signal.SIGTERM)
            assert sup.wait_exit(30) == 0
            assert sup.find("supervisor.stopped")[0]["exit_code"] == 0
            assert not sup.find("child.ready")


class TestRedaction:
    """No database password appears in any line, whoever printed it."""

    def test_server_output_is_redacted(self, app_db: str) -> None:
        """The app printing DATABASE_URL on stdout, stderr and through logging is masked."""
        with running(base_env(app_db, **SAMPLE)) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            assert sup.get("/leak")[0] == 200
            wait_for(lambda: len([e for e in sup.events() if "stderr says" in json.dumps(e)]) >= 1,
                     20, "the leaked stderr line")
            wait_for(lambda: sup.find("server.log", logger="sampleapp"), 20, "the leaked log record")
            text = "\n".join(sup.lines + sup.stderr_lines)
            assert APP_PASSWORD not in text
            assert "***" in text


class TestDevelopmentMode:
    """JARLPM_ENV=development without DATABASE_URL runs an embedded PostgreSQL and stops it."""

    def test_embedded_database_lifecycle(self, tmp_path: Path) -> None:
        """The embedded cluster starts before wait_for_db, serves the API, and stops with the supervisor."""
        data = tmp_path / "jarlpm-data"
        env = base_env(None, JARLPM_ENV="development", JARLPM_DATA_DIR=str(data))
        with running(env) as sup:
            started = sup.wait_event("embedded_db.started", timeout=90)
            sup.wait_event("supervisor.ready", timeout=90)
            status, _, body = http_get(sup.port, "/api/epics", method="POST",
                                       body=json.dumps({"title": "dev epic"}).encode())
            assert status == 201, body
            phases = [e["phase"] for e in sup.find("phase.started")]
            assert phases == ["validate_env", "embedded_db", "wait_for_db", "migrate", "warm_pool"]
            sup.signal(signal.SIGINT)
            assert sup.wait_exit(60) == 0
            assert sup.find("embedded_db.stopped")
            datadir = Path(started["datadir"])
            assert not (datadir / "postmaster.pid").exists()

    def test_embedded_database_stops_when_supervisor_is_killed(self, tmp_path: Path) -> None:
        """SIGKILL of the supervisor in development mode: its embedded PostgreSQL stops too."""
        data = tmp_path / "jarlpm-data"
        env = base_env(None, JARLPM_ENV="development", JARLPM_DATA_DIR=str(data))
        with running(env) as sup:
            started = sup.wait_event("embedded_db.started", timeout=90)
            sup.wait_event("supervisor.ready", timeout=90)
            pidfile = Path(started["datadir"]) / "postmaster.pid"
            postmaster = int(pidfile.read_text().split()[0])
            os.kill(sup.pid, signal.SIGKILL)
            sup.proc.wait(10)
            wait_for(lambda: not pidfile.exists(), 60, "the embedded PostgreSQL stopped")
            from procs import pids_alive

            wait_for(lambda: not pids_alive([postmaster]), 30, "the postmaster gone")

    def test_embedded_password_is_random_and_private(self, tmp_path: Path) -> None:
        """The app role's password is random, in a 0600 file; the cluster's directory is private."""
        data = tmp_path / "jarlpm-data"
        env = base_env(None, JARLPM_ENV="development", JARLPM_DATA_DIR=str(data))
        with running(env) as sup:
            started = sup.wait_event("embedded_db.started", timeout=90)
            sup.wait_event("supervisor.ready", timeout=90)
            sup.signal(signal.SIGTERM)
            assert sup.wait_exit(60) == 0
        password_file = data / "app.password"
        password = password_file.read_text().strip()
        assert password != "jarlpm-dev" and len(password) >= 24
        assert password_file.stat().st_mode & 0o777 == 0o600
        datadir = Path(started["datadir"])
        for directory in {data, datadir.parent}:
            for path in directory.rglob("*"):
                if path.is_file() and not path.is_symlink() and path.stat().st_mode & 0o004:
                    assert password not in path.read_text(errors="replace"), f"{path} is world-readable"
        if datadir.parent != data:  # the private fallback (we are root, tmp_path is 0700)
            assert datadir.parent.stat().st_mode & 0o077 == 0
            assert datadir.parent.name.startswith("jarlpm-pg-") and datadir.parent.parent == Path("/var/tmp")
        assert password not in "\n".join(sup.lines)

    def test_prepared_cluster_location_is_refused(self, tmp_path: Path) -> None:
        """A recorded cluster directory that other users can write (a prepared trap) is refused, exit 78."""
        if os.geteuid() != 0:
            pytest.skip("the private fallback directory is used only when running as root")
        data = tmp_path / "jarlpm-data"
        data.mkdir(mode=0o700)
        trap = tmp_path / "world-writable"
        trap.mkdir()
        trap.chmod(0o1777)
        (data / "pg.location").write_text(str(trap / "pg") + "\n")
        env = base_env(None, JARLPM_ENV="development", JARLPM_DATA_DIR=str(data))
        with running(env) as sup:
            assert sup.wait_exit(60) == 78
            failed = sup.find("phase.failed")
            assert failed and failed[0]["phase"] == "embedded_db"
            assert "writable by other users" in failed[0]["error"] and "pg.location" in failed[0]["hint"]
        assert not (trap / "pg").exists()


class TestStatusSocketOwnership:
    """A second supervisor never takes over a live supervisor's status socket."""

    def test_second_instance_with_the_same_state_directory_fails_clearly(self, app_db: str) -> None:
        """Exit 78 naming the socket; the first keeps answering `jarlpm status`; a stale socket is reused."""
        first_env = base_env(app_db, **SAMPLE)
        with running(first_env) as first:
            first.wait_event("supervisor.ready", timeout=90)
            second_env = base_env(app_db, JARLPM_STATE_DIR=first_env["JARLPM_STATE_DIR"], **SAMPLE)
            with running(second_env) as second:
                assert second.wait_exit(60) == 78
                failed = second.find("phase.failed")
                assert len(failed) == 1 and failed[0]["phase"] == "validate_env"
                assert "another supervisor" in failed[0]["error"] and failed[0]["hint"]
            status = subprocess.run([sys.executable, "-m", "supervisor", "status", "--json"], env=first_env,
                                    capture_output=True, text=True, timeout=30)
            assert status.returncode == 0 and json.loads(status.stdout)["state"] == "running"
            first.signal(signal.SIGKILL)  # leaves its socket file behind
            first.wait_exit(30)
        socket_file = Path(first_env["JARLPM_STATE_DIR"]) / "jarlpm.sock"
        assert socket_file.exists()
        with running(base_env(app_db, JARLPM_STATE_DIR=first_env["JARLPM_STATE_DIR"], **SAMPLE)) as third:
            third.wait_event("supervisor.ready", timeout=90)

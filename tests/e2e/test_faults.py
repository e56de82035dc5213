"""Under faults it keeps serving (issue #16): each fault reproduced from outside with real processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import psycopg2
from loadgen import Load
from pgfixtures import APP_PASSWORD, APP_ROLE, new_app_database, throwaway_cluster
from procs import APPS, REPO, Supervisor, base_env, http_get, pids_alive, running, wait_for

from supervisor.database.pgcluster import LocalPostgres

SAMPLE = {"JARLPM_APP": "sampleapp:app", "JARLPM_APP_DIR": str(APPS)}


def status_of(env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "supervisor", "status", "--json"],
                         env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def worker_pids(sup: Supervisor) -> list[int]:
    ready = {e["pid"] for e in sup.find("child.ready")}
    exited = {e["pid"] for e in sup.find("child.exited")}
    return sorted(ready - exited)


class TestStalledLogReader:
    """A reader of stdout that stops reading never stalls the serving; the loss is reported."""

    STALL_S = 6.0  # twice HEARTBEAT_TIMEOUT below: long enough for a blocked server to be killed

    def test_serving_goes_on_and_the_drop_is_reported(self, app_db: str) -> None:
        """Reader SIGSTOPped under load and output bursts: no failed or slow request, no kill,
        status stays truthful, and log.dropped (per source) comes once the reader resumes."""
        env = base_env(app_db, LOG_BUFFER_KB="64", HEARTBEAT_TIMEOUT="3", **SAMPLE)
        with running(env, log_reader=True) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            assert sup.reader is not None
            os.kill(sup.reader.pid, signal.SIGSTOP)
            try:
                with Load(sup.port, threads=4, max_seconds=40) as load:
                    stalled_at = time.monotonic()
                    for _ in range(4):  # bursts far over LOG_BUFFER_KB, with the pipe full
                        status, _, _ = http_get(sup.port, "/spam?lines=2000", timeout=10)
                        assert status == 200
                    wait_for(lambda: time.monotonic() - stalled_at > self.STALL_S and load.count() > 200,
                             30, "the stall to last while clients loop")
                    snapshot = status_of(env)
                    result = load.stop()
            finally:
                os.kill(sup.reader.pid, signal.SIGCONT)
            dropped = sup.wait_event("log.dropped", timeout=10)
            assert result.failed == 0 and result.refused == 0, result.errors[:5]
            assert result.max_latency < 2.0, result.max_latency
            assert snapshot["ready"] is True and all(w["responsive"] for w in snapshot["workers"])
            assert dropped["by_source"]["server"] > 0 and dropped["dropped"] >= dropped["by_source"]["server"]
            assert not sup.find("child.unresponsive") and not sup.find("child.exited")
            # A stop while the reader is stalled again: quick, and its events reach the log
            # once the reader resumes (they were never dropped for server lines).
            os.kill(sup.reader.pid, signal.SIGSTOP)
            try:
                assert http_get(sup.port, "/spam?lines=2000", timeout=10)[0] == 200
                stop_at = time.monotonic()
                sup.signal(signal.SIGTERM)
                wait_for(lambda: time.monotonic() - stop_at > 1.5, 5, "a stop under a stalled reader")
            finally:
                os.kill(sup.reader.pid, signal.SIGCONT)
            assert sup.wait_exit(30) == 0
            assert time.monotonic() - stop_at < 10
            assert sup.find("supervisor.stopping") and sup.find("supervisor.stopped")


class TestOddOutput:
    """No output of an app stops its relay, and no line of the log is over the limit."""

    def test_nested_line_and_progress_output(self, app_db: str) -> None:
        """A too-deep JSON line, then 30 MiB of \\r progress without a newline: the server's later
        lines still arrive, as JSON, each bounded; the progress comes out as its last state."""
        with running(base_env(app_db, **SAMPLE)) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            assert sup.get("/nested")[0] == 200
            started = time.monotonic()
            assert sup.get("/progress?mb=30", timeout=60)[0] == 200
            sup.wait_event("server.output", timeout=30, message="progress done")
            elapsed = time.monotonic() - started
            assert sup.get("/spam?lines=3")[0] == 200
            sup.wait_event("server.output", timeout=10, stream="stdout",
                           message="spam 2 " + "x" * 150)
            assert elapsed < 20, elapsed
            assert max(len(line) for line in sup.lines) < 300 * 1024
            assert not sup.find("log.relay_failed") and not sup.find("child.exited")
            sup.signal(signal.SIGTERM)
            assert sup.wait_exit(30) == 0


def _resets(errors: list[str]) -> list[str]:
    """Errors other than a refusal (which only says the socket is closed: the client retries)."""
    return [e for e in errors if "ConnectionRefused" not in e]


class TestStopUnderLoad:
    """A stop answers every connection the kernel accepted: none is reset."""

    def test_sigterm_under_looping_clients_resets_nothing(self, app_db: str) -> None:
        """Looping clients during SIGTERM: each request gets 200 or 503 (or a refusal once the
        socket is closed), at most one reset: a connection racing the final close."""
        with running(base_env(app_db, WORKERS="2", **SAMPLE)) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            with Load(sup.port, threads=8, max_seconds=60) as load:
                wait_for(lambda: load.count() > 200, 30, "some requests")
                sup.signal(signal.SIGTERM)
                assert sup.wait_exit(30) == 0
                result = load.stop()
            assert len(_resets(result.errors)) <= 1, _resets(result.errors)[:8]
            assert set(result.statuses) <= {200, 503}, result.statuses


def occupy_every_slot(cluster: LocalPostgres, url: str) -> list[Any]:
    """Sessions of the app's role ("batch-job") until PostgreSQL refuses one: no slot left."""
    name = url.rsplit("/", 1)[-1].split("?")[0]
    held: list[Any] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            held.append(psycopg2.connect(cluster.url(name, user=APP_ROLE, password=APP_PASSWORD),
                                         application_name="batch-job", connect_timeout=5))
        except psycopg2.OperationalError as exc:
            assert "slots are reserved" in str(exc) or "too many clients" in str(exc), exc
            return held
    raise AssertionError("PostgreSQL kept accepting connections")


def release(held: list[Any]) -> None:
    for conn in held:
        conn.close()
    held.clear()


class TestDatabaseAtCapacity:
    """PostgreSQL with every free slot taken: a replica that serves stays ready; a start waits, then says why."""

    POOL = {"DB_POOL_SIZE": "2", "DB_MAX_OVERFLOW": "0"}

    def test_readiness_stays_200_while_serving(self) -> None:
        """Slots full (the pool holds its connections): readiness 200 like the API, not 503 for good."""
        with throwaway_cluster(max_connections=12) as cluster:
            _, url = new_app_database(cluster)
            held: list[Any] = []
            try:
                with running(base_env(url, **self.POOL)) as sup:
                    sup.wait_event("supervisor.ready", timeout=60)
                    held = occupy_every_slot(cluster, url)
                    for _ in range(3):
                        status, _, body = sup.get("/api/health/ready")
                        assert status == 200, body
                        assert sup.get("/api/epics")[0] == 200
            finally:
                release(held)

    def test_start_waits_for_a_slot_then_names_capacity(self) -> None:
        """No slot at start: db.wait.retry says so; freed slots let it start; still full at
        DB_WAIT_TIMEOUT it exits 75 with the capacity hint (not 69, not "firewall")."""
        with throwaway_cluster(max_connections=12) as cluster:
            _, url = new_app_database(cluster)
            held = occupy_every_slot(cluster, url)
            try:
                with running(base_env(url, DB_WAIT_TIMEOUT="3", **self.POOL)) as sup:
                    assert sup.wait_exit(60) == 75
                    failed = sup.find("phase.failed")[0]
                    assert failed["exit_code"] == 75 and failed["reason"] == "database_at_capacity"
                    assert "max_connections" in failed["hint"] and "firewall" not in failed["hint"]
                    assert len(sup.find("db.wait.retry")) >= 2
                with running(base_env(url, DB_WAIT_TIMEOUT="60", **self.POOL)) as sup:
                    sup.wait_event("db.wait.retry", timeout=30)
                    release(held)
                    sup.wait_event("supervisor.ready", timeout=60)
            finally:
                release(held)


class TestStoppedProcess:
    """A SIGSTOPped server process: one child.unresponsive that says "stopped", not a blocking call."""

    def test_one_event_per_stall_naming_the_stop(self, app_db: str) -> None:
        with running(base_env(app_db, HEARTBEAT_TIMEOUT="2", WORKERS="2", **SAMPLE)) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            stopped = worker_pids(sup)[0]
            os.kill(stopped, signal.SIGSTOP)
            event = sup.wait_event("child.unresponsive", timeout=30, pid=stopped)
            sup.wait_event("child.exited", timeout=30, pid=stopped)
            wait_for(lambda: len(sup.find("child.ready")) >= 3, 60, "a replacement ready")
            assert len(sup.find("child.unresponsive")) == 1, sup.find("child.unresponsive")
            assert event["process_state"] == "stopped" and event["stacks"] == []
            assert "stopped" in event["hint"] and "blocking call" not in event["hint"]

    def test_status_tells_a_silent_process_from_a_ready_one(self, app_db: str) -> None:
        """Long before HEARTBEAT_TIMEOUT, `jarlpm status` stops saying ready for a process that went silent."""
        env = base_env(app_db, HEARTBEAT_TIMEOUT="60", **SAMPLE)
        with running(env) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            assert status_of(env)["ready"] is True
            stopped = worker_pids(sup)[0]
            os.kill(stopped, signal.SIGSTOP)
            try:
                snapshot = wait_for(lambda: (lambda s: s if not s["ready"] else None)(status_of(env)), 15,
                                    "status to say not ready")
            finally:
                os.kill(stopped, signal.SIGCONT)
            assert snapshot["workers"][0]["responsive"] is False
            wait_for(lambda: status_of(env)["ready"], 15, "ready again once it answers")


def kill_quietly(pid: int) -> None:
    """The test's own helper, should the supervisor have failed to kill it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[-1].split()[1])
    except OSError:
        return None


class TestEscapedHelpers:
    """A helper that daemonised (double fork + setsid) dies with its server process, however that ends."""

    def test_crash_of_the_server_leaks_no_helper(self, app_db: str) -> None:
        with running(base_env(app_db, **SAMPLE)) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            helper = json.loads(sup.get("/daemon")[2])["helper_pid"]
            try:
                assert pids_alive([helper]) and parent_of(helper) == sup.pid  # adopted by the subreaper
                server = worker_pids(sup)[0]
                with contextlib.suppress(OSError):
                    sup.get("/crash")
                sup.wait_event("child.exited", timeout=30, pid=server)
                wait_for(lambda: not pids_alive([helper]), 10, "the escaped helper gone with its server")
                assert sup.find("supervisor.orphans_killed", of_pid=server)
            finally:
                kill_quietly(helper)

    def test_sigkill_of_the_supervisor_leaves_no_helper(self, app_db: str) -> None:
        with running(base_env(app_db, **SAMPLE)) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            helper = json.loads(sup.get("/daemon")[2])["helper_pid"]
            try:
                os.kill(sup.pid, signal.SIGKILL)
                sup.proc.wait(10)
                wait_for(lambda: not pids_alive([helper]), 10, "the escaped helper gone")
            finally:
                kill_quietly(helper)

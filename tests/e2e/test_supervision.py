"""Process supervision end to end: real processes, real signals, real HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from loadgen import Load
from procs import APPS, REPO, Supervisor, base_env, http_get, pids_alive, running, wait_for

from supervisor.system import reaper

SAMPLE = {"JARLPM_APP": "sampleapp:app", "JARLPM_APP_DIR": str(APPS)}


def worker_pids(sup: Supervisor) -> list[int]:
    ready = {e["pid"] for e in sup.find("child.ready")}
    exited = {e["pid"] for e in sup.find("child.exited")}
    return sorted(ready - exited)


class TestRestarts:
    """A server process that dies is replaced while connections wait in the backlog."""

    def test_kill_9_under_load_refuses_nothing(self, app_db: str) -> None:
        """SIGKILL of the server under load: no refused connection, a new pid serves.

        Only the requests the killed process had already accepted can fail (at most one per
        client): every connection made after the kill waits in the backlog and is served.
        """
        with running(base_env(app_db, **SAMPLE)) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            first = worker_pids(sup)[0]
            with Load(sup.port, threads=4, max_seconds=60) as load:
                wait_for(lambda: load.count() > 50, 30, "some requests")
                os.kill(first, signal.SIGKILL)
                exited = sup.wait_event("child.exited", timeout=30, pid=first)
                sup.wait_event("child.restarting", timeout=30)
                wait_for(lambda: len(sup.find("child.ready")) >= 2, 60, "the replacement ready")
                before = load.count()
                wait_for(lambda: load.count() > before + 50, 30, "requests after the restart")
                result = load.stop()
            assert exited["signal"] == "SIGKILL" and "out of memory" in exited["hint"]
            assert result.refused == 0, result.errors[:5]
            assert result.failed <= 4, result.errors[:5]
            # A request the killed process had taken ends as a reset, a closed connection, a
            # broken pipe (the request written into the dead socket) or a response cut after its
            # headers (httptools writes headers and body apart): never a refusal.
            lost = ("reset", "disconnected", "broken pipe", "brokenpipe", "aborted", "incompleteread")
            assert all(any(word in e.lower() for word in lost) for e in result.errors), result.errors
            assert len(result.pids) == 2 and first in result.pids

    def test_three_workers_restart_independently(self, app_db: str) -> None:
        """WORKERS=3 runs three processes on one socket; killing one restarts only that one."""
        with running(base_env(app_db, WORKERS="3", **SAMPLE)) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            pids = worker_pids(sup)
            assert len(pids) == 3
            os.kill(pids[1], signal.SIGKILL)
            wait_for(lambda: len(sup.find("child.ready")) == 4, 60, "one replacement")
            now = worker_pids(sup)
            assert len(now) == 3 and pids[0] in now and pids[2] in now and pids[1] not in now
            assert len(sup.find("child.spawned")) == 4

    def test_bad_app_is_a_crash_loop_exit_70(self, app_db: str) -> None:
        """An app that fails at import makes the supervisor give up with exit 70 and the traceback."""
        env = base_env(app_db, JARLPM_APP="badapp:app", JARLPM_APP_DIR=str(APPS), CRASH_LOOP_LIMIT="3")
        started = time.monotonic()
        with running(env) as sup:
            assert sup.wait_exit(60) == 70
            elapsed = time.monotonic() - started
            loop = sup.find("child.crash_loop")
            assert len(loop) == 1 and loop[0]["deaths"] == 3
            assert any("not_a_real_module_jarlpm" in line for line in loop[0]["stderr_tail"])
            exits = sup.find("child.exited")
            assert len(exits) == 3 and all(e["exit_code"] == 1 for e in exits)
            assert [r["delay_s"] for r in sup.find("child.restarting")]
            assert sup.find("supervisor.stopped")[0]["exit_code"] == 70
            assert elapsed < 60


class TestHangs:
    """A stalled event loop is noticed, its stacks logged, and the process replaced."""

    def test_blocked_loop_dumps_stacks_and_restarts(self, app_db: str) -> None:
        """child.unresponsive names the blocking function; a fresh process then serves."""
        with running(base_env(app_db, HEARTBEAT_TIMEOUT="2", **SAMPLE)) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            stuck = worker_pids(sup)[0]
            threading.Thread(target=lambda: _quiet_get(sup.port, "/block?s=60"), daemon=True).start()
            event = sup.wait_event("child.unresponsive", timeout=30)
            assert event["pid"] == stuck and event["stalled_s"] >= 2
            assert any("stalled_in_blocking_call" in line for line in event["stacks"]), event["stacks"]
            wait_for(lambda: len(sup.find("child.ready")) >= 2, 60, "a fresh process")
            status, _, body = sup.get("/pid")
            assert status == 200 and json.loads(body)["pid"] != stuck


def _quiet_get(port: int, path: str) -> None:
    try:
        http_get(port, path, timeout=90)
    except OSError:
        pass


class TestSignals:
    """SIGTERM drains, SIGHUP reloads without a failed request, SIGQUIT stops at once."""

    def test_sigterm_lets_inflight_requests_finish(self, app_db: str) -> None:
        """Slow requests in flight at SIGTERM all complete with 200; the supervisor exits 0."""
        with running(base_env(app_db, **SAMPLE)) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            results: list[int] = []
            threads = [threading.Thread(target=lambda: results.append(sup.get("/slow?s=3", 30)[0]))
                       for _ in range(8)]
            for thread in threads:
                thread.start()
            # In flight = the app is handling all eight (not merely queued in the kernel).
            wait_for(lambda: json.loads(sup.get("/inflight")[2])["slow"] == 8, 20, "eight requests in flight")
            sup.signal(signal.SIGTERM)
            assert sup.wait_exit(60) == 0
            for thread in threads:
                thread.join(30)
            assert results == [200] * 8
            assert sup.find("supervisor.stopping")[0]["signal"] == "SIGTERM"

    def test_sighup_reload_under_load(self, app_db: str) -> None:
        """SIGHUP replaces every process one by one: no failed request, new pids serve."""
        with running(base_env(app_db, WORKERS="2", **SAMPLE)) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            old = set(worker_pids(sup))
            with Load(sup.port, threads=4, max_seconds=90) as load:
                wait_for(lambda: load.count() > 50, 30, "some requests")
                sup.signal(signal.SIGHUP)
                sup.wait_event("supervisor.reloaded", timeout=60)
                wait_for(lambda: old.isdisjoint(worker_pids(sup)), 30, "old pids gone")
                new = set(worker_pids(sup))
                load.result.pids.clear()
                before = load.count()
                wait_for(lambda: load.count() > before + 100, 30, "requests after reload")
                result = load.stop()
            assert result.refused == 0 and result.failed == 0, result.errors[:5]
            assert result.pids and result.pids <= new
            assert sup.find("phase.completed", phase="migrate")
            assert len(sup.find("phase.started", phase="migrate")) == 2

    def test_sigquit_stops_at_once(self, app_db: str) -> None:
        """SIGQUIT kills the servers without waiting for slow requests; exit 0."""
        with running(base_env(app_db, **SAMPLE)) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            threading.Thread(target=lambda: _quiet_get(sup.port, "/slow?s=30"), daemon=True).start()
            wait_for(lambda: _inflight_seen(sup), 10, "a request in flight")
            sup.signal(signal.SIGQUIT)
            assert sup.wait_exit(15) == 0

    def test_drain_delay_turns_readiness_503(self, app_db: str) -> None:
        """During DRAIN_DELAY readiness answers 503 while other requests are still served."""
        with running(base_env(app_db, DRAIN_DELAY="3", **SAMPLE)) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            assert sup.get("/api/health/ready")[0] == 200
            sup.signal(signal.SIGTERM)
            wait_for(lambda: sup.get("/api/health/ready")[0] == 503, 10, "readiness 503")
            assert sup.get("/pid")[0] == 200
            assert sup.wait_exit(30) == 0


def _inflight_seen(sup: Supervisor) -> bool:
    # The request is in flight once the server accepted it; /proc shows the established socket.
    out = subprocess.run(["ss", "-tnH", "state", "established", f"( sport = :{sup.port} )"],
                         capture_output=True, text=True)
    return bool(out.stdout.strip())


class TestOrphans:
    """Nothing the supervisor started outlives it, however it stops."""

    def test_sigterm_kills_app_helpers(self, app_db: str) -> None:
        """A helper process the app started in its own session is gone after a SIGTERM stop."""
        with running(base_env(app_db, **SAMPLE)) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            helper = json.loads(sup.get("/helper")[2])["helper_pid"]
            workers = worker_pids(sup)
            assert pids_alive([helper])
            sup.signal(signal.SIGTERM)
            assert sup.wait_exit(30) == 0
            wait_for(lambda: not pids_alive([helper, *workers]), 10, "helper and workers gone")

    def test_sigkill_of_supervisor_leaves_nothing_serving(self, app_db: str) -> None:
        """SIGKILL of the supervisor itself: its server processes and their helpers die too."""
        with running(base_env(app_db, WORKERS="2", **SAMPLE)) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            helper = json.loads(sup.get("/helper")[2])["helper_pid"]
            workers = worker_pids(sup)
            os.kill(sup.pid, signal.SIGKILL)
            sup.proc.wait(10)
            wait_for(lambda: not pids_alive(workers), 10, "server processes gone")
            wait_for(lambda: not pids_alive([helper]), 10, "the app's helper gone")
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", sup.port), timeout=2).close()

    def test_orphans_are_reaped_by_the_subreaper(self, app_db: str) -> None:
        """Orphaned grandchildren are reparented to the supervisor (a subreaper) and reaped."""
        with running(base_env(app_db, LOG_LEVEL="debug", **SAMPLE)) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            assert sup.get("/orphans")[0] == 200
            wait_for(lambda: len(sup.find("child.reaped_orphan")) >= 2, 20, "two orphans reaped")
            assert _zombies_of(sup.pid) == []

    @pytest.mark.skipif(os.geteuid() != 0, reason="unshare --pid needs root")
    def test_pid1_reaps_orphans_and_exits_0(self, app_db: str) -> None:
        """As PID 1 in its own namespace it reaps orphaned grandchildren and exits 0 on SIGTERM."""
        env = base_env(app_db, LOG_LEVEL="debug", **SAMPLE)
        cmd = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
               sys.executable, "-m", "supervisor", "run"]
        with running(env, command=cmd) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            assert sup.find("phase.started")[0]["pid"] == 1
            for _ in range(3):
                assert sup.get("/orphans")[0] == 200
            wait_for(lambda: len(sup.find("child.reaped_orphan")) >= 6, 20, "six orphans reaped")
            init = _namespace_init(sup.proc.pid)
            assert init is not None
            wait_for(lambda: _zombies_of(init) == [], 10, "no zombies under PID 1")
            os.kill(init, signal.SIGTERM)
            assert sup.wait_exit(30) == 0
            assert sup.find("supervisor.stopped")[0]["exit_code"] == 0


def _namespace_init(unshare_pid: int) -> int | None:
    children = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children")
    try:
        pids = children.read_text().split()
    except OSError:
        return None
    return int(pids[0]) if pids else None


def _zombies_of(parent: int) -> list[int]:
    return [pid for pid, ppid in reaper.parent_map().items()
            if ppid == parent and reaper.process_state(pid) == "zombie"]


class TestSystemdNotify:
    """The notify protocol against a real Unix datagram socket, in the right order."""

    def test_ready_watchdog_reloading_stopping(self, app_db: str, tmp_path: Path) -> None:
        """EXTEND_TIMEOUT during phases, READY with STATUS, WATCHDOG while healthy, RELOADING, STOPPING."""
        path = tmp_path / "notify.sock"
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.bind(str(path))
        receiver.settimeout(0.2)
        messages: list[str] = []

        def collect() -> list[str]:
            while True:
                try:
                    messages.append(receiver.recv(4096).decode())
                except (TimeoutError, BlockingIOError):
                    return messages

        env = base_env(app_db, NOTIFY_SOCKET=str(path), WATCHDOG_USEC="1000000", **SAMPLE)
        try:
            with running(env) as sup:
                sup.wait_event("supervisor.ready", timeout=60)
                wait_for(lambda: any("WATCHDOG=1" in m for m in collect()), 10, "a watchdog ping")
                sup.signal(signal.SIGHUP)
                sup.wait_event("supervisor.reloaded", timeout=60)
                sup.signal(signal.SIGTERM)
                assert sup.wait_exit(30) == 0
                collect()
        finally:
            receiver.close()
        kinds = []
        for message in messages:
            fields = dict(line.split("=", 1) for line in message.splitlines())
            for key in ("EXTEND_TIMEOUT_USEC", "READY", "WATCHDOG", "RELOADING", "STOPPING"):
                if key in fields and (not kinds or kinds[-1] != key):
                    kinds.append(key)
            if "READY" in fields:
                assert fields.get("STATUS")
            if "RELOADING" in fields:
                assert int(fields["MONOTONIC_USEC"]) > 0
        assert kinds[0] == "EXTEND_TIMEOUT_USEC"
        first_ready = kinds.index("READY")
        assert "WATCHDOG" in kinds[first_ready:]
        reloading = kinds.index("RELOADING")
        assert reloading > first_ready and "READY" in kinds[reloading:]
        assert kinds[-1] == "STOPPING"


class TestStatusCommand:
    """`jarlpm status` reads the running supervisor's state over its Unix socket."""

    def test_status_human_and_json(self, app_db: str, tmp_path: Path) -> None:
        """Shows state, readiness and each process; --json gives the same for scripts."""
        state_dir = tmp_path / "run"
        env = base_env(app_db, WORKERS="2", JARLPM_STATE_DIR=str(state_dir), **SAMPLE)
        with running(env) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            query_env = {**env, "PYTHONPATH": str(REPO)}
            out = subprocess.run([sys.executable, "-m", "supervisor", "status", "--json"], env=query_env,
                                 capture_output=True, text=True, timeout=30)
            assert out.returncode == 0, out.stderr
            snapshot = json.loads(out.stdout)
            assert snapshot["state"] == "running" and snapshot["ready"] is True
            assert sorted(w["pid"] for w in snapshot["workers"]) == worker_pids(sup)
            human = subprocess.run([sys.executable, "-m", "supervisor", "status"], env=query_env,
                                   capture_output=True, text=True, timeout=30)
            assert human.returncode == 0 and "state: running" in human.stdout
            assert oct((state_dir / "jarlpm.sock").stat().st_mode & 0o777) == "0o600"
        missing = subprocess.run([sys.executable, "-m", "supervisor", "status"],
                                 env={**env, "JARLPM_STATE_DIR": str(tmp_path / "none")},
                                 capture_output=True, text=True, timeout=30)
        assert missing.returncode == 69 and "no running supervisor" in missing.stderr


    def test_status_during_the_start_up_phases(self, tmp_path: Path) -> None:
        """While it waits for a database that is not there yet, status says so instead of timing out."""
        state_dir = tmp_path / "run"
        env = base_env("postgresql://app:pw@127.0.0.1:9/jarlpm", DB_WAIT_TIMEOUT="120",
                       JARLPM_STATE_DIR=str(state_dir), **SAMPLE)
        query_env = {**env, "PYTHONPATH": str(REPO)}
        with running(env) as sup:
            sup.wait_event("db.wait.retry", timeout=60)
            out = subprocess.run([sys.executable, "-m", "supervisor", "status", "--json"], env=query_env,
                                 capture_output=True, text=True, timeout=30)
            assert out.returncode == 0, out.stderr
            snapshot = json.loads(out.stdout)
            assert (snapshot["state"], snapshot["phase"], snapshot["ready"]) == ("starting", "wait_for_db", False)
            human = subprocess.run([sys.executable, "-m", "supervisor", "status"], env=query_env,
                                   capture_output=True, text=True, timeout=30)
            assert "state: starting (phase wait_for_db)" in human.stdout
            sup.signal(signal.SIGTERM)
            assert sup.wait_exit() == 0

class TestStartupHang:
    """A process stuck in lifespan startup is treated like a hang, and counts toward the crash loop."""

    def test_stuck_lifespan_is_killed_with_stacks(self, app_db: str) -> None:
        """child.unresponsive during startup names the stuck function; the crash loop ends it (70)."""
        env = base_env(app_db, JARLPM_APP="hangapp:app", JARLPM_APP_DIR=str(APPS),
                       HEARTBEAT_TIMEOUT="2", CRASH_LOOP_LIMIT="1")
        with running(env) as sup:
            assert sup.wait_exit(90) == 70
            event = sup.find("child.unresponsive")[0]
            assert event["during"] == "startup"
            assert any("stuck_in_startup" in line for line in event["stacks"])
            assert sup.find("child.crash_loop")

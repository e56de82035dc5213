"""JARLPM_FORK_SERVER (the default): replacements are forked from a process that imported the app (issue #17)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from procs import APPS, REPO, Supervisor, base_env, running, wait_for

SAMPLE = {"JARLPM_APP": "sampleapp:app", "JARLPM_APP_DIR": str(APPS)}
VERSION_ROUTE = '''

@app.get("/version")
async def version() -> dict[str, str]:
    return {{"version": "{version}"}}
'''


def status(sup: Supervisor) -> dict[str, Any]:
    """``jarlpm status --json``."""
    out = subprocess.run([sys.executable, "-m", "supervisor", "status", "--json"],
                         env={**sup.env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    value: dict[str, Any] = json.loads(out.stdout)
    return value


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[1])


def gone(pid: int) -> bool:
    """The process no longer runs (no such pid, or a zombie waiting for its new parent)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] in ("Z", "X")
    except OSError:
        return True


def draw(sup: Supervisor) -> tuple[int, float]:
    """(pid, random.random()) from whichever process answers."""
    status, _, body = sup.get("/random")
    assert status == 200, body
    answer = json.loads(body)
    return int(answer["pid"]), float(answer["random"])


def kill_and_await_forked(sup: Supervisor, victim: int) -> int:
    """SIGKILL ``victim``; return its replacement, which must be forked, serve, and be the supervisor's child."""
    os.kill(victim, signal.SIGKILL)
    sup.wait_event("child.exited", timeout=30, pid=victim)
    spawned = wait_for(lambda: [e for e in sup.find("child.spawned") if e["pid"] != victim
                                and e.get("forked") and e["pid"] not in exited_pids(sup)], 30,
                       "a forked replacement")[-1]
    sup.wait_event("child.ready", timeout=30, pid=spawned["pid"])
    assert parent_of(spawned["pid"]) == sup.pid  # reparented to the supervisor, which reaps it
    return int(spawned["pid"])


def exited_pids(sup: Supervisor) -> set[int]:
    """Pids that exited: a replacement is a process that is still alive."""
    return {e["pid"] for e in sup.find("child.exited")}


class TestForkedAtStart:
    """The fork server imports during the phases; the service's first processes are forked from it."""

    def test_the_processes_started_with_the_service_are_forked(self, app_db: str) -> None:
        """WORKERS=2: both are forked (prespawned), children of the supervisor, and they serve."""
        with running(base_env(app_db, WORKERS="2", **SAMPLE)) as sup:
            pids = sup.wait_event("supervisor.ready", timeout=60)["pids"]
            spawned = {e["pid"]: e for e in sup.find("child.spawned")}
            assert sorted(spawned) == sorted(pids)
            assert all(e["forked"] is True and e["prespawned"] is True for e in spawned.values())
            assert all(parent_of(pid) == sup.pid for pid in pids)
            assert draw(sup)[0] in pids

    def test_forked_processes_collect_garbage_and_share_the_frozen_import(self, app_db: str) -> None:
        """The fork server imports with the collector off; every forked process collects again.

        What it imported is frozen (never walked by a child's collector, so its pages stay
        shared), and a process that never collected would grow without bound.
        """
        with running(base_env(app_db, WORKERS="1", **SAMPLE)) as sup:
            first = sup.wait_event("supervisor.ready", timeout=60)["pids"][0]
            status_, _, body = sup.get("/gc")
            assert status_ == 200, body
            answer = json.loads(body)
            assert answer["pid"] == first
            assert answer["enabled"] is True
            assert answer["frozen"] > 10_000  # the app's and uvicorn's modules


class TestForkedReplacement:
    """A dead server process is replaced by a fork of the fork server, supervised like a spawned one."""

    def test_sigkill_replacement_is_forked_serves_and_draws_its_own_random_numbers(self, app_db: str) -> None:
        """Two forked replacements in a row: both serve, and their first random draws differ (reseeded at fork)."""
        with running(base_env(app_db, WORKERS="1", **SAMPLE)) as sup:
            first = sup.wait_event("supervisor.ready", timeout=60)["pids"][0]
            sup.wait_event("forkserver.ready", timeout=60)
            one = kill_and_await_forked(sup, first)
            pid_one, draw_one = draw(sup)
            two = kill_and_await_forked(sup, one)
            pid_two, draw_two = draw(sup)
            assert (pid_one, pid_two) == (one, two)
            assert draw_one != draw_two
            assert not sup.find("child.crash_loop")

    def test_forked_processes_that_die_before_ready_still_make_a_crash_loop(self, app_db: str, tmp_path: Path) -> None:
        """Forked replacements failing lifespan startup count toward CRASH_LOOP_LIMIT: exit 70."""
        flag = tmp_path / "fail"
        env = base_env(app_db, WORKERS="1", CRASH_LOOP_LIMIT="2", RESTART_BACKOFF_MAX="0.2",
                       JARLPM_APP="flagapp:app", JARLPM_APP_DIR=str(APPS), JARLPM_TEST_FAIL_FLAG=str(flag))
        with running(env) as sup:
            first = sup.wait_event("supervisor.ready", timeout=60)["pids"][0]
            sup.wait_event("forkserver.ready", timeout=60)
            flag.touch()
            os.kill(first, signal.SIGKILL)
            sup.wait_event("child.crash_loop", timeout=60)
            assert sup.proc.wait(timeout=60) == 70
            assert all(e.get("forked") for e in sup.find("child.spawned") if e["pid"] != first)
            assert len(sup.find("child.spawned")) >= 2

    def test_a_forked_process_that_stops_is_detected_as_hung(self, app_db: str) -> None:
        """SIGSTOP of a forked process: child.unresponsive after HEARTBEAT_TIMEOUT, then another replacement."""
        with running(base_env(app_db, WORKERS="1", HEARTBEAT_TIMEOUT="2", **SAMPLE)) as sup:
            first = sup.wait_event("supervisor.ready", timeout=60)["pids"][0]
            sup.wait_event("forkserver.ready", timeout=60)
            forked = kill_and_await_forked(sup, first)
            os.kill(forked, signal.SIGSTOP)
            sup.wait_event("child.unresponsive", timeout=30, pid=forked)
            sup.wait_event("child.exited", timeout=30, pid=forked)
            wait_for(lambda: draw(sup)[0] not in (first, forked), 30, "a new process serving")

    def test_recycling_by_max_requests_forks_the_replacement(self, app_db: str) -> None:
        """MAX_REQUESTS: the recycle's new process comes from the fork server."""
        with running(base_env(app_db, WORKERS="1", MAX_REQUESTS="10", **SAMPLE)) as sup:
            first = sup.wait_event("supervisor.ready", timeout=60)["pids"][0]
            sup.wait_event("forkserver.ready", timeout=60)
            for _ in range(12):
                draw(sup)
            sup.wait_event("child.recycling", timeout=30)
            new = wait_for(lambda: [e for e in sup.find("child.spawned") if e["pid"] != first], 30, "a replacement")
            assert new[0]["forked"] is True
            sup.wait_event("child.ready", timeout=30, pid=new[0]["pid"])


class TestForkServerLifecycle:
    """The fork server follows the code (reload), refuses what is unsafe, and comes back when killed."""

    def test_reload_starts_a_fork_server_with_the_new_code(self, app_db: str, tmp_path: Path) -> None:
        """Edit then SIGHUP: a new fork server; a replacement forked from it serves the new code."""
        source = tmp_path / "versioned.py"
        source.write_text((APPS / "sampleapp.py").read_text() + VERSION_ROUTE.format(version="one"))
        env = base_env(app_db, WORKERS="1", JARLPM_APP="versioned:app", JARLPM_APP_DIR=str(tmp_path))
        with running(env) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            old = sup.wait_event("forkserver.ready", timeout=60)["pid"]
            source.write_text((APPS / "sampleapp.py").read_text() + VERSION_ROUTE.format(version="two"))
            sup.signal(signal.SIGHUP)
            serving = sup.wait_event("supervisor.reloaded", timeout=90)["pids"][0]
            new = wait_for(lambda: [e["pid"] for e in sup.find("forkserver.ready") if e["pid"] != old], 60,
                           "a new fork server")[0]
            assert gone(old)
            forked = kill_and_await_forked(sup, serving)
            status, _, body = sup.get("/version")
            assert status == 200 and json.loads(body)["version"] == "two", (forked, new)

    def test_an_app_starting_a_thread_at_import_falls_back_to_spawning(self, app_db: str) -> None:
        """forkserver.unsafe names the thread; a replacement is then spawned fresh, and serves."""
        env = base_env(app_db, WORKERS="1", JARLPM_APP="threadapp:app", JARLPM_APP_DIR=str(APPS))
        with running(env) as sup:
            first = sup.wait_event("supervisor.ready", timeout=60)["pids"][0]
            unsafe = sup.wait_event("forkserver.unsafe", timeout=60)
            assert "import-time-poller" in unsafe["reason"] and "lifespan" in unsafe["hint"]
            os.kill(first, signal.SIGKILL)
            spawned = wait_for(lambda: [e for e in sup.find("child.spawned") if e["pid"] != first], 30,
                               "a replacement")[0]
            assert spawned["forked"] is False
            sup.wait_event("child.ready", timeout=30, pid=spawned["pid"])

    def test_sigkill_of_the_fork_server_is_logged_and_it_is_restarted(self, app_db: str) -> None:
        """forkserver.exited (no server death, no crash loop), then a new fork server that forks again."""
        with running(base_env(app_db, WORKERS="1", CRASH_LOOP_LIMIT="1", **SAMPLE)) as sup:
            first = sup.wait_event("supervisor.ready", timeout=60)["pids"][0]
            doomed = sup.wait_event("forkserver.ready", timeout=60)["pid"]
            os.kill(doomed, signal.SIGKILL)
            exited = sup.wait_event("forkserver.exited", timeout=30, pid=doomed)
            assert exited["signal"] == "SIGKILL" and exited["requested"] is False
            wait_for(lambda: [e for e in sup.find("forkserver.ready") if e["pid"] != doomed], 60, "a new fork server")
            kill_and_await_forked(sup, first)
            assert not sup.find("child.crash_loop") and sup.proc.poll() is None

    def test_a_fork_server_that_does_not_answer_is_replaced_by_a_spawn(self, app_db: str) -> None:
        """Fork server stopped (SIGSTOP): the fork request times out, forkserver.fork_failed, a fresh spawn serves."""
        with running(base_env(app_db, WORKERS="1", **SAMPLE)) as sup:
            first = sup.wait_event("supervisor.ready", timeout=60)["pids"][0]
            stalled = sup.wait_event("forkserver.ready", timeout=60)["pid"]
            os.kill(stalled, signal.SIGSTOP)
            os.kill(first, signal.SIGKILL)
            failed = sup.wait_event("forkserver.fork_failed", timeout=30, pid=stalled)
            assert failed["worker"] == 0
            spawned = wait_for(lambda: [e for e in sup.find("child.spawned") if e["pid"] != first], 30,
                               "a replacement")[0]
            assert spawned["forked"] is False
            sup.wait_event("child.ready", timeout=30, pid=spawned["pid"])
            wait_for(lambda: gone(stalled), 10, "the stalled fork server killed")
            wait_for(lambda: [e for e in sup.find("forkserver.ready") if e["pid"] != stalled], 60,
                     "a new fork server")

    def test_sigkill_of_the_supervisor_kills_forked_processes(self, app_db: str) -> None:
        """The supervisor dies with SIGKILL: its forked processes and the fork server follow (control socket EOF)."""
        with running(base_env(app_db, WORKERS="1", **SAMPLE)) as sup:
            first = sup.wait_event("supervisor.ready", timeout=60)["pids"][0]
            fork_server = sup.wait_event("forkserver.ready", timeout=60)["pid"]
            forked = kill_and_await_forked(sup, first)
            assert status(sup)["fork_server"] == fork_server
            os.kill(sup.pid, signal.SIGKILL)
            wait_for(lambda: gone(forked) and gone(fork_server), 15, "the forked process and the fork server gone")

"""JARLPM_STANDBY: a server process in reserve replaces a dead one at once (issue #17)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

from procs import APPS, REPO, Supervisor, base_env, running, wait_for

SAMPLE = {"JARLPM_APP": "sampleapp:app", "JARLPM_APP_DIR": str(APPS), "JARLPM_STANDBY": "1"}


def standby_pids(sup: Supervisor) -> list[int]:
    return [e["pid"] for e in sup.find("child.standby")]


def status(sup: Supervisor) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "supervisor", "status", "--json"],
                         env={**sup.env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    value: dict[str, Any] = json.loads(out.stdout)
    return value


def serving_pid(sup: Supervisor) -> int:
    status, _, body = sup.get("/pid")
    assert status == 200
    return int(json.loads(body)["pid"])


class TestStandby:
    """The standby waits with the app imported; it takes over, and is itself replaced."""

    def test_sigkill_of_the_server_releases_the_standby(self, app_db: str) -> None:
        """SIGKILL of the serving process: the standby's pid serves, and a new standby appears."""
        with running(base_env(app_db, **SAMPLE)) as sup:
            ready = sup.wait_event("supervisor.ready", timeout=60)
            first = sup.wait_event("child.standby", timeout=60)["pid"]
            victim = ready["pids"][0]
            snapshot = status(sup)
            assert snapshot["standby"] == first and [w["pid"] for w in snapshot["workers"]] == [victim]
            os.kill(victim, signal.SIGKILL)
            spawned = sup.wait_event("child.spawned", timeout=30, pid=first)
            assert spawned["standby"] is True and spawned["worker"] == 0
            sup.wait_event("child.ready", timeout=30, pid=first)
            assert serving_pid(sup) == first
            wait_for(lambda: len(standby_pids(sup)) >= 2, 60, "a new standby")
            assert standby_pids(sup)[1] not in (first, victim)
            assert not sup.find("child.crash_loop")

    def test_standby_killed_while_waiting_is_replaced_without_a_crash_loop(self, app_db: str) -> None:
        """Killing standbys, more times than CRASH_LOOP_LIMIT, never trips the crash-loop rule."""
        with running(base_env(app_db, CRASH_LOOP_LIMIT="2", RESTART_BACKOFF_MAX="0.5", **SAMPLE)) as sup:
            ready = sup.wait_event("supervisor.ready", timeout=60)
            for n in range(1, 4):
                wait_for(lambda n=n: len(standby_pids(sup)) >= n, 60, f"standby {n}")
                doomed = standby_pids(sup)[n - 1]
                os.kill(doomed, signal.SIGKILL)
                sup.wait_event("child.standby_restarting", timeout=30, previous_pid=doomed)
            wait_for(lambda: len(standby_pids(sup)) >= 4, 60, "a fourth standby")
            assert not sup.find("child.crash_loop") and sup.proc.poll() is None
            assert serving_pid(sup) == ready["pids"][0]  # the server was never touched

    def test_reload_replaces_the_standby(self, app_db: str) -> None:
        """SIGHUP: the old standby (old code) is discarded and a new one started after the reload."""
        with running(base_env(app_db, **SAMPLE)) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            old = sup.wait_event("child.standby", timeout=60)["pid"]
            sup.signal(signal.SIGHUP)
            sup.wait_event("supervisor.reloaded", timeout=90)
            sup.wait_event("child.exited", timeout=30, pid=old)
            wait_for(lambda: len(standby_pids(sup)) >= 2, 60, "a standby after the reload")
            new = standby_pids(sup)[1]
            assert new != old
            reloaded = sup.find("supervisor.reloaded")[0]["pids"]
            assert new not in reloaded and old not in reloaded

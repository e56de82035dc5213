"""At rest the supervisor sleeps, and still notices a stalled process as quickly (issue #17)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from procs import APPS, base_env, http_get, running, wait_for

SAMPLE = {"JARLPM_APP": "sampleapp:app", "JARLPM_APP_DIR": str(APPS)}
WINDOW = 5.0  # seconds of rest observed
MAX_WAKEUPS_PER_S = 1.0  # supervisord's figure at rest: about once a second


def context_switches(pid: int) -> int:
    """Voluntary + involuntary context switches of every thread of ``pid`` so far."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            text = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except OSError:
            continue  # the thread ended between the listing and the read
        total += sum(int(line.split()[1]) for line in text.splitlines()
                     if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")))
    return total


QUIET_S = 0.5  # an interval with no switch at all: the start-up's last lines have been relayed


def wait_until_quiet(pid: int, timeout: float = 15) -> None:
    """Until ``pid`` goes ``QUIET_S`` without a context switch: the relays of freshly started
    processes linger once after their last start-up lines, which is start-up, not rest.

    A process that never rests (woken more than twice a second) fails here instead.
    """
    def quiet() -> bool:
        before = context_switches(pid)
        time.sleep(QUIET_S)  # the interval is the measurement
        return context_switches(pid) == before

    wait_for(quiet, timeout, f"{QUIET_S} s without a wake-up", interval=0)


class TestAtRest:
    """Nothing happening means nothing for the supervising process to do."""

    def test_supervisor_wakes_at_most_once_a_second(self, app_db: str) -> None:
        """Two idle server processes: the supervisor's threads, together, wake ≤ 1/s (no tick, no heartbeat message)."""
        with running(base_env(app_db, WORKERS="2", **SAMPLE)) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            wait_for(lambda: len(sup.find("child.ready")) >= 2, 30, "both processes ready")
            sup.wait_event("forkserver.ready", timeout=60)  # started once the service is ready
            wait_until_quiet(sup.pid)
            before, started = context_switches(sup.pid), time.monotonic()
            # The window is the measurement, not a guess at when something is done.
            time.sleep(WINDOW)
            switches = context_switches(sup.pid) - before
            assert switches / (time.monotonic() - started) <= MAX_WAKEUPS_PER_S, switches


DRIP_LINES = 200  # lines the server prints, 2 ms apart: about 0.5 s of a busy access log


class TestBusyServer:
    """A server writing line after line wakes the supervisor per batch, not per line (issue #17)."""

    @pytest.mark.parametrize("fork_server", ["1", "0"], ids=["forked", "spawned"])
    def test_relay_reads_a_busy_server_in_batches(self, app_db: str, fork_server: str) -> None:
        """200 lines 2 ms apart: every line relayed, with far fewer wake-ups than lines.

        Unbatched, the relay and the log writer each woke once per line (≥ 400 switches);
        reading after a 25 ms linger takes ~20 reads.  The forked processes (the default)
        once had relays of their own without the linger.
        """
        with running(base_env(app_db, JARLPM_FORK_SERVER=fork_server, **SAMPLE)) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            if fork_server == "1":
                sup.wait_event("forkserver.ready", timeout=60)
            before = context_switches(sup.pid)
            status, _, _ = http_get(sup.port, f"/drip?lines={DRIP_LINES}&gap_ms=2", timeout=30)
            assert status == 200
            wait_for(lambda: len([e for e in sup.find("server.output")
                                  if str(e.get("message", "")).startswith("drip ")]) >= DRIP_LINES,
                     30, "every line relayed")
            switches = context_switches(sup.pid) - before
            assert switches < DRIP_LINES, switches


class TestStoppedProcess:
    """A server process that stops running altogether (SIGSTOP) is a hang like any other."""

    def test_sigstopped_process_is_killed_and_replaced(self, app_db: str) -> None:
        """child.unresponsive after HEARTBEAT_TIMEOUT (a stopped process prints no stacks); a fresh one serves."""
        with running(base_env(app_db, HEARTBEAT_TIMEOUT="2", **SAMPLE)) as sup:
            ready = sup.wait_event("supervisor.ready", timeout=60)
            stopped = ready["pids"][0]
            os.kill(stopped, signal.SIGSTOP)
            event = sup.wait_event("child.unresponsive", timeout=30, pid=stopped)
            assert event["stalled_s"] >= 2
            sup.wait_event("child.exited", timeout=30, pid=stopped)
            wait_for(lambda: len(sup.find("child.ready")) >= 2, 60, "a fresh process")
            status, _, body = sup.get("/pid")
            assert status == 200 and json.loads(body)["pid"] != stopped


class TestWaitingProcess:
    """A server process waiting for ``go`` sleeps until it comes (no 20 ms poll)."""

    def test_standby_waiting_for_go_does_not_poll(self, app_db: str) -> None:
        """The standby (imported, never released) wakes ≤ 1/s, where a 20 ms poll woke it 50 times a second."""
        with running(base_env(app_db, JARLPM_STANDBY="1", **SAMPLE)) as sup:
            standby = sup.wait_event("child.standby", timeout=60)["pid"]
            before, started = context_switches(standby), time.monotonic()
            time.sleep(WINDOW / 2)  # the window is the measurement
            switches = context_switches(standby) - before
            assert switches / (time.monotonic() - started) <= MAX_WAKEUPS_PER_S, switches

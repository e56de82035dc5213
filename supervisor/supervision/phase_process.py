"""The phase process: both ends of the protocol that runs database phases in a child.

The supervisor lives as long as the service; SQLAlchemy, Alembic, psycopg2 and the
models would stay in its memory for all that time (about 35 MB of its 60).  So the
phases that need them run in ``python -m supervisor.supervision.phase_process PHASE...``,
which logs exactly as the supervisor would (source ``supervisor``, the supervisor's
pid) and reports through its exit status: 0 done, a documented exit code when a phase
failed, ``INTERRUPTED`` after a stop.  ``PhaseChild`` is the supervisor's end: it
starts the process, relays its lines and decodes its outcome; the arbiter's loop reaps it.

Runs in: the supervisor (``PhaseChild``) and the phase process (``main``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import traceback
from dataclasses import dataclass
from typing import Any

from supervisor.contract import config, dburl
from supervisor.contract.exitcodes import ExitCode, StopRequested, SupervisorError
from supervisor.contract.paths import package_root
from supervisor.logs import logsetup
from supervisor.logs.relay import StreamRelay
from supervisor.phases import PhaseContext, PhaseRunner, database_phases
from supervisor.supervision import metrics
from supervisor.system.notify import Notifier
from supervisor.system.signals import SignalQueue

INTERRUPTED = 130  # internal: a stop request ended the phases (the supervisor exits 0)
SUPERVISOR_PID = "JARLPM_SUPERVISOR_PID"


# -- the supervisor's end ------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """How the phases ended: ``ok``, ``interrupted`` (a stop), or ``failed`` with its exit code."""

    kind: str
    exit_code: int = 0
    error: str = ""
    hint: str = ""


class PhaseChild:
    """A running phase process whose JSON lines join the supervisor's stream."""

    def __init__(self, names: list[str], env: dict[str, str]) -> None:
        env = dict(env)
        env[SUPERVISOR_PID] = str(os.getpid())
        env.pop(metrics.METRICS_DIR, None)  # its pool is not a server's: it must not write server metrics
        root = str(package_root())
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.failure: dict[str, Any] | None = None
        self.current_phase: str | None = None  # for `jarlpm status` while it runs
        self.process = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervision.phase_process", *names],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self.relays = [StreamRelay(pipe, os.getpid(), name, emit=self._emit, source="supervisor")
                       for pipe, name in ((self.process.stdout, "stdout"), (self.process.stderr, "stderr"))]
        for relay in self.relays:
            relay.start()
        self.stop_sent = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def _emit(self, event: dict[str, Any]) -> None:
        if event.get("event") == "phase.started":
            self.current_phase = str(event.get("phase"))
        if event.get("event") == "phase.completed" and isinstance(event.get("duration_ms"), (int, float)):
            metrics.RECORDER.phase(str(event.get("phase")), float(event["duration_ms"]) / 1000)
        if event.get("event") in ("phase.failed", "supervisor.crashed"):
            self.failure = dict(event)
        logsetup.relay_line(event)

    def request_stop(self, sig: int = signal.SIGTERM) -> None:
        """Forward a stop: the current revision finishes or rolls back, then it exits."""
        if self.process.returncode is None:
            self.stop_sent = True
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def outcome(self, wait_status: int) -> Outcome:
        """Decode its exit (from ``os.waitpid``) after its output has been relayed."""
        for relay in self.relays:
            relay.join(5)
        code = os.waitstatus_to_exitcode(wait_status)
        self.process.returncode = code
        if code == 0:
            return Outcome("ok")
        if code == INTERRUPTED:
            return Outcome("interrupted")
        failure = self.failure or {}
        if code < 0:
            return Outcome("failed", int(ExitCode.SOFTWARE),
                           f"the phase runner was killed by signal {-code}",
                           "out of memory? check the kernel log; then start again")
        return Outcome("failed", code, str(failure.get("error", f"the phases ended with exit {code}")),
                       str(failure.get("hint", "see the phase.failed event above")))


# -- the phase process's end ---------------------------------------------------------------


def main(names: list[str]) -> int:
    fmt, level = config.log_settings_only(os.environ)
    logsetup.configure("json", level, pid=int(os.environ.get(SUPERVISOR_PID) or os.getppid()))
    log = logsetup.get_logger()
    signals = SignalQueue()
    signals.install()
    try:
        settings = config.load_settings(os.environ)
        dburl.register_url_secrets(settings.database_url)
        dburl.register_url_secrets(settings.database_direct_url)
        ctx = PhaseContext(settings=settings, signals=signals, log=log, notifier=Notifier(env={}))
        PhaseRunner(ctx).run_all(database_phases(names))
        code = int(ExitCode.OK)
    except SupervisorError as exc:  # already logged as phase.failed by the runner
        code = int(exc.exit_code)
    except StopRequested:
        code = INTERRUPTED
    except Exception as exc:  # the one broad guard of this process
        log.critical("supervisor.crashed", error=dburl.redact(repr(exc)),
                     traceback=dburl.redact(traceback.format_exc()),
                     hint="this is a bug in the supervisor: please report it with this event")
        code = int(ExitCode.SOFTWARE)
    logsetup.flush()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

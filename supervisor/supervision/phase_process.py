"""The phase process: both ends of the protocol that runs a plan of database phases in a child.

SQLAlchemy, Alembic, psycopg2 and the models must never load into the long-lived
supervisor (a test checks it), so the phases that need them run in
``python -m supervisor.supervision.phase_process PLAN`` (a plan of ``phases.PLANS``:
``start``, ``reload``, ``check``, ``rehearse``).  It logs exactly as the supervisor
would (source ``supervisor``, the supervisor's pid) and reports through its exit
status: 0 done, a documented exit code when a phase failed, ``INTERRUPTED`` after a
stop.  It ends with the supervisor, even one killed with SIGKILL (``parentdeath``):
its statements are cancelled, so its transaction rolls back and the migration lock
is released within seconds.  ``PhaseChild`` is the supervisor's end: it starts the
process, relays its lines and decodes its outcome (naming the phase it was in); the
arbiter's loop reaps it.

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

from supervisor import phases
from supervisor.contract import config, dburl
from supervisor.contract.exitcodes import ExitCode, StopRequested, SupervisorError
from supervisor.contract.paths import package_root
from supervisor.logs import logsetup
from supervisor.logs.relay import StreamRelay
from supervisor.phases import PhaseContext, PhaseRunner
from supervisor.supervision import handover, metrics
from supervisor.system import cgroups, parentdeath
from supervisor.system.notify import Notifier
from supervisor.system.signals import SignalQueue

INTERRUPTED = 130  # internal: a stop request ended the phases (the supervisor exits 0)
SUPERVISOR_PID = "JARLPM_SUPERVISOR_PID"


# -- the supervisor's end ------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """How the phases ended: ``ok``, ``interrupted`` (a stop), or ``failed`` with its exit code.

    A failure names the ``phase`` it happened in; ``logged`` says whether the phase
    process logged its ``phase.failed`` itself (it cannot when it crashed or was killed).
    """

    kind: str
    exit_code: int = 0
    error: str = ""
    hint: str = ""
    phase: str = "supervise"
    logged: bool = False

    def documented_exit_code(self) -> ExitCode:
        """The exit status as a documented code (70 for anything undocumented)."""
        try:
            return ExitCode(self.exit_code)
        except ValueError:
            return ExitCode.SOFTWARE

    def log_failure(self, log: Any) -> None:
        """The ``phase.failed`` the phase process could not write (a crash, a signal)."""
        if self.kind == "failed" and not self.logged:
            log.error("phase.failed", phase=self.phase, exit_code=self.exit_code, error=self.error,
                      hint=self.hint)


class PhaseChild:
    """A running phase process whose JSON lines join the supervisor's stream."""

    def __init__(self, plan: str, env: dict[str, str], run_cgroup: cgroups.RunCgroup | None = None) -> None:
        env = dict(env)
        env[SUPERVISOR_PID] = str(os.getpid())
        env.pop(metrics.METRICS_DIR, None)  # its pool is not a server's: it must not write server metrics
        root = str(package_root())
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.plan = plan
        self.failure: dict[str, Any] | None = None  # its phase.failed
        self.crash: dict[str, Any] | None = None  # its supervisor.crashed
        self.current_phase: str | None = None  # for `jarlpm status`, and to name a failure
        self.completed: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervision.phase_process", plan],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            pass_fds=handover.inherited_fds(),
        )
        # A leaf of its own too (JARLPM_CGROUP), killed when it ends: it starts no helper
        # of ours, but a migration's code could.  Joined right after the exec, before
        # any phase runs (the interpreter is still starting).
        self.run_cgroup = run_cgroup
        self.cgroup = run_cgroup.leaf("phases") if run_cgroup is not None else None
        if self.cgroup is not None and run_cgroup is not None and not run_cgroup.join(self.cgroup, self.pid):
            self.cgroup = None
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
        name = event.get("event")
        if name == "phase.started":
            self.current_phase = str(event.get("phase"))
        elif name == "phase.completed":
            self.completed.append(str(event.get("phase")))
            if isinstance(event.get("duration_ms"), (int, float)):
                metrics.RECORDER.phase(str(event.get("phase")), float(event["duration_ms"]) / 1000)
        elif name == "phase.failed":
            self.failure = dict(event)
        elif name == "supervisor.crashed":
            self.crash = dict(event)
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
        if self.cgroup is not None and self.run_cgroup is not None:
            self.run_cgroup.kill(self.cgroup)  # first: a helper holding its output open would stall the relays
        for relay in self.relays:
            relay.join(5)
        code = os.waitstatus_to_exitcode(wait_status)
        self.process.returncode = code
        if code == 0:
            return Outcome("ok")
        if code == INTERRUPTED:
            return Outcome("interrupted")
        phase = self.current_phase or "supervise"
        if code < 0:
            return Outcome("failed", int(ExitCode.SOFTWARE), f"the phase process was killed by signal "
                           f"{_signame(-code)} during {phase}", "out of memory? check the kernel log "
                           "(dmesg); or someone killed it; then start again", phase)
        if self.failure is not None:
            return Outcome("failed", code, str(self.failure.get("error", "")),
                           str(self.failure.get("hint", "")), str(self.failure.get("phase", phase)), True)
        if self.crash is not None:
            return Outcome("failed", code, str(self.crash.get("error", "")),
                           "a bug in the supervisor: report it with the supervisor.crashed event above", phase)
        return Outcome("failed", code, f"the phase process ended with exit {code} during {phase}",
                       "see the events above", phase)


def _signame(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


# -- the phase process's end ---------------------------------------------------------------


def main(argv: list[str]) -> int:
    fmt, level = config.log_settings_only(os.environ)
    supervisor_pid = int(os.environ.get(SUPERVISOR_PID) or os.getppid())
    parentdeath.arm(supervisor_pid, _cancel_statements, INTERRUPTED)
    logsetup.configure("json", level, pid=supervisor_pid)
    log = logsetup.get_logger()
    signals = SignalQueue()
    signals.install()
    try:
        if len(argv) != 1 or argv[0] not in phases.PLANS:
            raise ValueError(f"usage: phase_process PLAN (one of {', '.join(phases.PLANS)}), not {argv}")
        settings = config.load_settings(os.environ)
        dburl.register_url_secrets(settings.database_url)
        dburl.register_url_secrets(settings.database_direct_url)
        ctx = PhaseContext(settings=settings, signals=signals, log=log, notifier=Notifier(env={}))
        PhaseRunner(ctx).run_all(phases.plan(argv[0]))
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


def _cancel_statements() -> None:
    """The supervisor died: cancel the running migration statement (its transaction rolls back).

    The migration lock lives on a connection of its own that is idle meanwhile: it is
    released when this process exits and the kernel closes that connection.
    """
    inflight = sys.modules.get("supervisor.migrations.inflight")
    if inflight is not None:  # loaded only once a phase opened a migration connection
        inflight.cancel_all()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

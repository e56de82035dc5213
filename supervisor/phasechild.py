"""The supervisor's side of ``phaserun``: start it, relay its lines, read its outcome."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import logsetup
from .exitcodes import ExitCode
from .phaserun import INTERRUPTED, SUPERVISOR_PID
from .relay import StreamRelay


@dataclass(frozen=True)
class Outcome:
    """How the phases ended: ``ok``, ``interrupted`` (a stop), or ``failed`` with its exit code."""

    kind: str
    exit_code: int = 0
    error: str = ""
    hint: str = ""


class PhaseChild:
    """A running ``phaserun`` process whose JSON lines join the supervisor's stream."""

    def __init__(self, names: list[str], env: dict[str, str]) -> None:
        env = dict(env)
        env[SUPERVISOR_PID] = str(os.getpid())
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.failure: dict[str, Any] | None = None
        self.current_phase: str | None = None  # for `jarlpm status` while it runs
        self.process = subprocess.Popen(
            [sys.executable, "-m", "supervisor.phaserun", *names],
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

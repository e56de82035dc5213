"""Stopping: the phases first, then drain, close, TERM, GRACEFUL_TIMEOUT, KILL; nothing left behind.

Called from the arbiter's loop (a stop signal, a crash loop, failed phases); the
waits here keep reaping and answering ``jarlpm status``, and a second stop signal
escalates to SIGKILL.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from supervisor.contract import control
from supervisor.contract.exitcodes import ExitCode
from supervisor.supervision import backlog, forking
from supervisor.supervision.reloading import CLOSE_GRACE, discard_spares, interrupted
from supervisor.supervision.server_process import ServerProcess
from supervisor.system import reaper

if TYPE_CHECKING:
    from supervisor.supervision.arbiter import Arbiter

KILL_WAIT = 5.0
STOP_SIGNALS = (signal.SIGQUIT, signal.SIGINT, signal.SIGTERM)


def stop(arb: Arbiter, graceful: bool, signame: str | None, exit_code: ExitCode = ExitCode.OK) -> None:
    """Let the phases end, drain, TERM, wait GRACEFUL_TIMEOUT, KILL; then clear every descendant."""
    if arb.state == "stopping":
        return
    fields: dict[str, object] = {"during": "phases"} if arb.state == "starting" else {
        "drain_delay_s": arb.settings.drain_delay if graceful else 0,
        "graceful_timeout_s": arb.settings.graceful_timeout if graceful else 0}
    arb.state = "stopping"
    arb.restart_due.clear()
    arb.log.info("supervisor.stopping", signal=signame, graceful=graceful, **fields)
    arb.notifier.stopping()
    forking.retire(arb)  # nothing more to fork; it serves nothing, so it needs no drain
    interrupted(arb)  # `jarlpm reload` clients waiting for a reload hear it now, not at EOF
    watcher, arb.code_watcher = arb.code_watcher, None
    if watcher is not None:  # RELOAD: no reload while stopping
        watcher.close()
    graceful = wait_for_phases(arb, graceful)
    discard_spares(arb)
    if not arb.released:  # stopped during the start-up phases: nothing ever served
        abort(arb)
        arb.exit_code = exit_code
        return
    procs = [p for p in arb.processes() if p.alive]
    for proc in procs:
        proc.stop_requested = True
    if graceful and procs:
        graceful = drain(arb, procs)
    if graceful and procs:
        for proc in procs:
            proc.send(control.CLOSE)
        graceful = wait_until(arb, time.monotonic() + CLOSE_GRACE, lambda: False, escalate=True)
    if graceful and procs:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        close_listener(arb)
        graceful = wait_for_exit(arb, arb.settings.graceful_timeout + 5, escalate=True)
    close_listener(arb)
    for proc in [p for p in arb.processes() if p.alive]:
        proc.kill_group(signal.SIGKILL)
    wait_for_exit(arb, KILL_WAIT, escalate=False)
    clear_descendants(arb)
    arb.exit_code = exit_code


def wait_for_phases(arb: Arbiter, graceful: bool) -> bool:
    """A running phase process finishes or rolls back its current revision, then exits.

    SIGQUIT, a second stop signal or the deadline kill it instead; False if escalated.
    """
    child = arb.phase_child
    if child is None:
        return graceful
    child.request_stop(signal.SIGTERM if graceful else signal.SIGKILL)
    deadline = time.monotonic() + max(60.0, arb.settings.graceful_timeout)
    graceful = wait_until(arb, deadline, lambda: arb.phase_child is None, escalate=True) and graceful
    if arb.phase_child is not None:
        arb.phase_child.request_stop(signal.SIGKILL)
        wait_until(arb, time.monotonic() + KILL_WAIT, lambda: arb.phase_child is None, escalate=False)
    return graceful


def drain(arb: Arbiter, procs: list[ServerProcess]) -> bool:
    """Readiness turns 503 for DRAIN_DELAY while requests are still served."""
    for proc in procs:
        proc.send(control.DRAIN)
    if arb.settings.drain_delay <= 0:
        return True
    return wait_until(arb, time.monotonic() + arb.settings.drain_delay, lambda: False, escalate=True)


def wait_for_exit(arb: Arbiter, timeout: float, escalate: bool) -> bool:
    return wait_until(arb, time.monotonic() + timeout, lambda: not any(p.alive for p in arb.processes()),
                      escalate)


def wait_until(arb: Arbiter, deadline: float, done: Callable[[], bool], escalate: bool) -> bool:
    """Keep reaping until ``done()`` or the deadline; False if a second stop signal escalated."""
    while not done() and time.monotonic() < deadline:
        arb.wait_for_events(min(0.1, max(0.0, deadline - time.monotonic())))
        arb.handle_messages()
        arb.reap()
        arb.serve_status()
        arb.metrics.observe_processes(arb.processes())
        for sig in arb.signals.drain():
            if escalate and sig in STOP_SIGNALS:
                arb.log.warning("supervisor.stop_escalated", signal=signal.Signals(sig).name)
                if arb.phase_child is not None:
                    arb.phase_child.request_stop(signal.SIGKILL)
                return False
    return True


def close_listener(arb: Arbiter) -> None:
    """Close the socket, first answering 503 to the connections queued in it (see ``backlog``)."""
    if arb.listener is not None:
        listener, arb.listener = arb.listener, None
        answered = backlog.answer_and_close(listener)
        if answered:
            arb.log.info("supervisor.backlog_answered", connections=answered, status=503)


def clear_descendants(arb: Arbiter) -> None:
    """Nothing the supervisor started, even indirectly, outlives it."""
    for _ in range(3):
        killed = reaper.kill_children(exclude=arb.protected_pids())
        if killed:
            arb.log.warning("supervisor.orphans_killed", pids=killed)
        deadline = time.monotonic() + 2
        while reaper.direct_children() and time.monotonic() < deadline:
            arb.reap()
            if not set(reaper.direct_children()) - arb.protected_pids():
                break
            time.sleep(0.02)
        arb.reap()
        if not set(reaper.direct_children()) - arb.protected_pids():
            return


def abort(arb: Arbiter) -> None:
    """Kill the processes that never served (the phases failed or were stopped), and every descendant."""
    arb.state = "stopping"
    forking.retire(arb)
    for proc in arb.processes():
        proc.stop_requested = True
        proc.kill_group(signal.SIGKILL)
    wait_for_exit(arb, KILL_WAIT, escalate=False)
    close_listener(arb)
    clear_descendants(arb)

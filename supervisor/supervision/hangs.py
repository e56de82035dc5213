"""Hang detection: a server process whose event loop stalls is dumped (SIGUSR1 stacks), then killed.

Ready processes beat from their event loop into a shared cell (``contract.heartbeat``)
that is read only when a process's deadline comes (``next_deadline``), so a healthy
service wakes the supervisor about once per ``HEARTBEAT_TIMEOUT``, not once a second; a
released process that is not ready yet is stuck in its lifespan startup after
``startup_timeout``.  Either way faulthandler prints every thread's stack first, so
``child.unresponsive`` says where.
"""

from __future__ import annotations

import signal
import time
from typing import TYPE_CHECKING

from supervisor.supervision import server_process
from supervisor.supervision.server_process import ServerProcess
from supervisor.system import reaper

if TYPE_CHECKING:
    from supervisor.supervision.arbiter import Arbiter

DUMP_WAIT = 2.0  # seconds a stalled process gets to print its stacks before SIGKILL
DUMP_POLL = 0.1  # the dump arrives through a relay thread, which does not wake the loop
SLACK = 0.001  # wake just after a deadline, not just before it (select may round down)


def startup_timeout(arb: Arbiter) -> float:
    """How long a released process may take to become ready (lifespan startup included)."""
    return max(10.0, 2 * arb.settings.heartbeat_timeout)


def watched_since(arb: Arbiter, proc: ServerProcess) -> tuple[float, float] | None:
    """(last sign of life, how long it may last), or None for a process not watched."""
    # Already killed for a stall, not yet reaped: one child.unresponsive per stall
    # (a SIGSTOPped process once got a dozen within 30 ms, issue #16).
    if not proc.alive or proc.stop_requested or proc.unresponsive:
        return None
    if proc.ready:
        return proc.last_heartbeat, arb.settings.heartbeat_timeout
    if proc.go_at is not None:
        # Stuck in lifespan startup (a hung pool warm-up, a deadlock): same treatment.
        return proc.go_at, startup_timeout(arb)
    return None  # not released (prespawned, standby): it has nothing to do yet


def next_deadline(arb: Arbiter) -> float | None:
    """The earliest moment ``check_heartbeats`` may have something to do (None: nothing watched)."""
    dues = []
    for proc in arb.processes():
        watched = watched_since(arb, proc)
        if watched is None:
            continue
        if proc.dump_requested_at is not None:
            dues.append(min(proc.dump_requested_at + DUMP_WAIT, time.monotonic() + DUMP_POLL))
        else:
            dues.append(watched[0] + watched[1] + SLACK)
    return min(dues, default=None)


def check_heartbeats(arb: Arbiter) -> None:
    now = time.monotonic()
    for proc in arb.processes():
        watched = watched_since(arb, proc)
        if watched is None:
            continue
        stalled, limit = now - watched[0], watched[1]
        if proc.dump_requested_at is None and stalled > limit:
            proc.dump_requested_at = now
            proc.send_signal(signal.SIGUSR1)  # faulthandler prints every thread's stack
        elif proc.dump_requested_at is not None:
            dump_quiet = proc.dump.lines and now - proc.dump.last_line_at > 0.3
            if dump_quiet or now - proc.dump_requested_at > DUMP_WAIT:
                kill_unresponsive(arb, proc, stalled)


def kill_unresponsive(arb: Arbiter, proc: ServerProcess, stalled: float) -> None:
    stacks = proc.dump.take()
    state = reaper.process_state(proc.pid)
    arb.log.error(
        "child.unresponsive", pid=proc.pid, worker=proc.slot, stalled_s=round(stalled, 1),
        during="serving" if proc.ready else "startup",
        heartbeat_timeout_s=arb.settings.heartbeat_timeout, stacks=stacks, process_state=state,
        hint=server_process.unresponsive_hint(state, bool(stacks)),
    )
    proc.unresponsive = True
    proc.kill_group(signal.SIGKILL)

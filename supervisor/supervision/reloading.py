"""SIGHUP: the ``reload`` plan in a phase process, then the slots replaced one by one.

The decisions (which slot next, spares, abort, end) are ``rollout.Rollout``'s; the
functions here carry them out on the arbiter: spawn, release, retire, log.  The
arbiter's one loop drives everything (the phase process is reaped there too), so
the old processes keep serving while the new code migrates and imports.

``jarlpm reload`` asks over the status socket (``requested``): its client waits for
the outcome (``answer_waiters``), and a request during a reload joins it.
"""

from __future__ import annotations

import signal
import socket
import time
from typing import TYPE_CHECKING, Any

from supervisor.contract import control
from supervisor.contract.exitcodes import ExitCode
from supervisor.supervision import forking, standby
from supervisor.supervision.phase_process import Outcome
from supervisor.supervision.rollout import End, Replace, Rollout, Wait
from supervisor.supervision.server_process import ServerProcess

if TYPE_CHECKING:
    from supervisor.supervision.arbiter import Arbiter

# Between "stop accepting" and SIGTERM: connections a process has just accepted get their
# request read before uvicorn's shutdown would close them unanswered.
CLOSE_GRACE = 0.5


def reload(arb: Arbiter) -> None:
    """Start the reload's migration (the loop keeps supervising) while spares import the new code."""
    if arb.state != "running" or arb.rollout is not None or arb.phase_child is not None:
        arb.log.warning("supervisor.reload_ignored", state=arb.state,
                        hint="a reload or stop is already under way")
        return
    arb.cancel_recycling()  # the reload replaces every slot
    arb.state = "reloading"
    arb.reload_failure = None
    arb.reloads += 1
    arb.log.info("supervisor.reloading", workers=len(arb.slots))
    arb.notifier.reloading()
    standby.discard(arb)  # it imported the code being replaced; a new one follows the reload
    forking.retire(arb)  # the same: a new fork server imports the new code once the reload is over
    arb.start_phases("reload")
    arb.rollout = Rollout(arb.slots, {slot: arb.spawn(slot, release=False) for slot in sorted(arb.slots)})


def requested(arb: Arbiter, client: socket.socket) -> None:
    """``jarlpm reload``: start a reload (or join the one under way); answer when it ends."""
    if arb.state == "running":
        reload(arb)
    if arb.state == "reloading":
        arb.reload_waiters.append(client)
        return
    _answer(arb, client, {"result": "refused", "exit_code": int(ExitCode.TEMPFAIL),
                          "error": f"the supervisor is {arb.state}: it cannot reload now",
                          "hint": "retry once `jarlpm status` shows it running"})


def answer_waiters(arb: Arbiter, outcome: dict[str, Any]) -> None:
    """Tell every waiting ``jarlpm reload`` the outcome (``result``, ``exit_code``, why)."""
    waiters, arb.reload_waiters = arb.reload_waiters, []
    for client in waiters:
        _answer(arb, client, outcome)


def _answer(arb: Arbiter, client: socket.socket, payload: dict[str, Any]) -> None:
    if arb.status is not None:
        arb.status.answer(client, payload)


def _failed(arb: Arbiter, reason: str, exit_code: int, error: str, hint: str) -> None:
    arb.reload_failure = {"result": "failed", "reason": reason, "exit_code": exit_code,
                          "error": error, "hint": hint}
    answer_waiters(arb, arb.reload_failure)


def migrated(arb: Arbiter, outcome: Outcome) -> None:
    """The reload's migration ended: replace the processes, or say why not."""
    rollout = arb.rollout
    if arb.state != "reloading" or rollout is None:
        return
    if outcome.kind == "failed" and not rollout.aborted:
        outcome.log_failure(arb.log)
        arb.metrics.reload("failed")
        hint = outcome.hint + "; the running server processes keep serving the previous code"
        arb.log.error("supervisor.reload_failed", reason="migrate", error=outcome.error,
                      exit_code=outcome.exit_code, hint=hint)
        _failed(arb, "migrate", outcome.exit_code, outcome.error, hint)
    apply(arb, rollout.migrated(outcome.kind == "ok"))


def ready(arb: Arbiter, proc: ServerProcess) -> None:
    """A process became ready: if it replaces a slot, it takes it and the old one drains."""
    if arb.rollout is None:
        return
    decision = arb.rollout.ready(proc.slot, proc)
    if decision is None:
        return
    old = arb.slots.get(proc.slot)
    arb.slots[proc.slot] = proc
    if old is not None:
        retire(arb, old)
    apply(arb, decision)


def retire(arb: Arbiter, old: ServerProcess) -> None:
    """A replacement serves in ``old``'s place: readiness 503, stop accepting, SIGTERM after CLOSE_GRACE."""
    if not old.alive:
        return
    old.stop_requested = True
    old.send(control.DRAIN)
    old.send(control.CLOSE)
    old.term_due = time.monotonic() + CLOSE_GRACE
    arb.retiring.append(old)


def new_process_died(arb: Arbiter, proc: ServerProcess, why: str) -> None:
    """The new code cannot start: the old processes keep serving (no crash loop)."""
    assert arb.rollout is not None
    arb.metrics.reload("failed")
    error = f"the new server process {why} before becoming ready"
    hint = "the previous processes keep serving; fix the error and reload again"
    arb.log.error("supervisor.reload_failed", reason="new_process_died", pid=proc.pid, error=error,
                  stderr_tail=list(proc.stderr_tail)[-20:], hint=hint)
    _failed(arb, "new_process_died", int(ExitCode.SOFTWARE), error, hint)
    decision = arb.rollout.new_process_died(proc)
    discard_spares(arb)
    apply(arb, decision)


def apply(arb: Arbiter, decision: Replace[ServerProcess] | End | Wait) -> None:
    rollout = arb.rollout
    assert rollout is not None
    if isinstance(decision, Replace):
        spare = decision.spare
        if spare is not None and spare.alive:
            arb.log.info("child.spawned", pid=spare.pid, worker=decision.slot, prespawned=True,
                         imported_for_ms=round((time.monotonic() - spare.spawned_at) * 1000))
            spare.release()
            rollout.started(decision.slot, spare)
        else:
            rollout.started(decision.slot, arb.spawn(decision.slot))
    elif isinstance(decision, End):
        pids = [p.pid for p in arb.slots.values() if p]
        if decision.reloaded:
            arb.metrics.reload("success")
            arb.log.info("supervisor.reloaded", pids=pids)
        answer_waiters(arb, {"result": "reloaded", "exit_code": 0, "pids": pids} if decision.reloaded
                       else arb.reload_failure or _interrupted())
        discard_spares(arb)
        arb.rollout = None
        arb.state = "running"
        arb.notifier.ready("serving (reloaded)")


def _interrupted() -> dict[str, Any]:
    return {"result": "interrupted", "exit_code": int(ExitCode.TEMPFAIL),
            "error": "the reload was interrupted (the supervisor is stopping)",
            "hint": "the supervisor stops on request; start it again to run the new code"}


def interrupted(arb: Arbiter) -> None:
    """A stop came during a reload: its waiting clients learn it now."""
    answer_waiters(arb, arb.reload_failure or _interrupted())


def discard_spares(arb: Arbiter) -> None:
    if arb.rollout is None:
        return
    for spare in arb.rollout.take_spares():  # never released: they never served
        spare.stop_requested = True
        spare.kill_group()
        arb.retiring.append(spare)  # reaped and logged like any other


def send_due_terms(arb: Arbiter) -> None:
    """SIGTERM the retired processes whose CLOSE_GRACE is over."""
    now = time.monotonic()
    for proc in arb.retiring:
        if proc.term_due is not None and proc.term_due <= now and proc.alive:
            proc.term_due = None
            proc.send_signal(signal.SIGTERM)

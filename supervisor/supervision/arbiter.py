"""The supervision loop: spawn, watch, restart, reload and stop the server processes.

``run()`` reads like its table of contents: wait for an event, handle signals,
read the processes' messages, reap, check heartbeats, start due restarts, move a
reload along, announce readiness, feed the watchdog.  Signal handlers only enqueue
(see ``signals``); everything happens here, in one thread.
"""

from __future__ import annotations

import contextlib
import select
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from supervisor.contract.config import Settings
from supervisor.contract.exitcodes import ExitCode
from supervisor.supervision import backlog
from supervisor.supervision import server_process as childmod
from supervisor.supervision.phase_process import PhaseChild
from supervisor.supervision.restart_policy import GiveUp, RestartPolicy
from supervisor.supervision.server_process import ServerProcess
from supervisor.supervision.status import StatusServer
from supervisor.system import reaper
from supervisor.system.notify import Notifier
from supervisor.system.signals import SignalQueue

TICK = 0.25
DUMP_WAIT = 2.0  # seconds a stalled process gets to print its stacks before SIGKILL
KILL_WAIT = 5.0
# Between "stop accepting" and SIGTERM: connections a process has just accepted get their
# request read before uvicorn's shutdown would close them unanswered.
CLOSE_GRACE = 0.5
# A process heartbeats every second: one silent for longer is not answering now, even if
# HEARTBEAT_TIMEOUT has not yet run out; `jarlpm status` says so instead of "ready".
RESPONSIVE_WITHIN = 5.0


class Arbiter:
    """Owns the server processes for the supervisor's lifetime."""

    def __init__(self, settings: Settings, signals: SignalQueue, log: Any, notifier: Notifier,
                 listener: socket.socket, env: dict[str, str],
                 status: StatusServer | None = None,
                 reload_phases: list[str] | None = None,
                 protected_pids: Callable[[], set[int]] = set) -> None:
        self.settings = settings
        self.signals = signals
        self.log = log
        self.notifier = notifier
        self.listener: socket.socket | None = listener
        self.env = env
        self.status = status
        self.reload_phases = reload_phases
        self.protected_pids = protected_pids
        self.policy = RestartPolicy(settings.crash_loop_limit, settings.restart_backoff_max)
        self.slots: dict[int, ServerProcess | None] = {i: None for i in range(settings.workers)}
        self.retiring: list[ServerProcess] = []
        self.restart_due: dict[int, float] = {}
        self.replacing: dict[int, ServerProcess] = {}
        self.reload_queue: list[int] = []
        self.released = False
        self.announced_ready = False
        self.state = "starting"
        self.started_at = time.monotonic()
        self.exit_code: ExitCode | None = None
        self.last_exit: dict[int, dict[str, Any]] = {}
        self.reloads = 0
        self.reload_child: PhaseChild | None = None
        self.phase_child: PhaseChild | None = None  # the start-up phases' runner, while it runs
        # Replacements that import the new code while the reload's migration runs.
        self.spares: dict[int, ServerProcess] = {}
        self.reload_aborted = False

    # -- the loop --------------------------------------------------------------------
    def prespawn(self) -> None:
        """Start every server process now so imports overlap the phases; they wait for ``go``."""
        for slot in self.slots:
            self.slots[slot] = self.spawn(slot)

    def run(self) -> ExitCode:
        """Release the processes and supervise until a stop or a crash loop; return the exit code."""
        self.released = True
        self.state = "running"
        now = time.monotonic()
        for proc in self.processes():
            self.log.info("child.spawned", pid=proc.pid, worker=proc.slot, prespawned=True,
                          imported_for_ms=round((now - proc.spawned_at) * 1000))
            proc.release()
        for slot, existing in self.slots.items():
            if existing is None:  # not prespawned (development mode's embedded database)
                self.slots[slot] = self.spawn(slot)
        while self.exit_code is None:
            self.wait_for_events(TICK)
            self.handle_signals()
            self.handle_messages()
            self.reap()
            self.check_heartbeats()
            self.start_due_restarts()
            self.send_due_terms()
            self.announce_readiness()
            self.notifier.watchdog(self.healthy())
            self.serve_status()
        return self.exit_code

    def processes(self) -> list[ServerProcess]:
        procs = [p for p in self.slots.values() if p is not None]
        return procs + list(self.replacing.values()) + list(self.spares.values()) + self.retiring

    def wait_for_events(self, timeout: float) -> None:
        fds: list[Any] = [self.signals.fileno]
        fds += [p.control for p in self.processes() if p.alive]
        if self.status is not None:
            fds.append(self.status)
        dues = list(self.restart_due.values()) + [p.term_due for p in self.retiring if p.term_due]
        if dues:
            timeout = max(0.0, min(timeout, min(dues) - time.monotonic()))
        with contextlib.suppress(InterruptedError, ValueError, OSError):
            select.select(fds, [], [], timeout)

    # -- signals ---------------------------------------------------------------------
    def handle_signals(self) -> None:
        for sig in self.signals.drain():
            if sig in (signal.SIGTERM, signal.SIGINT):
                self.stop(graceful=True, signame=signal.Signals(sig).name)
            elif sig == signal.SIGQUIT:
                self.stop(graceful=False, signame="SIGQUIT")
            elif sig == signal.SIGHUP:
                self.reload()
            if self.exit_code is not None:
                return

    # -- messages from the processes ---------------------------------------------------
    def handle_messages(self) -> None:
        now = time.monotonic()
        for proc in self.processes():
            for message in proc.read_messages():
                if message == "hb":
                    proc.last_heartbeat = now
                elif message == "ready" and proc.ready_at is None:
                    self.on_ready(proc, now)

    def on_ready(self, proc: ServerProcess, now: float) -> None:
        proc.ready_at = now
        proc.last_heartbeat = now
        self.policy.on_ready(proc.slot)
        self.log.info("child.ready", pid=proc.pid, worker=proc.slot,
                      startup_ms=round((now - proc.spawned_at) * 1000))
        if proc.slot in self.replacing and self.replacing[proc.slot] is proc:
            self.finish_replacement(proc.slot)

    def announce_readiness(self) -> None:
        if self.announced_ready or self.state != "running":
            return
        if all(p is not None and p.ready for p in self.slots.values()):
            self.announced_ready = True
            pids = [p.pid for p in self.slots.values() if p is not None]
            self.log.info("supervisor.ready", workers=len(pids), pids=pids,
                          listen=f"{self.settings.host}:{self.settings.port}",
                          startup_ms=round((time.monotonic() - self.started_at) * 1000))
            self.notifier.ready(f"serving on {self.settings.host}:{self.settings.port} "
                                f"with {len(pids)} worker(s)")

    def healthy(self, within: float | None = None) -> bool:
        """Every slot has a ready process whose heartbeat is fresh (``within`` seconds, else HEARTBEAT_TIMEOUT)."""
        now = time.monotonic()
        limit = self.settings.heartbeat_timeout if within is None else min(within, self.settings.heartbeat_timeout)
        return all(p is not None and p.ready and now - p.last_heartbeat < limit
                   for p in self.slots.values())

    # -- spawning and deaths -------------------------------------------------------------
    def spawn(self, slot: int, release: bool = True) -> ServerProcess:
        assert self.listener is not None
        proc = childmod.spawn(slot, self.settings, self.listener, self.env)
        if self.released and release:
            self.log.info("child.spawned", pid=proc.pid, worker=slot)
            proc.release()
        else:
            # It imports the app while the phases run; it becomes a server on release.
            self.log.debug("child.prespawned", pid=proc.pid, worker=slot)
        return proc

    def find(self, pid: int) -> ServerProcess | None:
        for proc in self.processes():
            if proc.pid == pid:
                return proc
        return None

    def reap(self) -> None:
        for pid, status in reaper.reap_any():
            if self.reload_child is not None and pid == self.reload_child.pid:
                self.on_reload_migrated(status)
                continue
            proc = self.find(pid)
            if proc is None:
                self.log.debug("child.reaped_orphan", pid=pid)
                continue
            self.on_exit(proc, status)

    def on_exit(self, proc: ServerProcess, status: int) -> None:
        exit_status = proc.mark_exited(status)
        proc.kill_group()  # helpers the app started die with their server process
        escaped = proc.kill_escaped()  # and so do those that daemonised out of its group
        if escaped:
            self.log.warning("supervisor.orphans_killed", pids=escaped, of_pid=proc.pid, worker=proc.slot)
        for relay in proc.relays:
            relay.join(0.5)
        was_ready = proc.ready
        fields = exit_status.as_fields()
        hint = childmod.exit_hint(exit_status, was_ready, proc.stop_requested)
        if proc.unresponsive:
            hint = "killed by the supervisor after its event loop stalled (see child.unresponsive)"
        level = "info" if proc.stop_requested else "error"
        getattr(self.log, level)(
            "child.exited", pid=proc.pid, worker=proc.slot, **fields,
            uptime_s=round(proc.uptime(), 3), was_ready=was_ready,
            stderr_tail=list(proc.stderr_tail)[-20:], hint=hint,
        )
        self.last_exit[proc.slot] = {"pid": proc.pid, **fields, "at": time.time()}
        new_for_reload = self.replacing.get(proc.slot) is proc or self.spares.get(proc.slot) is proc
        self.detach(proc)
        proc.close(relay_timeout=0.1)
        if proc.stop_requested or self.state == "stopping":
            return
        if new_for_reload:
            # The new code cannot start; the old processes keep serving, so no crash loop.
            self.abort_reload(proc, exit_status.describe())
            return
        decision = self.policy.on_exit(proc.slot, was_ready, proc.uptime())
        if isinstance(decision, GiveUp):
            self.give_up(decision, proc)
            return
        if self.slots.get(proc.slot) is None and proc.slot not in self.restart_due:
            self.log.warning("child.restarting", worker=proc.slot, delay_s=decision.delay,
                             restarts=decision.restarts, previous_pid=proc.pid)
            self.restart_due[proc.slot] = time.monotonic() + decision.delay

    def detach(self, proc: ServerProcess) -> None:
        if self.slots.get(proc.slot) is proc:
            self.slots[proc.slot] = None
        if self.replacing.get(proc.slot) is proc:
            del self.replacing[proc.slot]
        if proc in self.retiring:
            self.retiring.remove(proc)
        if self.spares.get(proc.slot) is proc:
            del self.spares[proc.slot]

    def start_due_restarts(self) -> None:
        if self.state not in ("running", "reloading"):
            return
        now = time.monotonic()
        for slot, due in sorted(self.restart_due.items()):
            if due <= now:
                del self.restart_due[slot]
                self.slots[slot] = self.spawn(slot)

    def give_up(self, decision: GiveUp, last: ServerProcess) -> None:
        self.log.error(
            "child.crash_loop", deaths=decision.deaths, limit=self.settings.crash_loop_limit,
            last_pid=last.pid, stderr_tail=list(last.stderr_tail)[-20:],
            hint="every server process died before becoming ready: fix the error in stderr_tail "
                 "(import error, bad JARLPM_APP, failing lifespan startup) and start again",
        )
        self.stop(graceful=False, signame=None, exit_code=ExitCode.SOFTWARE)

    # -- hangs -----------------------------------------------------------------------------
    def startup_timeout(self) -> float:
        """How long a released process may take to become ready (lifespan startup included)."""
        return max(10.0, 2 * self.settings.heartbeat_timeout)

    def check_heartbeats(self) -> None:
        now = time.monotonic()
        for proc in self.processes():
            # Already killed for a stall, not yet reaped: one child.unresponsive per stall
            # (a SIGSTOPped process once got a dozen within 30 ms, issue #16).
            if not proc.alive or proc.stop_requested or proc.unresponsive:
                continue
            if proc.ready:
                stalled = now - proc.last_heartbeat
                limit = self.settings.heartbeat_timeout
            elif proc.go_at is not None:
                # Stuck in lifespan startup (a hung pool warm-up, a deadlock): same treatment.
                stalled = now - proc.go_at
                limit = self.startup_timeout()
            else:
                continue
            if proc.dump_requested_at is None and stalled > limit:
                proc.dump_requested_at = now
                proc.send_signal(signal.SIGUSR1)  # faulthandler prints every thread's stack
            elif proc.dump_requested_at is not None:
                dump_quiet = proc.dump.lines and now - proc.dump.last_line_at > 0.3
                if dump_quiet or now - proc.dump_requested_at > DUMP_WAIT:
                    self.kill_unresponsive(proc, stalled)

    def kill_unresponsive(self, proc: ServerProcess, stalled: float) -> None:
        stacks = proc.dump.take()
        state = reaper.process_state(proc.pid)
        self.log.error(
            "child.unresponsive", pid=proc.pid, worker=proc.slot, stalled_s=round(stalled, 1),
            during="serving" if proc.ready else "startup",
            heartbeat_timeout_s=self.settings.heartbeat_timeout, stacks=stacks, process_state=state,
            hint=childmod.unresponsive_hint(state, bool(stacks)),
        )
        proc.unresponsive = True
        proc.kill_group(signal.SIGKILL)

    # -- reload ----------------------------------------------------------------------------
    def reload(self) -> None:
        """Re-run migrate in a child process (the loop keeps supervising), then replace the servers."""
        if self.state != "running" or self.replacing or self.reload_queue or self.reload_child:
            self.log.warning("supervisor.reload_ignored", state=self.state,
                             hint="a reload or stop is already under way")
            return
        self.state = "reloading"
        self.reloads += 1
        self.log.info("supervisor.reloading", workers=len(self.slots))
        self.notifier.reloading()
        if not self.reload_phases:
            self.reload_queue = sorted(self.slots)
            self.replace_next()
            return
        self.reload_child = PhaseChild(self.reload_phases, self.env)
        self.spares = {slot: self.spawn(slot, release=False) for slot in sorted(self.slots)}

    def on_reload_migrated(self, wait_status: int) -> None:
        """The reload's migration ended: replace the processes, or say why not."""
        child, self.reload_child = self.reload_child, None
        assert child is not None
        outcome = child.outcome(wait_status)
        if self.state != "reloading":
            return
        if self.reload_aborted:
            self.end_reload()
            return
        if outcome.kind == "ok":
            self.reload_queue = sorted(self.slots)
            self.replace_next()
            return
        if outcome.kind == "failed":
            self.log.error("supervisor.reload_failed", reason="migrate", error=outcome.error,
                           exit_code=outcome.exit_code,
                           hint=outcome.hint + "; the running server processes keep serving the previous code")
        self.end_reload()

    def replace_next(self) -> None:
        if not self.reload_queue:
            self.log.info("supervisor.reloaded", pids=[p.pid for p in self.slots.values() if p])
            self.end_reload()
            return
        slot = self.reload_queue.pop(0)
        spare = self.spares.pop(slot, None)
        if spare is not None and spare.alive:
            self.log.info("child.spawned", pid=spare.pid, worker=slot, prespawned=True,
                          imported_for_ms=round((time.monotonic() - spare.spawned_at) * 1000))
            spare.release()
            self.replacing[slot] = spare
        else:
            self.replacing[slot] = self.spawn(slot)

    def finish_replacement(self, slot: int) -> None:
        new = self.replacing.pop(slot)
        old = self.slots.get(slot)
        self.slots[slot] = new
        if old is not None and old.alive:
            old.stop_requested = True
            old.send("drain")
            old.send("close")
            old.term_due = time.monotonic() + CLOSE_GRACE
            self.retiring.append(old)
        self.replace_next()

    def send_due_terms(self) -> None:
        now = time.monotonic()
        for proc in self.retiring:
            if proc.term_due is not None and proc.term_due <= now and proc.alive:
                proc.term_due = None
                proc.send_signal(signal.SIGTERM)

    def abort_reload(self, proc: ServerProcess, why: str) -> None:
        self.log.error("supervisor.reload_failed", reason="new_process_died", pid=proc.pid,
                       error=f"the new server process {why} before becoming ready",
                       stderr_tail=list(proc.stderr_tail)[-20:],
                       hint="the previous processes keep serving; fix the error and send SIGHUP again")
        self.reload_queue.clear()
        if self.reload_child is not None:
            # Its migration may finish (harmless: the schema is at the new head either way);
            # the reload ends when it does, so a new SIGHUP waits until then.
            self.reload_aborted = True
            self.discard_spares()
            return
        self.end_reload()

    def discard_spares(self) -> None:
        for spare in self.spares.values():  # never released: they never served
            spare.stop_requested = True
            spare.kill_group()
            self.retiring.append(spare)  # reaped and logged like any other
        self.spares.clear()

    def end_reload(self) -> None:
        self.discard_spares()
        self.reload_aborted = False
        self.state = "running"
        self.notifier.ready("serving (reloaded)")

    # -- stopping --------------------------------------------------------------------------
    def stop(self, graceful: bool, signame: str | None, exit_code: ExitCode = ExitCode.OK) -> None:
        """Drain, TERM, wait GRACEFUL_TIMEOUT, KILL; then clear every descendant."""
        if self.state == "stopping":
            return
        self.state = "stopping"
        self.restart_due.clear()
        self.reload_queue.clear()
        self.log.info("supervisor.stopping", signal=signame, graceful=graceful,
                      drain_delay_s=self.settings.drain_delay if graceful else 0,
                      graceful_timeout_s=self.settings.graceful_timeout if graceful else 0)
        self.notifier.stopping()
        self.wait_for_reload_migration()
        procs = [p for p in self.processes() if p.alive]
        for proc in procs:
            proc.stop_requested = True
        if graceful and procs:
            graceful = self.drain(procs)
        if graceful and procs:
            for proc in procs:
                proc.send("close")
            graceful = self.wait_until(time.monotonic() + CLOSE_GRACE, lambda: False, escalate=True)
        if graceful and procs:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            self.close_listener()
            graceful = self.wait_for_exit(self.settings.graceful_timeout + 5, escalate=True)
        self.close_listener()
        for proc in [p for p in self.processes() if p.alive]:
            proc.kill_group(signal.SIGKILL)
        self.wait_for_exit(KILL_WAIT, escalate=False)
        self.clear_descendants()
        self.exit_code = exit_code

    def wait_for_reload_migration(self) -> None:
        """A stop during a reload's migration lets the current revision finish or roll back."""
        if self.reload_child is None:
            return
        self.reload_child.request_stop()
        deadline = time.monotonic() + max(60.0, self.settings.graceful_timeout)
        self.wait_until(deadline, lambda: self.reload_child is None, escalate=False)
        if self.reload_child is not None:
            self.reload_child.request_stop(signal.SIGKILL)

    def drain(self, procs: list[ServerProcess]) -> bool:
        """Readiness turns 503 for DRAIN_DELAY while requests are still served."""
        for proc in procs:
            proc.send("drain")
        if self.settings.drain_delay <= 0:
            return True
        return self.wait_until(time.monotonic() + self.settings.drain_delay, lambda: False, escalate=True)

    def wait_for_exit(self, timeout: float, escalate: bool) -> bool:
        return self.wait_until(time.monotonic() + timeout,
                               lambda: not any(p.alive for p in self.processes()), escalate)

    def wait_until(self, deadline: float, done: Callable[[], bool], escalate: bool) -> bool:
        """Keep reaping until ``done()`` or the deadline; False if a second stop signal escalated."""
        while not done() and time.monotonic() < deadline:
            self.wait_for_events(min(0.1, max(0.0, deadline - time.monotonic())))
            self.handle_messages()
            self.reap()
            self.serve_status()
            for sig in self.signals.drain():
                if escalate and sig in (signal.SIGQUIT, signal.SIGINT, signal.SIGTERM):
                    self.log.warning("supervisor.stop_escalated", signal=signal.Signals(sig).name)
                    return False
        return True

    def close_listener(self) -> None:
        """Close the socket, first answering 503 to the connections queued in it (see ``backlog``)."""
        if self.listener is not None:
            listener, self.listener = self.listener, None
            answered = backlog.answer_and_close(listener)
            if answered:
                self.log.info("supervisor.backlog_answered", connections=answered, status=503)

    def clear_descendants(self) -> None:
        """Nothing the supervisor started, even indirectly, outlives it."""
        for _ in range(3):
            killed = reaper.kill_children(exclude=self.protected_pids())
            if killed:
                self.log.warning("supervisor.orphans_killed", pids=killed)
            deadline = time.monotonic() + 2
            while reaper.direct_children() and time.monotonic() < deadline:
                self.reap()
                if not set(reaper.direct_children()) - self.protected_pids():
                    break
                time.sleep(0.02)
            self.reap()
            if not set(reaper.direct_children()) - self.protected_pids():
                return

    def abort(self) -> None:
        """Stop prespawned processes when the phases failed (they never served)."""
        self.state = "stopping"
        for proc in self.processes():
            proc.stop_requested = True
            proc.kill_group(signal.SIGKILL)
        self.wait_for_exit(KILL_WAIT, escalate=False)
        self.close_listener()
        self.clear_descendants()

    # -- status ----------------------------------------------------------------------------
    def serve_status(self) -> None:
        if self.status is not None:
            self.status.serve_pending(self.snapshot)

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        workers = []
        for slot in sorted(self.slots):
            proc = self.slots[slot]
            workers.append({
                "worker": slot,
                "pid": proc.pid if proc else None,
                "ready": bool(proc and proc.ready),
                "uptime_s": round(proc.uptime(now), 1) if proc else None,
                "heartbeat_age_s": round(now - proc.last_heartbeat, 1) if proc and proc.ready else None,
                "responsive": bool(proc and proc.ready and now - proc.last_heartbeat < RESPONSIVE_WITHIN),
                "restarts": self.policy.restarts(slot),
                "last_exit": self.last_exit.get(slot),
                "restart_in_s": round(self.restart_due[slot] - now, 1) if slot in self.restart_due else None,
            })
        phases = self.phase_child or self.reload_child
        return {"state": self.state, "ready": self.announced_ready and self.healthy(RESPONSIVE_WITHIN),
                "phase": phases.current_phase if phases is not None else None,
                "uptime_s": round(now - self.started_at, 1), "reloads": self.reloads,
                "listen": f"{self.settings.host}:{self.settings.port}", "workers": workers}

"""The supervision loop: run the phases, then spawn, watch, restart, reload and stop the server processes.

``run()`` reads like its table of contents: wait for an event, handle signals,
read the processes' messages, reap (the phase process too), check heartbeats, start
due restarts, recycle, reload on changed code, move a reload along, announce
readiness, feed the watchdog, answer ``jarlpm status``/``reload``.  Signal handlers
only enqueue (see ``signals``), as does RELOAD's watching thread; everything happens
here, in one thread, from the first phase (``jarlpm check`` included) to the last
process stopped.  Reloads are in ``reloading`` (decided by the pure ``rollout``),
recycles in ``recycler``, code reloads in ``codereload``, stops in ``stopping``.
"""

from __future__ import annotations

import contextlib
import select
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from supervisor.contract import control
from supervisor.contract.config import Settings
from supervisor.contract.exitcodes import ExitCode
from supervisor.supervision import codereload, exits, hangs, metrics, recycler, recycling, reloading, standby, stopping
from supervisor.supervision import forking as forks
from supervisor.supervision import server_process as childmod
from supervisor.supervision.phase_process import PhaseChild
from supervisor.supervision.restart_policy import GiveUp, RestartPolicy
from supervisor.supervision.rollout import Rollout
from supervisor.supervision.server_process import ServerProcess
from supervisor.supervision.status import StatusServer, serve_requests
from supervisor.system import cgroups, reaper
from supervisor.system.notify import Notifier
from supervisor.system.signals import SignalQueue

# The longest the loop sleeps with nothing due: a guard, not a tick.  Everything the
# loop does has a deadline it wakes for (``next_wakeup``) or an event that wakes it
# (a signal, SIGCHLD, a message, ``jarlpm status``), so at rest it sleeps (issue #17).
MAX_SLEEP = 30.0


class Arbiter:
    """Owns the phase process and the server processes for the supervisor's lifetime.

    ``listener`` is None for ``jarlpm check``: phases only, no server process.
    """

    def __init__(self, settings: Settings, signals: SignalQueue, log: Any, notifier: Notifier,
                 listener: socket.socket | None, env: dict[str, str],
                 status: StatusServer | None = None,
                 protected_pids: Callable[[], set[int]] = set, cgroup: cgroups.RunCgroup | None = None) -> None:
        self.settings = settings
        self.signals = signals
        self.log = log
        self.notifier = notifier
        self.listener = listener
        self.env = env
        self.status = status
        self.protected_pids = protected_pids
        self.cgroup = cgroup  # this run's cgroup v2 directory, a leaf per server process (JARLPM_CGROUP)
        self.policy = RestartPolicy(settings.crash_loop_limit, settings.restart_backoff_max)
        self.slots: dict[int, ServerProcess | None] = {i: None for i in range(settings.workers)}
        self.retiring: list[ServerProcess] = []
        self.restart_due: dict[int, float] = {}
        self.released = False
        self.announced_ready = False
        self.state = "starting"
        self.started_at = time.monotonic()
        self.exit_code: ExitCode | None = None
        self.last_exit: dict[int, dict[str, Any]] = {}
        self.reloads = 0
        self.phase_child: PhaseChild | None = None  # the phase process, while one runs
        self.completed_phases: list[str] = []
        self.metrics = metrics.RECORDER  # the few figures only the loop knows (METRICS_PORT)
        self.rollout: Rollout[ServerProcess] | None = None  # the reload under way
        self.deferred_give_up: tuple[GiveUp, ServerProcess] | None = None
        self.reload_waiters: list[socket.socket] = []  # `jarlpm reload` clients awaiting the outcome
        self.reload_failure: dict[str, Any] | None = None  # the reload under way failed: why
        self.recycling: dict[int, ServerProcess] = {}  # slot -> its replacement, until it is ready
        self.recycle_after: dict[int, float] = {}  # slot -> no recycle before (its replacement died)
        self.next_memory_check = 0.0
        self.leaks = recycling.LeakWatch()
        self.code_watcher: codereload.CodeWatcher | None = None  # RELOAD, once serving
        self.changed_files: set[str] = set()
        self.standby: ServerProcess | None = None  # JARLPM_STANDBY's process in reserve
        self.standby_due: float | None = None  # when to respawn a standby that died
        self.standby_deaths = 0
        self.forking = forks.Forking(enabled=settings.jarlpm_fork_server)  # JARLPM_FORK_SERVER

    # -- the loop --------------------------------------------------------------------
    def prespawn(self) -> None:
        """Start every server process now so imports overlap the phases; they wait for ``go``."""
        for slot in [] if forks.prespawn(self) else self.slots:  # or forked once the fork server is ready
            self.slots[slot] = self.spawn(slot)

    def run(self, plan: str = "start") -> ExitCode:
        """Run ``plan``'s phases; after ``start``'s, supervise until a stop or a crash loop."""
        self.start_phases(plan)
        while self.exit_code is None:
            self.wait_for_events(self.next_wakeup() - time.monotonic())
            self.handle_signals()
            self.handle_messages()
            self.reap()
            if self.cgroup is not None:
                self.cgroup.collect()  # the leaves of exited processes, once empty
            hangs.check_heartbeats(self)
            self.start_due_restarts()
            recycler.check(self)
            codereload.check(self)
            reloading.send_due_terms(self)
            self.announce_readiness()
            forks.maintain(self)
            standby.maintain(self)
            self.metrics.observe_processes([p for p in self.processes() if p is not self.standby])
            self.notifier.watchdog(self.state == "starting" or self.healthy())
            self.serve_status()
        return self.exit_code

    def start_phases(self, plan: str) -> None:
        """Run a plan of ``phases.PLANS`` in a phase process; the loop reaps it (``on_phases_ended``)."""
        s = self.settings
        self.notifier.extend_timeout(s.db_wait_timeout + s.migration_lock_timeout + 660)
        self.phase_child = PhaseChild(plan, self.env, self.cgroup)

    def on_phases_ended(self, wait_status: int) -> None:
        child, self.phase_child = self.phase_child, None
        assert child is not None
        outcome = child.outcome(wait_status)
        if child.plan == "reload":
            reloading.migrated(self, outcome)
            return
        self.completed_phases += child.completed
        if self.state == "stopping":  # stop() waits for it and decides the exit code
            if not child.stop_sent:
                outcome.log_failure(self.log)
        elif outcome.kind == "ok" and child.plan == "start":
            self.release()
        elif outcome.kind == "ok":  # ``check``: nothing to serve
            self.state = "checked"
            self.exit_code = ExitCode.OK
        elif outcome.kind == "interrupted":  # a stop signal reached it before us (a terminal's ^C)
            stopping.stop(self, graceful=True, signame=None)
        else:
            outcome.log_failure(self.log)
            stopping.abort(self)
            self.exit_code = outcome.documented_exit_code()

    def release(self) -> None:
        """The schema is at head: the prespawned processes open their pools and serve."""
        self.released = True
        self.state = "running"
        codereload.start(self)
        if self.deferred_give_up is not None:
            exits.give_up(self, *self.deferred_give_up)
            return
        now = time.monotonic()
        for proc in self.processes():
            self.log.info("child.spawned", pid=proc.pid, worker=proc.slot, prespawned=True, forked=proc.forked,
                          imported_for_ms=round((now - proc.spawned_at) * 1000))
            proc.release()
        for slot, existing in self.slots.items():
            # Not prespawned (development mode's embedded database); a slot whose process
            # died during the phases is restarted with its backoff (``restart_due``).
            if existing is None and slot not in self.restart_due and not forks.importing(self):
                self.slots[slot] = self.spawn(slot)

    def processes(self) -> list[ServerProcess]:
        procs = [p for p in self.slots.values() if p is not None]
        procs += [self.standby] if self.standby is not None else []
        return (procs + (self.rollout.processes() if self.rollout else []) + list(self.recycling.values())
                + self.retiring)

    def next_wakeup(self) -> float:
        """The earliest deadline of anything the loop does on its own (monotonic time)."""
        now = time.monotonic()
        dues = list(self.restart_due.values()) + [p.term_due for p in self.retiring if p.term_due]
        dues += [due for due in (hangs.next_deadline(self), self.notifier.watchdog_due(now),
                                 standby.next_due(self), recycler.next_due(self), forks.next_due(self),
                                 self.cgroup.next_due() if self.cgroup else None) if due is not None]
        return min([now + MAX_SLEEP, *dues])

    def wait_for_events(self, timeout: float) -> None:
        fds: list[Any] = [self.signals.fileno]
        fds += [self.code_watcher] if self.code_watcher is not None else []
        fds += [p.control for p in self.processes() if p.alive] + self.forking.fds()
        if self.status is not None:
            fds += [self.status, *self.status.pending()]
            client_due = self.status.next_deadline()  # a client that has not sent its request yet
            if client_due is not None:
                timeout = min(timeout, client_due - time.monotonic())
        with contextlib.suppress(InterruptedError, ValueError, OSError):
            select.select(fds, [], [], max(0.0, timeout))

    # -- signals ---------------------------------------------------------------------
    def handle_signals(self) -> None:
        for sig in self.signals.drain():
            if sig in (signal.SIGTERM, signal.SIGINT):
                stopping.stop(self, graceful=True, signame=signal.Signals(sig).name)
            elif sig == signal.SIGQUIT:
                stopping.stop(self, graceful=False, signame="SIGQUIT")
            elif sig == signal.SIGHUP:
                reloading.reload(self)
            if self.exit_code is not None:
                return

    # -- messages from the processes ---------------------------------------------------
    def handle_messages(self) -> None:
        now = time.monotonic()
        for proc in self.processes():
            for message in proc.read_messages():
                if message == control.READY and proc.ready_at is None:
                    self.on_ready(proc, now)
                elif (count := control.count_of(message, control.REQUESTS)) is not None:
                    proc.requests = count
                elif message == control.IMPORTED and proc is self.standby:
                    standby.imported(self, proc, now)

    def on_ready(self, proc: ServerProcess, now: float) -> None:
        proc.ready_at = now
        proc.heartbeat_floor = now
        self.policy.on_ready(proc.slot)
        self.log.info("child.ready", pid=proc.pid, worker=proc.slot,
                      startup_ms=round((now - proc.spawned_at) * 1000))
        if not recycler.ready(self, proc):
            reloading.ready(self, proc)

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
        proc = forks.spawn(self, slot) or childmod.spawn(slot, self.settings, self.listener, self.env, self.cgroup)
        proc.request_limit = recycling.request_limit(self.settings.max_requests, self.settings.max_requests_jitter)
        if self.cgroup is not None and (refusal := self.cgroup.untold_refusal()):
            self.log.warning("supervisor.cgroup_unavailable", reason=refusal, hint=cgroups.REFUSED_HINT)
        if self.released and release:
            self.log.info("child.spawned", pid=proc.pid, worker=slot, forked=proc.forked)
            proc.release()
        else:
            # It imports the app while the phases run; it becomes a server on release.
            self.log.debug("child.prespawned", pid=proc.pid, worker=slot)
        return proc

    def find(self, pid: int) -> ServerProcess | None:
        return next((p for p in self.processes() if p.pid == pid), None)

    def reap(self) -> None:
        for pid, status in reaper.reap_any():
            if self.phase_child is not None and pid == self.phase_child.pid:
                self.on_phases_ended(status)
                continue
            if forks.reaped(self, pid, status):
                continue
            proc = self.find(pid)
            if proc is None:
                self.log.debug("child.reaped_orphan", pid=pid)
                continue
            self.on_exit(proc, status)

    def on_exit(self, proc: ServerProcess, status: int) -> None:
        exit_status = exits.record(self, proc, status)
        was_ready = proc.ready
        new_for_reload = self.rollout is not None and self.rollout.is_new(proc)
        replacement = self.recycling.get(proc.slot) is proc
        was_standby = proc is self.standby
        self.detach(proc)
        proc.close(relay_timeout=0.1)
        if was_standby:  # never released, never served: no server death (see ``standby``)
            standby.died(self, proc)
            return
        if proc.stop_requested or self.state == "stopping":
            return
        if replacement:  # a recycle's new process: the old one still serves, no crash loop
            recycler.replacement_died(self, proc)
            return
        if new_for_reload:
            # The new code cannot start; the old processes keep serving, so no crash loop.
            reloading.new_process_died(self, proc, exit_status.describe())
            return
        decision = self.policy.on_exit(proc.slot, was_ready, proc.uptime())
        if isinstance(decision, GiveUp) and not self.released:
            # Died importing the app during the phases: give up once they are over,
            # never by killing a migration half-way.
            self.deferred_give_up = (decision, proc)
            return
        if isinstance(decision, GiveUp):
            exits.give_up(self, decision, proc)
            return
        # A slot whose recycle is under way gets its replacement: no restart besides it.
        if self.slots.get(proc.slot) is None and proc.slot not in self.restart_due.keys() | self.recycling.keys():
            self.log.warning("child.restarting", worker=proc.slot, delay_s=decision.delay,
                             restarts=decision.restarts, previous_pid=proc.pid)
            self.metrics.restart(metrics.restart_reason(was_ready, proc.unresponsive, exit_status.signal is not None))
            self.restart_due[proc.slot] = time.monotonic() + decision.delay

    def detach(self, proc: ServerProcess) -> None:
        if self.slots.get(proc.slot) is proc:
            self.slots[proc.slot] = None
        if proc in self.retiring:
            self.retiring.remove(proc)
        if self.recycling.get(proc.slot) is proc:
            del self.recycling[proc.slot]
        if self.rollout is not None:
            self.rollout.forget(proc)

    def cancel_recycling(self) -> None:
        recycler.cancel(self)

    def start_due_restarts(self) -> None:
        if self.state not in ("running", "reloading"):
            return
        now = time.monotonic()
        for slot, due in sorted(self.restart_due.items()):
            if due <= now:
                del self.restart_due[slot]
                self.slots[slot] = standby.take(self, slot) or self.spawn(slot)

    # -- status ----------------------------------------------------------------------------
    def serve_status(self) -> None:
        serve_requests(self)


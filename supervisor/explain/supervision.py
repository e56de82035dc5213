"""Everything one supervisor process logged, folded into its incidents: starts, reloads, children, stop."""

from __future__ import annotations

from supervisor.explain import fmt
from supervisor.explain.children import ChildTracker
from supervisor.explain.lifecycle import (
    PhaseRun,
    exit_meaning,
    failure_text,
    migration_incident,
)
from supervisor.explain.model import Event, Incident, Timeline

_PHASE_EVENTS = ("phase.started", "phase.completed", "phase.failed", "phase.interrupted", "db.wait.retry",
                 "config.unknown_variable", "db.pool.budget")


class SupervisorTracker:
    """The state machine of one supervisor pid: starting → running ⇄ reloading → stopping → stopped."""

    def __init__(self, pid: int | None, timeline: Timeline) -> None:
        self.pid = pid
        self.timeline = timeline
        self.children = ChildTracker(pid, self.emit)
        self.boot: PhaseRun | None = None
        self.reload: PhaseRun | None = None
        self.stop: Incident | None = None
        self.running_since: float | None = None
        self.first_ts: float | None = None
        self.last_failure: str | None = None
        self.dropped: Incident | None = None

    def emit(self, incident: Incident) -> None:
        self.timeline.add(incident)

    def feed(self, event: Event) -> None:
        name = event["event"]
        if self.first_ts is None:
            self.first_ts = event.get("_ts")
        if name in _PHASE_EVENTS or name.startswith("migrate."):
            self._phase_event(event)
        elif name.startswith("child."):
            self._child_event(event)
        elif name.startswith("supervisor."):
            self._supervisor_event(event)
        elif name == "check.passed":
            self._end_boot("start", event, "check passed")
        elif name == "log.dropped":
            self._dropped(event)
        elif event["source"] == "server":
            self.children.server_error(event)

    # -- phases --------------------------------------------------------------------------------
    def _phase_event(self, event: Event) -> None:
        name = event["event"]
        if name == "phase.failed" and self._duplicate_failure(event):
            return
        if name == "db.pool.budget" and event.get("fits") is False:
            self._budget(event)
        run = self._run_for(event)
        run.feed(event)
        if name == "migrate.applied":
            self.emit(migration_incident(run, self.pid, event))
        if name == "phase.failed":
            self.last_failure = str(event.get("error"))
            if run is self.boot:
                self._end_boot("start_failed", event)
            # a reload's failed phase is followed by supervisor.reload_failed, which ends the reload

    def _duplicate_failure(self, event: Event) -> bool:
        # The phase runner logs the failure, then the service logs it again as phase "supervise".
        return event.get("phase") == "supervise" and str(event.get("error")) == self.last_failure

    def _run_for(self, event: Event) -> PhaseRun:
        starting = event["event"] == "phase.started" and event.get("phase") == "validate_env"
        if self.reload is not None and not starting:
            return self.reload
        if self.boot is None or starting:
            if self.running_since is not None and not starting:
                self.reload = PhaseRun(Incident("reload", event.get("_ts"), supervisor=self.pid))
                return self.reload
            if self.boot is not None:
                self._end_boot("start_incomplete", None)
            self.boot = PhaseRun(Incident("start", event.get("_ts"), supervisor=self.pid))
            self.running_since = None
        return self.boot

    def _end_boot(self, kind: str, event: Event | None, how: str = "") -> None:
        run, self.boot = self.boot, None
        if run is None:
            if kind != "start_failed" or event is None:
                return
            run = PhaseRun(Incident("start", event.get("_ts"), supervisor=self.pid))
            run.feed(event)
        incident = run.incident
        incident.kind = kind
        if event is not None:
            incident.touch(event)
        phases = run.phases_text()
        took = fmt.duration(incident.duration)
        if kind == "start":
            incident.summary = f"started in {took}: {phases}" + (f"; {how}" if how else "")
            self.running_since = incident.end
        elif kind == "start_failed":
            incident.severity = "error"
            incident.summary = f"start failed after {took}: {failure_text(run.failure or event or {})}"
        elif kind == "start_interrupted":
            incident.summary = f"start interrupted ({how}) after {took}: {phases}"
        else:
            incident.severity = "warning"
            incident.summary = (f"start did not finish after {took}: {phases}; "
                                f"{how or 'no supervisor.ready'}")
        if run.notes:
            incident.summary += "; " + "; ".join(run.notes[:3])
        incident.facts.update(run.facts())
        self.emit(incident)

    def _end_reload(self, kind: str, event: Event | None) -> None:
        run, self.reload = self.reload, None
        if run is None:
            return
        incident = run.incident
        incident.kind = kind
        if event is not None:
            incident.touch(event)
        phases = run.phases_text()
        if kind == "reload":
            pids = event.get("pids") if event else None
            replaced = (f"{fmt.plural(len(pids), 'server process', 'server processes')} replaced"
                        if isinstance(pids, list) else "server processes replaced")
            incident.summary = (f"reloaded in {fmt.duration(incident.duration)}: "
                                f"{phases or 'no migrate phase'}; {replaced}")
        else:
            incident.severity = "error"
            detail = failure_text(run.failure) if run.failure is not None else fmt.clip(
                f"{(event or {}).get('reason', '')}: {(event or {}).get('error', '')}; "
                f"hint: {(event or {}).get('hint', '')}", 400)
            incident.summary = f"reload failed: {detail}"
            if event is not None and event.get("event") == "supervisor.reload_failed":
                incident.facts["reload_failed"] = {k: event.get(k) for k in ("reason", "error", "hint", "exit_code")
                                                   if k in event}
        incident.facts.update(run.facts())
        self.emit(incident)

    # -- children ------------------------------------------------------------------------------
    def _child_event(self, event: Event) -> None:
        name = event["event"]
        kids = self.children
        if name == "child.spawned":
            kids.spawned(event.get("pid"))
        elif name == "child.ready":
            kids.became_ready(event)
        elif name == "child.exited":
            kids.exited(event, stopping=self.stop is not None)
        elif name == "child.restarting":
            kids.restarting(event)
        elif name == "child.crash_loop":
            kids.crash_loop(event)
        elif name == "child.unresponsive":
            kids.unresponsive_event(event)

    # -- supervisor events -----------------------------------------------------------------------
    def _supervisor_event(self, event: Event) -> None:
        name = event["event"]
        if name == "supervisor.ready":
            workers = event.get("workers")
            self._end_boot("start", event, f"{fmt.plural(workers, 'worker')} ready"
                           if isinstance(workers, int) else "ready")
            self.running_since = event.get("_ts")
        elif name == "supervisor.reloading":
            self.reload = PhaseRun(Incident("reload", event.get("_ts"), supervisor=self.pid))
        elif name == "supervisor.reloaded":
            self._end_reload("reload", event)
        elif name == "supervisor.reload_failed":
            if self.reload is None:
                self.reload = PhaseRun(Incident("reload", event.get("_ts"), supervisor=self.pid))
            self._end_reload("reload_failed", event)
        elif name == "supervisor.stopping":
            self._stopping(event)
        elif name in ("supervisor.stop_escalated", "supervisor.orphans_killed"):
            if self.stop is not None:
                self.stop.facts.setdefault("notes", []).append(name.split(".")[1])
                self.stop.touch(event)
        elif name == "supervisor.stopped":
            self._stopped(event)
        elif name == "supervisor.crashed":
            crash = Incident("supervisor_crashed", event.get("_ts"), severity="error", supervisor=self.pid)
            crash.summary = f"the supervisor itself crashed: {fmt.clip(event.get('error', ''), 300)}"
            crash.facts = {"error": event.get("error"), "traceback": event.get("traceback")}
            crash.touch(event)
            self.emit(crash)

    def _stopping(self, event: Event) -> None:
        if self.stop is None:
            self.stop = Incident("stop", event.get("_ts"), supervisor=self.pid)
        self.stop.facts.update(signal=event.get("signal"), graceful=event.get("graceful"))
        self.stop.touch(event)
        if event.get("during") == "phases" and self.boot is not None:
            self._end_boot("start_interrupted", event, f"stop requested by {event.get('signal')}")
        if self.reload is not None:
            self._end_reload("reload_failed", event)

    def _stopped(self, event: Event) -> None:
        code = event.get("exit_code")
        if self.boot is not None:
            self._end_boot("start_incomplete", None, "no server process became ready" if code == 70 else "")
        self.children.finish()
        stop = self.stop or Incident("stop", event.get("_ts"), supervisor=self.pid)
        self.stop = None
        stop.touch(event)
        signame = stop.facts.get("signal")
        ran = None if self.first_ts is None or stop.end is None else stop.end - self.first_ts
        verb = f"stopped by {signame}" if signame else ("stopped" if code == 0 else "exited")
        stop.summary = f"{verb} after {fmt.duration(ran)} ({exit_meaning(code)})"
        stop.severity = "info" if code == 0 else "error"
        stop.facts.update(exit_code=code, ran_s=None if ran is None else round(ran, 3))
        self.emit(stop)
        self.running_since = None

    def _budget(self, event: Event) -> None:
        budget = Incident("pool_budget", event.get("_ts"), severity="warning", supervisor=self.pid)
        budget.facts = {k: event.get(k) for k in ("needed", "available", "max_connections", "reserved",
                                                  "in_use", "workers", "pool_size", "max_overflow")}
        budget.summary = (f"pool budget too large: WORKERS×(DB_POOL_SIZE+DB_MAX_OVERFLOW) = {event.get('needed')} "
                          f"but PostgreSQL has {event.get('available')} connections left")
        budget.touch(event)
        self.emit(budget)

    def _dropped(self, event: Event) -> None:
        dropped = self.dropped
        if dropped is None:
            dropped = self.dropped = Incident("log_dropped", event.get("_ts"), severity="warning",
                                              supervisor=self.pid, count=0)
        n = event.get("dropped")
        dropped.count += n if isinstance(n, int) else 1
        dropped.touch(event)

    def finish(self) -> None:
        """End of the log (or of this supervisor): close what is still open."""
        if self.boot is not None:
            self._end_boot("start_incomplete", None, "log ends before supervisor.ready")
        if self.reload is not None:
            self._end_reload("reload_failed", None)
        self.children.finish()
        if self.dropped is not None:
            self.dropped.summary = (f"{self.dropped.count} log lines dropped: the log reader was too slow; "
                                    "this timeline may miss events")
            self.emit(self.dropped)
            self.dropped = None
        if self.stop is not None:
            self.stop.summary = f"stopping by {self.stop.facts.get('signal')} when the log ends"
            self.emit(self.stop)
            self.stop = None

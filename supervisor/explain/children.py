"""A supervisor's server processes: deaths grouped into restarts or a crash loop, hangs, app errors.

Deaths close together are one incident, not one line each: a crash loop is one
``crash_loop`` incident with its count and the last traceback; deaths after
readiness within ``GROUP_GAP_S`` of each other are one ``restarts`` incident.  A
process killed because its event loop stalled belongs to its ``hang`` incident.
"""

from __future__ import annotations

from typing import Any

from supervisor.explain import fmt, stacks
from supervisor.explain.model import Event, Incident

GROUP_GAP_S = 300.0
MAX_CHILDREN = 10000


def _cause(event: Event) -> str:
    if event.get("signal"):
        return str(event["signal"])
    return f"exit {event.get('exit_code')}"


def _tail(event: Event) -> list[str]:
    tail = event.get("stderr_tail")
    return [line for line in tail if isinstance(line, str)][-20:] if isinstance(tail, list) else []


class ChildTracker:
    """Per-supervisor state about its server processes; emits incidents through ``emit``."""

    def __init__(self, supervisor: int | None, emit: Any) -> None:
        self.supervisor = supervisor
        self.emit = emit
        self.ready: dict[int, bool] = {}
        self.unresponsive: set[int] = set()
        self.last_traceback: dict[int, str] = {}
        self.deaths: Incident | None = None
        self.hang: Incident | None = None
        self.errors: Incident | None = None

    # -- process events ----------------------------------------------------------------------
    def spawned(self, pid: int | None) -> None:
        if pid is not None:
            if len(self.ready) > MAX_CHILDREN:
                self.ready.pop(next(iter(self.ready)))
            self.ready[pid] = False

    def became_ready(self, event: Event) -> None:
        pid = event.get("pid")
        if pid is not None:
            self.ready[pid] = True
        group = self.deaths
        if group is not None and group.facts["after_ready"] == 0:
            group.facts["recovered_pid"] = pid  # the start-up crashes stopped: a process got ready
            self._close_deaths(event)

    def exited(self, event: Event, stopping: bool) -> None:
        pid = event.get("pid")
        if pid is not None:
            self.ready.pop(pid, None)
        if stopping or event.get("level") not in ("error", "critical"):
            return  # stopped on request: part of a stop or a reload, not an incident
        if pid in self.unresponsive or "unresponsive" in str(event.get("hint", "")):
            self.unresponsive.discard(pid)
            if self.hang is not None:
                self.hang.facts["killed"] = self.hang.facts.get("killed", 0) + 1
                self.hang.touch(event)
            return
        self._death(event, pid)

    def _death(self, event: Event, pid: int | None) -> None:
        ts = event.get("_ts")
        group = self.deaths
        if group is not None and ts is not None and group.end is not None and ts - group.end > GROUP_GAP_S:
            self._close_deaths(None)
            group = None
        if group is None:
            group = self.deaths = Incident("restarts", ts, severity="error", supervisor=self.supervisor,
                                           count=0, facts={"causes": {}, "after_ready": 0, "before_ready": 0})
        facts = group.facts
        group.count += 1
        cause = _cause(event)
        facts["causes"][cause] = facts["causes"].get(cause, 0) + 1
        facts["after_ready" if event.get("was_ready") else "before_ready"] += 1
        tail = _tail(event)
        exc = stacks.exception_line(tail) or (self.last_traceback.get(pid) if pid is not None else None)
        if exc:
            facts["exception"] = exc
        frame = stacks.innermost_app_frame(tail)
        if frame is not None:
            facts["app_frame"] = {"file": frame.file, "line": frame.line, "func": frame.func}
        if tail:
            facts["stderr_tail"] = tail
        facts["hint"] = event.get("hint")
        facts["last_pid"] = pid
        group.touch(event)

    def restarting(self, event: Event) -> None:
        target = self.hang if self.hang is not None and self.hang.facts.get("last_pid") == event.get(
            "previous_pid") else self.deaths
        if target is not None:
            target.facts["restarts"] = event.get("restarts")
            target.facts["last_delay_s"] = event.get("delay_s")
            target.touch(event)

    def crash_loop(self, event: Event) -> None:
        group = self.deaths
        if group is None:
            group = self.deaths = Incident("restarts", event.get("_ts"), severity="error",
                                           supervisor=self.supervisor, count=0,
                                           facts={"causes": {}, "after_ready": 0, "before_ready": 0})
        group.kind = "crash_loop"
        tail = _tail(event)
        if tail:
            group.facts["stderr_tail"] = tail
            group.facts["exception"] = stacks.exception_line(tail) or group.facts.get("exception")
            frame = stacks.innermost_app_frame(tail)
            if frame is not None:
                group.facts["app_frame"] = {"file": frame.file, "line": frame.line, "func": frame.func}
        group.facts.update(deaths=event.get("deaths"), limit=event.get("limit"), gave_up=True,
                           hint=event.get("hint") or group.facts.get("hint"))
        deaths = event.get("deaths")
        if isinstance(deaths, int):
            group.count = max(group.count, deaths)
        group.touch(event)
        self._close_deaths(None)

    def _close_deaths(self, event: Event | None) -> None:
        group, self.deaths = self.deaths, None
        if group is None:
            return
        facts = group.facts
        causes = fmt.counted(facts["causes"])
        exc = facts.get("exception")
        if group.kind == "crash_loop":
            group.summary = (f"crash loop: {fmt.plural(group.count, 'server process', 'server processes')} "
                             f"died before becoming ready ({causes}); gave up at CRASH_LOOP_LIMIT="
                             f"{facts.get('limit')}")
        else:
            when = "before becoming ready" if facts["after_ready"] == 0 else "after serving"
            group.summary = (f"{fmt.plural(group.count, 'server process', 'server processes')} died {when} "
                             f"({causes}), restarted" + (f" {facts['restarts']} times" if facts.get("restarts")
                                                         else ""))
            if facts.get("recovered_pid") is not None:
                group.summary += f"; pid {facts['recovered_pid']} then became ready"
                group.severity = "warning"
        if exc:
            group.summary += f" — {fmt.clip(exc, 200)}"
        elif facts.get("hint"):
            group.summary += f" — {fmt.clip(facts['hint'], 200)}"
        self.emit(group)

    # -- hangs -------------------------------------------------------------------------------
    def unresponsive_event(self, event: Event) -> None:
        pid = event.get("pid")
        if pid is not None:
            self.unresponsive.add(pid)
        stall = stacks.stalled_frame(event.get("stacks"))
        # A stopped process (SIGSTOP, a debugger) prints no stacks: no code is to blame.
        stopped = event.get("process_state") == "stopped" or (stall is None and not event.get("stacks"))
        where = stall.describe() if stall else ("no stack dump: the process was stopped" if stopped
                                                else "an unknown place (no Python frame in the stacks)")
        hang = self.hang
        # A line cut before its stacks belongs to the hang under way.
        key = (stall.frame.file, stall.frame.func) if stall else (hang.facts.get("key") if hang else None)
        ts = event.get("_ts")
        if hang is not None and (hang.facts.get("key") != key or (
                ts is not None and hang.end is not None and ts - hang.end > GROUP_GAP_S)):
            self._close_hang()
            hang = None
        if hang is None:
            hang = self.hang = Incident("hang", ts, severity="error", supervisor=self.supervisor, count=0,
                                        facts={"key": key, "where": where, "pids": []})
            if stopped:
                hang.facts["stopped"] = True
            if stall is not None:
                hang.facts.update(function=stall.frame.func, file=stall.frame.file, line=stall.frame.line,
                                  thread=stall.thread)
                if stall.app_frame is not None:
                    hang.facts["app_frame"] = {"file": stall.app_frame.file, "line": stall.app_frame.line,
                                               "func": stall.app_frame.func}
                if stall.endpoint is not None:
                    hang.facts["endpoint"] = stall.endpoint.func
        hang.count += 1
        facts = hang.facts
        facts["last_pid"] = pid
        if len(facts["pids"]) < 20:
            facts["pids"].append(pid)
        stalled = event.get("stalled_s")
        if isinstance(stalled, (int, float)):
            facts["stalled_s"] = max(stalled, facts.get("stalled_s", 0))
        facts["heartbeat_timeout_s"] = event.get("heartbeat_timeout_s")
        hang.touch(event)

    def _close_hang(self) -> None:
        hang, self.hang = self.hang, None
        if hang is None:
            return
        f = hang.facts
        times = f" ×{hang.count}" if hang.count > 1 else ""
        pids = f"pid {f['pids'][0]}" if len(f["pids"]) == 1 else f"pids {', '.join(map(str, f['pids'][:5]))}"
        hang.summary = (f"hang{times}: event loop of {pids} stalled {f.get('stalled_s', '?')} s "
                        f"(HEARTBEAT_TIMEOUT {f.get('heartbeat_timeout_s', '?')} s) in {f['where']}")
        if f.get("stopped"):
            hang.summary = (f"stopped{times}: {pids} sent no heartbeat for {f.get('stalled_s', '?')} s "
                            "and printed no stack dump (stopped, not blocked by its code)")
        if f.get("killed"):
            hang.summary += "; killed with SIGKILL" + (" and restarted" if f.get("restarts") else "")
        f.pop("key", None)
        self.emit(hang)

    # -- app errors --------------------------------------------------------------------------
    def server_error(self, event: Event) -> None:
        pid = event.get("pid")
        text = event.get("traceback") or event.get("exception") or event.get("message") or ""
        exc = stacks.exception_line(text) or fmt.clip(event.get("message") or text, 200)
        if pid is not None and not self.ready.get(pid, False):
            self.last_traceback[pid] = exc  # a start-up crash: child.exited will tell the rest
            if len(self.last_traceback) > MAX_CHILDREN:
                self.last_traceback.pop(next(iter(self.last_traceback)))
            return
        errors = self.errors
        ts = event.get("_ts")
        if errors is not None and ts is not None and errors.end is not None and ts - errors.end > GROUP_GAP_S:
            self._close_errors()
            errors = None
        if errors is None:
            errors = self.errors = Incident("app_errors", ts, severity="warning", supervisor=self.supervisor,
                                            count=0, facts={"exceptions": {}})
        errors.count += 1
        counts = errors.facts["exceptions"]
        if exc in counts or len(counts) < 50:
            counts[exc] = counts.get(exc, 0) + 1
        frame = stacks.innermost_app_frame(text)
        if frame is not None:
            errors.facts["app_frame"] = {"file": frame.file, "line": frame.line, "func": frame.func}
        errors.touch(event)

    def _close_errors(self) -> None:
        errors, self.errors = self.errors, None
        if errors is None:
            return
        errors.summary = (f"{fmt.plural(errors.count, 'unhandled exception')} in the app: "
                          f"{fmt.counted({fmt.clip(k, 120): v for k, v in errors.facts['exceptions'].items()})}")
        self.emit(errors)

    def finish(self) -> None:
        self._close_deaths(None)
        self._close_hang()
        self._close_errors()

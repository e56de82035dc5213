"""Send each event to the tracker of the supervisor that wrote it, even when several are interleaved.

A supervisor's own events carry its pid.  Events about one of its server processes
(``child.spawned``, ``child.exited``, …) carry the *server process's* pid instead, as
do the server's relayed lines, so the owner of such a pid is learnt from the events
that name it next to the supervisor's pid: ``child.restarting`` (``previous_pid``),
``supervisor.ready``/``supervisor.reloaded`` (``pids``), ``child.crash_loop``
(``last_pid``).  With a single supervisor running, events go to it at once; with
several, an event whose owner is not known yet waits (bounded) until a link names
it, or is given to the likeliest supervisor.
"""

from __future__ import annotations

from collections import OrderedDict

from supervisor.explain.model import Event, Timeline
from supervisor.explain.supervision import SupervisorTracker

CHILD_PID_EVENTS = frozenset({"child.spawned", "child.ready", "child.exited", "child.unresponsive",
                              "child.reaped_orphan"})
# Server lines an instance tracker cares about; http.access and the rest only feed the database trackers.
SERVER_EVENTS = frozenset({"server.traceback", "server.uvicorn", "server.output", "server.log"})
MAX_PENDING = 10000
MAX_OWNERS = 50000
PENDING_AGE_S = 120.0


def _linked_children(event: Event) -> list[int]:
    name = event["event"]
    if name == "child.restarting":
        values = [event.get("previous_pid")]
    elif name in ("supervisor.ready", "supervisor.reloaded"):
        pids = event.get("pids")
        values = list(pids) if isinstance(pids, list) else []
    elif name == "child.crash_loop":
        values = [event.get("last_pid")]
    else:
        return []
    return [v for v in values if isinstance(v, int) and not isinstance(v, bool)]


class Router:
    """Owns one ``SupervisorTracker`` per supervisor pid and decides who gets each event."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.trackers: dict[int | None, SupervisorTracker] = {}
        self.live: list[int | None] = []  # supervisors seen and not yet stopped, oldest first
        self.owner: OrderedDict[int, int | None] = OrderedDict()
        self.pending: OrderedDict[int, list[Event]] = OrderedDict()
        self.pending_count = 0
        self.retired: OrderedDict[int | None, None] = OrderedDict()  # stopped supervisors' pids

    def feed(self, event: Event) -> None:
        name = event["event"]
        pid = event["pid"]
        if event["source"] == "server" or (name in CHILD_PID_EVENTS and pid not in self.trackers):
            if event["source"] == "server" and not self._wanted_server_line(event):
                return
            self._child_event(pid, event)
        else:
            self._supervisor_event(pid, event)
        self._expire(event.get("_ts"))

    @staticmethod
    def _wanted_server_line(event: Event) -> bool:
        if event["event"] == "server.traceback":
            return True
        return event["event"] in SERVER_EVENTS and (
            "exception" in event or event.get("level") in ("error", "critical"))

    def _supervisor_event(self, pid: int | None, event: Event) -> None:
        tracker = self._tracker(pid)
        for child in _linked_children(event):
            self._link(child, pid)
        tracker.feed(event)
        if event["event"] == "supervisor.stopped":
            self._retire(pid)

    def _child_event(self, child: int | None, event: Event) -> None:
        if child is None:
            self._tracker(self._guess(None)).feed(event)
            return
        if child in self.owner:
            owner = self.owner[child]
            if owner not in self.retired:  # late lines of a supervisor that already stopped
                self._tracker(owner).feed(event)
        elif len(self.live) == 1 and not self.pending:
            self._link(child, self.live[0])
            self._tracker(self.live[0]).feed(event)
        else:
            self.pending.setdefault(child, []).append(event)
            self.pending_count += 1
            if self.pending_count > MAX_PENDING:
                self._release(next(iter(self.pending)))

    def _tracker(self, pid: int | None) -> SupervisorTracker:
        tracker = self.trackers.get(pid)
        if tracker is None:
            self.retired.pop(pid, None)
            tracker = self.trackers[pid] = SupervisorTracker(pid, self.timeline)
            self.live.append(pid)
        return tracker

    def _link(self, child: int, supervisor: int | None) -> None:
        self.owner[child] = supervisor
        self.owner.move_to_end(child)
        while len(self.owner) > MAX_OWNERS:
            self.owner.popitem(last=False)
        waiting = self.pending.pop(child, None)
        if waiting:
            self.pending_count -= len(waiting)
        if waiting and supervisor not in self.retired:
            tracker = self._tracker(supervisor)
            for event in waiting:
                tracker.feed(event)

    def _guess(self, child: int | None) -> int | None:
        """The likeliest owner: the newest live supervisor started before the child (pids grow)."""
        candidates = [p for p in self.live if p is not None] or [p for p in self.trackers if p is not None]
        if not candidates:
            return None
        if child is not None:
            older = [p for p in candidates if p < child]
            if older:
                return max(older)
        return candidates[-1]

    def _release(self, child: int) -> None:
        self._link(child, self._guess(child))

    def _expire(self, ts: float | None) -> None:
        while self.pending and ts is not None:
            child, events = next(iter(self.pending.items()))
            first = events[0].get("_ts")
            if first is None or ts - first <= PENDING_AGE_S:
                return
            self._release(child)

    def _retire(self, pid: int | None) -> None:
        tracker = self.trackers.pop(pid, None)
        if pid in self.live:
            self.live.remove(pid)
        if tracker is not None:
            tracker.finish()
        self.retired[pid] = None
        while len(self.retired) > MAX_OWNERS:
            self.retired.popitem(last=False)

    def finish(self) -> None:
        while self.pending:
            self._release(next(iter(self.pending)))
        for pid in list(self.trackers):
            self._retire(pid)

"""Group a stream of log events into incidents: pure logic, no I/O, bounded memory.

``group(events)`` routes each event to the supervisor that wrote it (several may
be interleaved in one log, from one host or from several replicas), lets that supervisor's tracker and the database
trackers fold it into open incidents, and returns every incident oldest first.
Only aggregates and the last few example events of each incident are kept, so a
million-line log costs what its incidents cost, not what its lines cost.
"""

from __future__ import annotations

from collections.abc import Iterable

from supervisor.explain.database import DatabaseTracker
from supervisor.explain.model import Event, Incident, Timeline
from supervisor.explain.routing import Router

__all__ = ["Event", "Incident", "Timeline", "group"]


def group(events: Iterable[Event], timeline: Timeline | None = None) -> list[Incident]:
    """Every incident in ``events`` (dicts as the reader yields them), oldest first."""
    timeline = timeline if timeline is not None else Timeline()
    database = DatabaseTracker(timeline)
    routers: dict[str | None, Router] = {}  # one per replica: pods' supervisors may all be PID 1
    for event in events:
        database.feed(event)
        if event["event"] == "http.access":
            continue  # most lines of a busy log; only the database trackers read them
        origin = event.get("_origin")
        router = routers.get(origin)
        if router is None:
            router = routers[origin] = Router(timeline.for_origin(origin))
        router.feed(event)
    for router in routers.values():
        router.finish()
    database.finish()
    return timeline.ordered()

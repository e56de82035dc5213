"""Group a stream of log events into incidents: pure logic, no I/O, bounded memory.

``group(events)`` routes each event to the supervisor that wrote it (several may
be interleaved in one log), lets that supervisor's tracker and the database
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
    router = Router(timeline)
    for event in events:
        database.feed(event)
        router.feed(event)
    router.finish()
    database.finish()
    return timeline.ordered()

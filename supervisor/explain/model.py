"""The incident record and the timeline that collects them, bounded in size."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Event = dict[str, Any]

MAX_EXAMPLES = 3
MAX_INCIDENTS = 5000  # beyond this, incidents are only counted (a log of endless restarts)
_LIST_ITEMS = 8
_STRING_CHARS = 400


@dataclass
class Incident:
    """One thing that happened, with the facts a verdict needs and a one-line summary."""

    kind: str
    start: float | None
    end: float | None = None
    severity: str = "info"  # info | warning | error
    summary: str = ""
    supervisor: int | None = None
    count: int = 1
    origin: str | None = None  # the replica (pod, host) named by the log's envelope, when it names one
    facts: dict[str, Any] = field(default_factory=dict)
    examples: list[Event] = field(default_factory=list)

    def touch(self, event: Event) -> None:
        """Extend the incident to ``event``'s time and keep it as one of the last examples."""
        ts = event.get("_ts")
        if ts is not None:
            if self.start is None:
                self.start = ts
            self.end = ts if self.end is None else max(self.end, ts)
        self.examples.append(trim(event))
        if len(self.examples) > MAX_EXAMPLES:
            del self.examples[0]

    @property
    def duration(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return max(0.0, self.end - self.start)


def trim(value: Any, depth: int = 0) -> Any:
    """A bounded copy of an event for examples: long strings cut, long lists keep their tail."""
    if isinstance(value, str):
        return value if len(value) <= _STRING_CHARS else value[: _STRING_CHARS - 1] + "…"
    if isinstance(value, dict):
        if depth > 3:
            return "{…}"
        return {k: trim(v, depth + 1) for k, v in value.items() if k != "_ts"}
    if isinstance(value, list):
        if depth > 3:
            return ["…"]
        tail = value[-_LIST_ITEMS:]
        return ([f"… {len(value) - _LIST_ITEMS} more"] if len(value) > _LIST_ITEMS else []) + [
            trim(v, depth + 1) for v in tail]
    return value


class Timeline:
    """Where finished incidents go; keeps the first ``MAX_INCIDENTS`` and counts the rest."""

    def __init__(self, limit: int = MAX_INCIDENTS) -> None:
        self.limit = limit
        self.incidents: list[Incident] = []
        self.omitted: dict[str, int] = {}

    def add(self, incident: Incident) -> None:
        if len(self.incidents) < self.limit:
            self.incidents.append(incident)
        else:
            self.omitted[incident.kind] = self.omitted.get(incident.kind, 0) + 1

    def for_origin(self, origin: str | None) -> Timeline:
        """This timeline, seen by the trackers of one replica: what they add is marked with ``origin``."""
        return self if origin is None else _OriginView(self, origin)

    def ordered(self) -> list[Incident]:
        return sorted(self.incidents, key=lambda i: (i.start is None, i.start or 0.0))


class _OriginView(Timeline):
    """Adds to the shared timeline, marking each incident with the replica it came from."""

    def __init__(self, base: Timeline, origin: str) -> None:
        # No super().__init__(): the incidents live in ``base``, this view only marks them.
        self.base = base
        self.origin = origin

    def add(self, incident: Incident) -> None:
        incident.origin = self.origin
        self.base.add(incident)

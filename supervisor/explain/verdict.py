"""The independent root causes across incidents, each with its concrete fix, evidence and next steps.

Every incident that can be a cause proposes a ``Candidate`` scored by how
decisive it is (what made the supervisor exit beats a warning; a specific pool
diagnosis beats a generic one).  ``causality`` decides which candidates are
effects of others (an outage explains the 503s and the pool trouble it caused,
not a lock contention that ended before it began); every candidate left is an
independent root cause.  They are listed most severe first, the most recent
first among equals; minor ones (a start that only waited for the database) are
noted, not listed, when something more severe happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from supervisor.explain import fmt
from supervisor.explain.candidates import Candidate, candidates
from supervisor.explain.causality import independent
from supervisor.explain.model import Incident

MINOR_SCORE = 40  # below this a root cause is only noted, unless it is the only one
MAX_NOTES = 3


@dataclass
class RootCause:
    """One independent root cause: what happened, what to change, what shows it, what it explains."""

    cause: str
    fix: str
    incident: Incident
    next: list[str]
    explains: list[Incident] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)


@dataclass
class Verdict:
    """The answer: every independent root cause, most severe first; the first one's fields at the top.

    ``cause``/``fix``/``incident``/``next``/``explains`` repeat the first root cause
    (what a single-incident log has, and what scripts read first); ``notes`` are
    the minor causes only noted.
    """

    cause: str
    fix: str
    incident: Incident | None
    next: list[str]
    explains: list[Incident] = field(default_factory=list)
    causes: list[RootCause] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _rank(candidate: Candidate) -> tuple[float, ...]:
    """Most severe first; among equals the most recent (what is still going on, or happened last)."""
    return (candidate.score, candidate.incident.start or 0.0)


def _lines(incident: Incident) -> str:
    numbers = sorted({e["_n"] for e in incident.examples if isinstance(e.get("_n"), int)})
    return f" (line{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers))})" if numbers else ""


def where(inc: Incident) -> str:
    """``2026-11-25T09:15:01.518Z → 09:17:01.912Z (lines 52, 61)``: when, and which lines to read."""
    end = fmt.timestamp(inc.end) if inc.end not in (None, inc.start) else ""
    if end and end[:11] == fmt.timestamp(inc.start)[:11]:
        end = end[11:]  # the same day: the time alone
    return fmt.timestamp(inc.start) + (f" → {end}" if end else "") + _lines(inc)


def _evidence(root: Candidate, effects: list[Candidate]) -> list[str]:
    """Where the log shows it: the root's incident with its time span and lines, then what it explains."""
    inc = root.incident
    out = [f"{where(inc)}: {fmt.clip(inc.summary, 300)}"]
    for effect in effects[:5]:
        e = effect.incident
        out.append(f"explains {fmt.timestamp(e.start)}: {fmt.clip(e.summary, 200)}")
    if len(effects) > 5:
        out.append(f"explains {len(effects) - 5} more incidents")
    return out


def decide(incidents: list[Incident]) -> Verdict:
    """The verdict for a timeline (``incidents`` oldest first)."""
    found = candidates(incidents)
    if not found:
        starts = sum(1 for i in incidents if i.kind == "start")
        cause = (f"no incident: {fmt.plural(starts, 'clean start')}" if starts else
                 "no incident found in these lines")
        return Verdict(cause, "nothing to fix", None, ["widen --since/--until if you expected something"])
    roots: list[RootCause] = []
    notes: list[str] = []
    seen: dict[tuple[str, str], RootCause] = {}
    for root, effects in independent(found, _rank):
        key = (root.cause, root.fix)
        if key in seen:  # the same cause again (restarts far apart): one root cause, its repeats as evidence
            seen[key].explains.append(root.incident)
            seen[key].evidence.append(f"again {fmt.timestamp(root.incident.start)}: "
                                      f"{fmt.clip(root.incident.summary, 200)}")
            continue
        if roots and root.score < MINOR_SCORE:
            line = f"also: {fmt.clip(root.cause, 200)}"
            if line not in notes and len(notes) < MAX_NOTES:
                notes.append(line)
            continue
        seen[key] = RootCause(root.cause, root.fix, root.incident, list(root.next),
                              [e.incident for e in effects], _evidence(root, effects))
        roots.append(seen[key])
    first = roots[0]
    nxt = first.next + notes if len(roots) == 1 else first.next
    return Verdict(first.cause, first.fix, first.incident, nxt, first.explains, roots, notes)


def _root_dict(root: RootCause, index: dict[int, int]) -> dict[str, Any]:
    return {
        "cause": root.cause,
        "fix": root.fix,
        "incident": index.get(id(root.incident)),
        "kind": root.incident.kind,
        "explains": [index.get(id(i)) for i in root.explains],
        "evidence": root.evidence,
        "next": root.next,
    }


def as_dict(verdict: Verdict, index: dict[int, int]) -> dict[str, Any]:
    """JSON form; incidents are referred to by their index in the timeline.

    The top-level fields are the first root cause's (or "no incident"), so a script
    reading ``.verdict.cause`` gets the most severe one; ``root_causes`` lists them all.
    """
    return {
        "cause": verdict.cause,
        "fix": verdict.fix,
        "incident": index.get(id(verdict.incident)) if verdict.incident is not None else None,
        "kind": verdict.incident.kind if verdict.incident is not None else None,
        "explains": [index.get(id(i)) for i in verdict.explains],
        "evidence": verdict.causes[0].evidence if verdict.causes else [],
        "next": verdict.next,
        "root_causes": [_root_dict(root, index) for root in verdict.causes],
        "notes": verdict.notes,
    }

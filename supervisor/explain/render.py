"""The timeline and verdict as text for people, or as JSON for scripts (the same content)."""

from __future__ import annotations

import json
from typing import Any

from supervisor.explain import coverage, fmt
from supervisor.explain.model import Incident, trim
from supervisor.explain.reader import ReadStats
from supervisor.explain.verdict import Verdict, as_dict, where

_MARK = {"info": "info ", "warning": "WARN ", "error": "ERROR"}


def label(inc: Incident) -> str:
    """Who an incident belongs to: ``1234``, or ``pod-a 1`` when the envelope named the replica."""
    return f"{inc.origin} {inc.supervisor}" if inc.origin is not None else str(inc.supervisor)


def _supervisors(incidents: list[Incident]) -> list[int | str]:
    """Supervisor pids in order of appearance; ``replica:pid`` when the envelope named the replica."""
    seen: list[int | str] = []
    for inc in incidents:
        if inc.supervisor is not None:
            key: int | str = inc.supervisor if inc.origin is None else f"{inc.origin}:{inc.supervisor}"
            if key not in seen:
                seen.append(key)
    return seen


def _header(stats: ReadStats, incidents: list[Incident]) -> str:
    span = (f"{fmt.timestamp(stats.first_ts)} → {fmt.timestamp(stats.last_ts)}"
            if stats.first_ts is not None else "no timestamps")
    sups = [" pid ".join(s.rsplit(":", 1)) if isinstance(s, str) else s for s in _supervisors(incidents)]
    if len(sups) == 1:
        who = f"supervisor pid {sups[0]}" if isinstance(sups[0], int) else f"supervisor on {sups[0]}"
    else:
        pids = "" if any(isinstance(x, str) for x in sups) else "pids "  # "api-a pid 1" says it already
        who = (f"{len(sups)} supervisors ({pids}{', '.join(map(str, sups[:8]))}{', …' if len(sups) > 8 else ''})"
               if sups else "no supervisor events")
    return f"jarlpm explain: {coverage.read_summary(stats)}; {span}; {who}"


def text(stats: ReadStats, incidents: list[Incident], verdict: Verdict, omitted: dict[str, int]) -> str:
    """The report people read: header, one line per incident, the verdict."""
    lines = [_header(stats, incidents), ""]
    unread = coverage.nothing_read(stats)
    if unread is not None:
        return "\n".join([*lines, unread]) + "\n"
    lines.append("Timeline")
    several = len(_supervisors(incidents)) > 1
    if not incidents:
        lines.append("  (no incidents)" + (" — every event was outside --since/--until"
                                            if stats.outside_window and not stats.events else ""))
    for inc in incidents:
        who = f"[{label(inc)}] " if several and inc.supervisor is not None else ""
        lines.append(f"  {fmt.timestamp(inc.start)}  {_MARK.get(inc.severity, inc.severity)}  {who}{inc.summary}")
    if omitted:
        lines.append(f"  … and {sum(omitted.values())} more incidents not listed ({fmt.counted(omitted, 6)})")
    lines.append("")
    if len(verdict.causes) <= 1:
        lines.append("Verdict")
        lines += _root_lines("  ", verdict.cause, verdict.fix, verdict.incident, verdict.explains, verdict.next)
    else:
        lines.append(f"Verdict: {len(verdict.causes)} independent root causes, most severe first")
        for n, root in enumerate(verdict.causes, 1):
            head = f"  {n}. "
            body = _root_lines(" " * len(head), root.cause, root.fix, root.incident, root.explains, root.next)
            lines += [head + body[0].lstrip(), *body[1:]]
        for n, note in enumerate(verdict.notes):
            lines.append(f"  {'Also noted:' if n == 0 else '':<11} {note.removeprefix('also: ')}")
    return "\n".join(lines) + "\n"


def _root_lines(indent: str, cause: str, fix: str, incident: Incident | None, explains: list[Incident],
                nxt: list[str]) -> list[str]:
    """One root cause: what, the fix, where the log shows it, what it explains, where to look next."""
    out = [f"{indent}Root cause: {cause}", f"{indent}Fix:        {fix}"]
    if incident is not None:  # its summary is in the timeline above: here, when and which lines
        out.append(f"{indent}Evidence:   {incident.kind.replace('_', ' ')} {where(incident)}")
    if explains:
        out.append(f"{indent}Explains:   {', '.join(sorted({i.kind for i in explains}))} in the same window")
    for n, step in enumerate(nxt):
        out.append(f"{indent}{'Next:' if n == 0 else '':<11} {step}")
    return out


def incident_dict(inc: Incident) -> dict[str, Any]:
    return {
        "kind": inc.kind,
        "severity": inc.severity,
        "start": fmt.timestamp(inc.start) if inc.start is not None else None,
        "end": fmt.timestamp(inc.end) if inc.end is not None else None,
        "duration_s": None if inc.duration is None else round(inc.duration, 3),
        "supervisor": inc.supervisor,
        "origin": inc.origin,
        "count": inc.count,
        "summary": inc.summary,
        "facts": trim(inc.facts),
        "examples": inc.examples,
    }


def as_json(stats: ReadStats, incidents: list[Incident], verdict: Verdict, omitted: dict[str, int]) -> str:
    """The same report as one JSON document."""
    index = {id(inc): n for n, inc in enumerate(incidents)}
    doc = {
        "input": {
            "lines": stats.lines, "events": stats.events, "truncated": stats.truncated,
            "not_json": stats.other, "other_json": stats.foreign_json, "outside_window": stats.outside_window,
            "first": fmt.timestamp(stats.first_ts) if stats.first_ts is not None else None,
            "last": fmt.timestamp(stats.last_ts) if stats.last_ts is not None else None,
            "sources": stats.sources, "supervisors": _supervisors(incidents),
            "envelopes": stats.envelopes, "skipped": stats.shapes, "stopped": stats.stopped,
            "summary": coverage.read_summary(stats), "unread": coverage.nothing_read(stats),
        },
        "incidents": [incident_dict(inc) for inc in incidents],
        "omitted": omitted,
        "verdict": as_dict(verdict, index),
    }
    return json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n"

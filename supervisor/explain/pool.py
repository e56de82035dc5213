"""Pool episodes: ``db.pool.saturated/exhausted/leak_suspected`` and pool timeouts, grouped by diagnosis.

Events of one kind and diagnosis less than ``EPISODE_GAP_S`` apart are one episode
with a count and the peak numbers.  The helpers read the diagnosis's details (who
holds the connections, which PostgreSQL session blocks them) whatever their exact
shape, because the verdict has to name the route or the blocking pid.
"""

from __future__ import annotations

import re
from typing import Any

from supervisor.explain import fmt
from supervisor.explain.model import Event, Incident, Timeline

POOL_EVENTS = frozenset({"db.pool.saturated", "db.pool.exhausted", "db.pool.leak_suspected"})
EPISODE_GAP_S = 120.0
RECENT_S = 60.0  # a 503 this close to a pool event is blamed on the pool
_HINT_PID = re.compile(r"pg_terminate_backend\((\d+)\)|lock held by pid (\d+)", re.IGNORECASE)
_ROUTE_KEYS = ("route", "endpoint", "path", "where", "site", "location", "function")
_COUNT_KEYS = ("count", "connections", "held", "n")
_AGE_KEYS = ("longest_hold_s", "age_s", "held_s", "oldest_s", "max_age_s", "seconds", "duration_s")
# Where the pool report names the sessions others wait for (backend/jarlpm/pool/report.py): the
# ``blockers`` rows, most waited-for first; else each blocked row's ``blocked_by``.
_BLOCKER_KEYS = ("blockers", "blocking_pids", "blocker_pids", "blocker_pid", "blocking_pid")
_STATE_KEYS = ("application", "application_name", "state")


def _ints(value: Any, depth: int = 0) -> list[int]:
    if isinstance(value, bool) or depth > 3:
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, dict):
        return _ints(value.get("pid"), depth + 1)
    if isinstance(value, list):
        return [pid for item in value[:50] for pid in _ints(item, depth + 1)]
    return []


def _find_keys(node: Any, keys: tuple[str, ...], depth: int = 0) -> list[Any]:
    """Values of ``keys`` anywhere in ``node`` (bounded depth), in document order."""
    found: list[Any] = []
    if depth > 4:
        return found
    if isinstance(node, dict):
        for key, value in node.items():
            if key in keys:
                found.append(value)
            elif isinstance(value, (dict, list)):
                found.extend(_find_keys(value, keys, depth + 1))
    elif isinstance(node, list):
        for item in node[:50]:
            found.extend(_find_keys(item, keys, depth + 1))
    return found


def blocker_pids(database: Any, hint: Any = None) -> list[int]:
    """PostgreSQL pids that block the pool's connections: from ``database``, else from the hint."""
    found: list[int] = []
    for keys in (_BLOCKER_KEYS, ("blocked_by",)):
        for value in _find_keys(database, keys):
            found.extend(p for p in _ints(value) if p not in found)
        if found:
            return found
    if isinstance(hint, str):
        for match in _HINT_PID.finditer(hint):
            pid = int(next(g for g in match.groups() if g))
            if pid not in found:
                found.append(pid)
    return found


def blocker_detail(database: Any, pid: int) -> dict[str, Any]:
    """What the database said about blocking session ``pid`` (application, state, age, locks)."""
    rows = [r for v in _find_keys(database, ("blockers",)) if isinstance(v, list) for r in v]
    stack: list[Any] = [*rows, database]
    while stack:
        node = stack.pop(0)
        if isinstance(node, dict):
            if node.get("pid") == pid and len(node) > 1:
                return node
            stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend(node[:50])
    return {}


def blocker_text(database: Any, pid: int) -> str:
    """``pid 48213 (psql, idle in transaction for 4 min 02 s, holds AccessExclusiveLock on epics: UPDATE …)``."""
    d = blocker_detail(database, pid)
    about = ", ".join(str(d[k]) for k in _STATE_KEYS if d.get(k))
    age = _first(d, ("transaction_age_s", "xact_age_s"))
    if isinstance(age, (int, float)) and not isinstance(age, bool) and age > 0:
        about += f" for {fmt.duration(age)}"
    locks = d.get("locks")
    if isinstance(locks, list) and locks:
        about += (", " if about else "") + "holds " + ", ".join(str(lock) for lock in locks[:2])
    statement = _first(d, ("statement", "query"))
    if statement:
        about += f": {fmt.clip(statement, 80)}"
    return f"pid {pid}" + (f" ({about})" if about else "")


def _first(d: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((d[k] for k in keys if d.get(k) is not None), None)


def top_holder(holders: Any) -> dict[str, Any] | None:
    """The holder with most connections (then the oldest): ``{"route", "count", "age_s", "where"}``."""
    rows: list[dict[str, Any]] = []
    if isinstance(holders, dict):
        holders = [{"route": k, "count": v} if isinstance(v, (int, float)) else {"route": k, **v}
                   for k, v in holders.items() if isinstance(v, (int, float, dict))]
    if not isinstance(holders, list):
        return None
    for item in holders[:200]:
        if isinstance(item, str):
            rows.append({"route": item, "count": 1, "age_s": None, "where": None})
        elif isinstance(item, dict):
            route = _first(item, _ROUTE_KEYS)
            if isinstance(route, list):
                route = route[-1] if route else None
            if isinstance(route, str) and isinstance(item.get("method"), str):
                route = f"{item['method']} {route}"
            count = _first(item, _COUNT_KEYS)
            age = _first(item, _AGE_KEYS)
            rows.append({"route": route, "count": count if isinstance(count, (int, float)) else 1,
                         "age_s": age if isinstance(age, (int, float)) else None,
                         "where": item.get("where") if isinstance(item.get("where"), str) else None})
    rows = [r for r in rows if isinstance(r["route"], str)]
    if not rows:
        return None
    return max(rows, key=lambda r: (r["count"], r["age_s"] or 0))


def _peak(facts: dict[str, Any], key: str, value: Any) -> None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        facts[key] = max(value, facts.get(key, value))


class PoolTracker:
    """Open episodes keyed by (event, diagnosis); closed when quiet for ``EPISODE_GAP_S``."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.open: dict[tuple[str, str | None], Incident] = {}

    def feed(self, event: Event) -> None:
        name = event["event"]
        ts = event.get("_ts")
        if name == "db.pool.timeout":
            episode = self.recent(ts, kinds=("db.pool.exhausted",)) or self._episode(("db.pool.timeout", None), event)
            paths = episode.facts.setdefault("timeout_paths", {})
            path = str(event.get("path"))
            if path in paths or len(paths) < 20:
                paths[path] = paths.get(path, 0) + 1
            episode.facts["timeouts"] = episode.facts.get("timeouts", 0) + 1
            if episode.kind == "pool_timeout":
                episode.count += 1
            episode.touch(event)
            return
        diagnosis = event.get("diagnosis") if isinstance(event.get("diagnosis"), str) else None
        if diagnosis is None:  # a line cut before its diagnosis belongs to the episode under way
            same = [k for k in self.open if k[0] == name]
            if same:
                diagnosis = max(same, key=lambda k: self.open[k].end or 0.0)[1]
        episode = self._episode((name, diagnosis), event)
        if name == "db.pool.exhausted":
            self._absorb_timeouts(episode, event.get("_ts"))
        episode.count += 1
        self._update(episode, event)

    def _absorb_timeouts(self, episode: Incident, ts: float | None) -> None:
        """The report follows the first timeouts by a moment: they are part of its episode."""
        key = ("db.pool.timeout", None)
        pending = self.open.get(key)
        if pending is None or (ts is not None and pending.end is not None and ts - pending.end > RECENT_S):
            return
        del self.open[key]
        facts = episode.facts
        for name in ("timeouts", "http_503"):
            if pending.facts.get(name):
                facts[name] = facts.get(name, 0) + pending.facts[name]
        paths = facts.setdefault("timeout_paths", {})
        for path, count in pending.facts.get("timeout_paths", {}).items():
            paths[path] = paths.get(path, 0) + count
        if pending.start is not None and (episode.start is None or pending.start < episode.start):
            episode.start = pending.start

    def _episode(self, key: tuple[str, str | None], event: Event) -> Incident:
        ts = event.get("_ts")
        episode = self.open.get(key)
        if episode is not None and ts is not None and episode.end is not None and ts - episode.end > EPISODE_GAP_S:
            self._close(key)
            episode = None
        if episode is None:
            kind = {"db.pool.timeout": "pool_timeout"}.get(key[0], key[0].replace("db.pool.", "pool_"))
            severity = "warning" if kind in ("pool_saturated", "pool_leak_suspected") else "error"
            episode = self.open[key] = Incident(kind, ts, severity=severity, count=0,
                                                facts={"diagnosis": key[1], "pids": []})
        return episode

    def _update(self, episode: Incident, event: Event) -> None:
        facts = episode.facts
        for key in ("checked_out", "waiting", "held_s", "age_s"):
            _peak(facts, f"peak_{key}", event.get(key))
        for key in ("pool_size", "max_overflow", "timeout_s", "hint", "holders", "database", "threshold_s"):
            if event.get(key) is not None:
                facts[key] = event[key]
        if isinstance(event.get("route"), str):  # leak_suspected names its one holder at the top level
            method = event.get("method")
            facts["route"] = f"{method} {event['route']}" if isinstance(method, str) else event["route"]
        if isinstance(event.get("where"), str):
            facts["where"] = event["where"]
        _peak(facts, "peak_demand", event.get("peak_demand"))
        suppressed = event.get("suppressed")
        if isinstance(suppressed, int) and not isinstance(suppressed, bool) and suppressed > 0:
            facts["suppressed"] = facts.get("suppressed", 0) + suppressed  # reports rate-limited away
        also = event.get("also")
        if isinstance(also, list):
            facts["also"] = sorted(set(facts.get("also", [])) | {a for a in also if isinstance(a, str)})
        pid = event.get("pid")
        if pid not in facts["pids"] and len(facts["pids"]) < 20:
            facts["pids"].append(pid)
        episode.touch(event)

    def recent(self, ts: float | None, kinds: tuple[str, ...] = ("db.pool.exhausted", "db.pool.timeout")
               ) -> Incident | None:
        """The open episode of one of ``kinds`` active within ``RECENT_S`` of ``ts``."""
        best = None
        for (name, _), episode in self.open.items():
            if name in kinds and (ts is None or episode.end is None or ts - episode.end <= RECENT_S):
                if best is None or (episode.end or 0) > (best.end or 0):
                    best = episode
        return best

    def expire(self, ts: float) -> None:
        for key, episode in list(self.open.items()):
            if episode.end is not None and ts - episode.end > EPISODE_GAP_S:
                self._close(key)

    def _close(self, key: tuple[str, str | None]) -> None:
        episode = self.open.pop(key)
        episode.summary = summarise(episode)
        if episode.facts.get("blocker_pids") is None:
            pids = blocker_pids(episode.facts.get("database"), episode.facts.get("hint"))
            if pids:
                episode.facts["blocker_pids"] = pids
        self.timeline.add(episode)

    def finish(self) -> None:
        for key in list(self.open):
            self._close(key)


def summarise(episode: Incident) -> str:
    """One line: what, how often, the diagnosis and the numbers that matter."""
    f = episode.facts
    head = episode.kind.replace("pool_", "pool ").replace("_", " ")
    if episode.count > 1 or f.get("suppressed"):
        head += f" ×{episode.count}" + (f" (+{f['suppressed']} not reported)" if f.get("suppressed") else "")
    if episode.duration:
        head += f" over {fmt.duration(episode.duration)}"
    if f.get("diagnosis"):
        head += f" — {f['diagnosis']}" + (f" (also {', '.join(f['also'])})" if f.get("also") else "")
    parts: list[str] = []
    holder = top_holder(f.get("holders"))
    if episode.kind == "pool_timeout":
        head = (f"{fmt.plural(f.get('timeouts', episode.count), 'request')} timed out waiting for a pooled "
                f"connection" + (f" over {fmt.duration(episode.duration)}" if episode.duration else ""))
        parts.append(fmt.counted(f.get("timeout_paths", {})))
    elif episode.kind == "pool_leak_suspected":
        route = f.get("route") or (holder["route"] if holder else None)
        head = f"connection held too long by {route}" if route else "connection held too long"
        head += f" ×{episode.count}" if episode.count > 1 else ""
        if f.get("where"):
            parts.append(f"taken at {f['where']}")
        if f.get("peak_held_s") is not None:
            parts.append(f"held up to {fmt.duration(f['peak_held_s'])}")
    else:
        numbers = f"peak {f.get('peak_checked_out', '?')} checked out"
        if f.get("pool_size") is not None:
            limit = (f.get("pool_size") or 0) + (f.get("max_overflow") or 0)
            numbers += (f" of {limit} (DB_POOL_SIZE {f.get('pool_size')} + DB_MAX_OVERFLOW "
                        f"{f.get('max_overflow')})")
        parts.append(f"{numbers}, {f.get('peak_waiting', 0)} waiting")
        pids = blocker_pids(f.get("database"), f.get("hint"))
        if pids:
            parts.append("blocked by PostgreSQL " + blocker_text(f.get("database"), pids[0]))
        if holder:
            parts.append(f"top holder {holder['route']} ({holder['count']})")
        if f.get("timeouts"):
            parts.append(f"{fmt.plural(f['timeouts'], 'request')} timed out")
    if f.get("http_503"):
        parts.append(f"{fmt.plural(f['http_503'], 'response')} 503")
    return head + (": " + "; ".join(p for p in parts if p) if parts else "")

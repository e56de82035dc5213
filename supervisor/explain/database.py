"""Database outages (first failure to recovery), pool episodes, and HTTP 5xx no one else explains.

An outage opens at the first sign that the database cannot be reached
(``db.wait.retry``, ``db.unavailable``, ``db.pool.warm_failed``, a phase failing
with exit 69) and closes at the first sign that it answers again (a phase that
needs it completing, a migration, a warmed pool, an API request other than the
liveness check that did not fail).  Outages closer than ``FLAP_GAP_S`` are one
flapping outage.  These trackers are global, not per supervisor: replicas share
their database, and its outage is one incident.
"""

from __future__ import annotations

from supervisor.explain import fmt
from supervisor.explain.model import Event, Incident, Timeline
from supervisor.explain.pool import POOL_EVENTS, PoolTracker

FLAP_GAP_S = 10.0
ERRORS_GAP_S = 300.0
EXPIRE_EVERY_S = 10.0
_FAILURES = frozenset({"db.wait.retry", "db.unavailable", "db.pool.warm_failed"})
_SUCCESSES = frozenset({"migrate.up_to_date", "migrate.applied", "migrate.step", "db.pool.warmed",
                        "db.pool.budget", "check.passed"})
_DB_PHASES = frozenset({"wait_for_db", "migrate", "warm_pool"})
LIVENESS = "/api/health"
READINESS = "/api/health/ready"


def _is_failure(event: Event) -> bool:
    name = event["event"]
    if name in _FAILURES:
        return True
    return name in ("phase.failed", "supervisor.reload_failed") and event.get("exit_code") == 69


def _is_success(event: Event) -> bool:
    name = event["event"]
    if name in _SUCCESSES:
        return True
    if name == "phase.completed":
        return event.get("phase") in _DB_PHASES
    if name == "http.access":
        status, path = event.get("status"), event.get("path")
        return (isinstance(status, int) and status < 500 and isinstance(path, str)
                and path.startswith("/api/") and path != LIVENESS)
    return False


def _evidence(event: Event) -> str:
    name = event["event"]
    if name == "phase.completed":
        return f"{event.get('phase')} completed"
    if name == "http.access":
        return f"{event.get('method', '')} {event.get('path')} answered {event.get('status')}".strip()
    return str(name)


class DatabaseTracker:
    """Feeds outages, pool episodes and unexplained 5xx responses from every event."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.pool = PoolTracker(timeline)
        self.outage: Incident | None = None
        self.recovered_at: float | None = None
        self.errors: Incident | None = None
        self.next_expiry = 0.0

    def feed(self, event: Event) -> None:
        name = event["event"]
        ts = event["_ts"]
        if ts is not None and ts >= self.next_expiry:
            self._expire(ts)
        if name == "http.access" and self.outage is None:  # most lines: only a 5xx matters then
            status = event.get("status")
            if isinstance(status, int) and status >= 500:
                self._server_error(event)
            return
        if name in POOL_EVENTS or name == "db.pool.timeout":
            self.pool.feed(event)
        if _is_failure(event):
            self._failure(event)
        elif name == "http.access" and isinstance(event.get("status"), int) and event["status"] >= 500:
            self._server_error(event)
        elif self.outage is not None and self.recovered_at is None and _is_success(event):
            self.recovered_at = ts
            self.outage.facts["recovered_by"] = _evidence(event)
            self.outage.touch(event)

    # -- outages -------------------------------------------------------------------------------
    def _failure(self, event: Event) -> None:
        ts = event.get("_ts")
        outage = self.outage
        if outage is not None and self.recovered_at is not None:
            if ts is not None and ts - self.recovered_at <= FLAP_GAP_S:
                outage.facts["flaps"] = outage.facts.get("flaps", 0) + 1
                self.recovered_at = None
            else:
                self._close_outage()
                outage = None
        if outage is None:
            outage = self.outage = Incident("db_outage", ts, severity="error", count=0,
                                            facts={"errors": {}, "signals": {}, "supervisors": []})
            self.recovered_at = None
        facts = outage.facts
        outage.count += 1
        signal = event["event"] if event["event"] != "phase.failed" else f"phase.failed {event.get('phase')}"
        facts["signals"][signal] = facts["signals"].get(signal, 0) + 1
        error = fmt.clip(event.get("error") or "", 160)
        if error and (error in facts["errors"] or len(facts["errors"]) < 10):
            facts["errors"][error] = facts["errors"].get(error, 0) + 1
        facts.setdefault("first_error", error)
        if event.get("exit_code") == 69:
            facts["gave_up"] = True
            facts["hint"] = event.get("hint")
        pid = event.get("pid") if event["source"] == "supervisor" else None
        if pid is not None and pid not in facts["supervisors"] and len(facts["supervisors"]) < 20:
            facts["supervisors"].append(pid)
        outage.touch(event)

    def _close_outage(self) -> None:
        outage, self.outage = self.outage, None
        if outage is None:
            return
        f = outage.facts
        if self.recovered_at is not None:
            outage.end = self.recovered_at
            how = f"recovered after {fmt.duration(outage.duration)} ({f.get('recovered_by')})"
        elif f.get("gave_up"):
            how = f"not recovered: gave up after {fmt.duration(outage.duration)} (exit 69)"
        else:
            how = f"still failing when the log ends, {fmt.duration(outage.duration)} after the first failure"
        f["recovered"] = self.recovered_at is not None
        signals = fmt.counted(f["signals"])
        error = max(f["errors"], key=lambda e: f["errors"][e]) if f["errors"] else "no error text"
        flaps = f", flapping ×{f['flaps'] + 1}" if f.get("flaps") else ""
        outage.summary = f"database unreachable{flaps}: {how}; {signals}; error: {fmt.clip(error, 160)}"
        if f["recovered"] and set(f["signals"]) <= {"db.wait.retry"}:
            outage.severity = "warning"  # only the start waited: nothing was refused
        if f.get("http_503"):
            outage.summary += f"; {fmt.plural(f['http_503'], 'response')} 503"
        self.recovered_at = None
        self.timeline.add(outage)

    # -- 5xx -----------------------------------------------------------------------------------
    def _server_error(self, event: Event) -> None:
        ts = event.get("_ts")
        if event["status"] == 503:
            if self.outage is not None and self.recovered_at is None:
                self._count_503(self.outage, event)
                return
            episode = self.pool.recent(ts)
            if episode is not None:
                self._count_503(episode, event)
                return
            if event.get("path") == READINESS:
                return  # readiness turns 503 while a process drains: expected during stops and reloads
        errors = self.errors
        if errors is not None and ts is not None and errors.end is not None and ts - errors.end > ERRORS_GAP_S:
            self._close_errors()
            errors = None
        if errors is None:
            errors = self.errors = Incident("http_errors", ts, severity="warning", count=0, facts={"by": {}})
        errors.count += 1
        key = f"{event['status']} {event.get('method', '')} {event.get('path', '?')}".replace("  ", " ")
        by: dict[str, int] = errors.facts["by"]
        if key in by or len(by) < 50:
            by[key] = by.get(key, 0) + 1
        errors.touch(event)

    @staticmethod
    def _count_503(incident: Incident, event: Event) -> None:
        incident.facts["http_503"] = incident.facts.get("http_503", 0) + 1
        incident.touch(event)

    def _close_errors(self) -> None:
        errors, self.errors = self.errors, None
        if errors is None:
            return
        errors.summary = (f"{fmt.plural(errors.count, 'response')} 5xx with no database or pool error "
                          f"logged: {fmt.counted(errors.facts['by'])}")
        self.timeline.add(errors)

    # -- time passing ----------------------------------------------------------------------------
    def _expire(self, ts: float) -> None:
        self.next_expiry = ts + EXPIRE_EVERY_S
        self.pool.expire(ts)
        if self.recovered_at is not None and ts - self.recovered_at > FLAP_GAP_S:
            self._close_outage()
        if self.errors is not None and self.errors.end is not None and ts - self.errors.end > ERRORS_GAP_S:
            self._close_errors()

    def finish(self) -> None:
        self._close_outage()
        self.pool.finish()
        self._close_errors()


"""The fields of the ``db.pool.*`` events, shaped for a person reading one JSON line.

Pure: holders grouped by route, the database's view cut down to what explains
an exhaustion, ages rounded to a tenth of a second.  Lists are capped so that
one event stays one readable line even with hundreds of sessions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from jarlpm.pool.budget import APP_PREFIX, ConnectionBudget, program_name
from jarlpm.pool.facts import Facts
from jarlpm.pool.model import (
    DbLock,
    DbSession,
    DbView,
    Diagnosis,
    HolderView,
    PoolNumbers,
    TrackerSnapshot,
    WaiterView,
)

MAX_ROWS = 5
MAX_IDS = 5


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def group_holders(holders: Sequence[HolderView], kinds: dict[int, str] | None = None) -> list[dict[str, Any]]:
    """Holders by route: how many, the longest hold, what they are doing, and where they were taken."""
    groups: dict[str, list[int]] = {}
    for index, holder in enumerate(holders):
        groups.setdefault(holder.label, []).append(index)
    out = []
    for indexes in groups.values():
        members = [holders[i] for i in indexes]
        first = members[0]
        longest = max(members, key=lambda h: h.held_s)
        group: dict[str, Any] = {
            "method": first.method,
            "route": first.route if first.route is not None else "(outside a request)",
            "count": len(members),
            "longest_hold_s": rounded(longest.held_s),
        }
        if kinds is not None:
            group["kinds"] = dict(Counter(kinds[i] for i in indexes))
        finished = [h.request_finished_s for h in members if h.request_finished_s is not None]
        if finished:
            group["requests_finished"] = len(finished)
        wheres = Counter(h.where for h in members if h.where)
        if wheres:
            group["where"] = wheres.most_common(1)[0][0]
        group["backend_pids"] = sorted({h.backend_pid for h in members if h.backend_pid is not None})[:MAX_IDS]
        group["request_ids"] = [h.request_id for h in members if h.request_id][:MAX_IDS]
        out.append(group)
    out.sort(key=lambda g: (-g["count"], -(g["longest_hold_s"] or 0.0)))
    return out


def waiting_routes(waiters: Sequence[WaiterView]) -> dict[str, int]:
    """How many requests wait, by route."""
    labels = Counter(f"{w.method} {w.route}" if w.route else "(outside a request)" for w in waiters)
    return dict(labels.most_common())


def _holder_labels(holders: Sequence[HolderView]) -> dict[int, str]:
    return {h.backend_pid: h.label for h in holders if h.backend_pid is not None}


def _lock_text(lock: DbLock) -> str:
    return f"{lock.mode} on {lock.relation}"


def database_fields(db: DbView, holders: Sequence[HolderView]) -> dict[str, Any]:
    """The database's view: limits, this app's sessions by state, idle transactions, statements, locks."""
    fields: dict[str, Any] = {"reachable": db.reachable}
    if db.settings is not None:
        fields["max_connections"] = db.settings.max_connections
        fields["reserved_connections"] = db.settings.reserved
    if not db.reachable:
        fields["error"] = db.error
        return fields
    labels = _holder_labels(holders)
    own = [s for s in db.sessions if s.same_database]
    fields["in_use"] = db.in_use
    fields["app_sessions"] = dict(Counter(s.state or "hidden" for s in own
                                          if s.application.startswith(APP_PREFIX + ":")))
    fields["by_application"] = dict(Counter(program_name(s.application) for s in db.sessions).most_common(8))
    fields["idle_in_transaction"] = [
        _row(s, labels, transaction_age_s=rounded(s.xact_age_s), idle_s=rounded(s.state_age_s))
        for s in sorted((s for s in own if (s.state or "").startswith("idle in transaction")),
                        key=lambda s: -(s.xact_age_s or 0.0))[:MAX_ROWS]
    ]
    fields["longest_statements"] = [
        _row(s, labels, running_s=rounded(s.query_age_s),
             wait=f"{s.wait_event_type}:{s.wait_event}" if s.wait_event_type else None)
        for s in sorted((s for s in own if s.state == "active"), key=lambda s: -(s.query_age_s or 0.0))[:MAX_ROWS]
    ]
    waits = {lock.pid: lock for lock in db.locks if not lock.granted}
    blocked = [s for s in db.sessions if s.blocked_by]
    fields["blocked"] = [
        _row(s, labels, waiting_s=rounded(_waited(s, waits.get(s.pid))), blocked_by=list(s.blocked_by),
             lock=_lock_text(waits[s.pid]) if s.pid in waits else None)
        for s in sorted(blocked, key=lambda s: -(_waited(s, waits.get(s.pid)) or 0.0))[:MAX_ROWS]
    ]
    fields["blockers"] = blockers(db, labels)
    if db.duration_ms is not None:
        fields["query_ms"] = db.duration_ms
    return fields


def blockers(db: DbView, labels: dict[int, str]) -> list[dict[str, Any]]:
    """Sessions that others wait for, most waited-for first, with the locks they hold."""
    counts = Counter(pid for s in db.sessions for pid in s.blocked_by)
    sessions = {s.pid: s for s in db.sessions}
    out = []
    for pid, blocking in counts.most_common(MAX_ROWS):
        session = sessions.get(pid)
        held = [_lock_text(lock) for lock in db.locks if lock.pid == pid and lock.granted][:MAX_ROWS]
        row: dict[str, Any] = {"pid": pid, "blocking": blocking, "locks": held}
        if session is None:
            row["application"] = None
        else:
            row.update(application=session.application, user=session.user, state=session.state,
                       transaction_age_s=rounded(session.xact_age_s), statement=session.statement)
            if not session.visible:
                row["note"] = "another role's session: state and statement hidden (needs pg_read_all_stats)"
        if pid in labels:
            row["holder"] = labels[pid]
        out.append(row)
    return out


def _waited(session: DbSession, lock: DbLock | None) -> float | None:
    if lock is not None and lock.waiting_s is not None:
        return lock.waiting_s
    return session.query_age_s


def _row(session: DbSession, labels: dict[int, str], **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"pid": session.pid, "application": session.application}
    row.update(extra)
    row["statement"] = session.statement
    if session.pid in labels:
        row["holder"] = labels[session.pid]
    return {k: v for k, v in row.items() if v is not None or k == "statement"}


def pool_fields(pool: PoolNumbers) -> dict[str, Any]:
    return {"pool_size": pool.pool_size, "max_overflow": pool.max_overflow, "checked_out": pool.checked_out,
            "waiting": pool.waiting, "timeout_s": pool.timeout_s}


def exhausted_fields(facts: Facts, diagnosis: Diagnosis, waiters: Sequence[WaiterView],
                     suppressed: int, interval_s: float) -> dict[str, Any]:
    """Every field of ``db.pool.exhausted`` (shared/DESIGN.md), plus budget, trigger and rate-limit counts."""
    fields = pool_fields(facts.pool)
    fields.update(
        holders=group_holders(facts.holders, diagnosis.kinds),
        waiting_routes=waiting_routes(waiters),
        peak_demand=facts.pool.peak_demand,
        database=database_fields(facts.db, facts.holders),
        budget=budget_fields(facts.budget),
        diagnosis=diagnosis.diagnosis,
        also=list(diagnosis.also),
        hint=diagnosis.hint,
        trigger=_trigger_fields(facts),
        suppressed=suppressed,
        report_interval_s=interval_s,
    )
    return fields


def budget_fields(budget: ConnectionBudget) -> dict[str, Any]:
    return budget.as_fields()


def _trigger_fields(facts: Facts) -> dict[str, Any]:
    trigger = facts.trigger
    fields: dict[str, Any] = {"kind": trigger.kind, "error": trigger.error}
    if trigger.route:
        fields["request"] = f"{trigger.method} {trigger.route}"
    return fields


def saturated_fields(pool: PoolNumbers, snapshot: TrackerSnapshot, longest_wait_s: float,
                     threads: int | None = None) -> dict[str, Any]:
    """``db.pool.saturated``: the pool is full and requests have started to queue."""
    fields = pool_fields(pool)
    threads_note = ""
    if threads is not None and threads > pool.capacity:
        fields["threads"] = threads
        threads_note = (f"; up to {threads} sync requests run at once (the request thread pool) against "
                        f"{pool.capacity} connections")
    groups = group_holders(snapshot.holders)
    top = groups[0] if groups else None
    busiest = (f"; most held by {top['method']} {top['route']} ({top['count']}, longest {top['longest_hold_s']}s)"
               if top else "")
    fields.update(
        longest_wait_s=rounded(longest_wait_s),
        holders=groups,
        waiting_routes=waiting_routes(snapshot.waiters),
        hint=(f"all {pool.capacity} connections of this process's pool are checked out and {pool.waiting} "
              f"request{'s are' if pool.waiting != 1 else ' is'} queueing for one (longest "
              f"{longest_wait_s:.1f}s){busiest}{threads_note}; they get 503 after "
              f"DB_POOL_TIMEOUT={pool.timeout_s:g}s, and db.pool.exhausted will then say why"),
    )
    return fields


def leak_fields(holder: HolderView, threshold_s: float, pool: PoolNumbers) -> dict[str, Any]:
    """``db.pool.leak_suspected``: one connection out longer than DB_LEAK_THRESHOLD, with its stack."""
    finished = holder.request_finished_s
    where = f" at {holder.where}" if holder.where else ""
    if finished is not None:
        story = (f"its request finished {finished:.1f}s ago, so nothing will return it: close what that "
                 "code opens (the request's session dependency, or a `with` block)")
    elif holder.route is None:
        story = "it was taken outside any request: a background job that never closes it?"
    else:
        story = ("its request is still running: a slow request or a long transaction; if it never "
                 "ends, look at that line")
    fields = {
        "method": holder.method,
        "route": holder.route,
        "request_id": holder.request_id,
        "held_s": rounded(holder.held_s),
        "threshold_s": threshold_s,
        "request_finished": finished is not None,
        "backend_pid": holder.backend_pid,
        "where": holder.where,
        "stack": list(holder.stack),
        "checked_out": pool.checked_out,
        "pool_size": pool.pool_size,
        "max_overflow": pool.max_overflow,
        "hint": f"{holder.label} took a connection{where} {holder.held_s:.1f}s ago and still holds it; {story}",
    }
    return fields

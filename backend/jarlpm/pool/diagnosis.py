"""Why the pool ran dry, from numbers alone: each holder gets a kind, the kinds a diagnosis, and a hint.

Pure: the monitor gathers the facts (holders, the database's sessions and
locks, the budget) and this module decides.  The diagnoses, most specific
first (shared/DESIGN.md); the first that fits wins and the others that fit
go in ``also``:

- ``lock_contention``: the pool's sessions wait for a lock someone else holds.
- ``database_at_capacity``: PostgreSQL has no connection slot left for the app's role.
- ``connection_leak``: connections stay checked out after their request ended.
- ``long_transactions``: requests keep transactions open while not using them.
- ``slow_queries``: requests run statements that take long.
- ``undersized_pool``: requests are short, there are just more of them than connections.

A holder-based diagnosis fits when at least half of the checked-out
connections are of its kind: one slow request among twenty busy ones is
worth mentioning (``also``) but is not why the pool is empty.
"""

from __future__ import annotations

from collections import Counter

from jarlpm.pool.facts import (
    DIAGNOSES,
    KIND_DIAGNOSIS,
    LEAKED,
    LOCK_WAIT,
    LONG_TRANSACTION,
    SHORT,
    SLOW_STATEMENT,
    Facts,
    is_capacity_error,
    long_threshold,
    server_message,
)
from jarlpm.pool.hints import HINTS, Context
from jarlpm.pool.model import DbSession, Diagnosis, HolderView
from supervisor.contract.diagnoses import (
    DATABASE_AT_CAPACITY,
    UNDERSIZED_POOL,
)

__all__ = ["Facts", "classify", "diagnose", "is_capacity_error", "long_threshold", "server_message"]


def classify(holder: HolderView, session: DbSession | None, long_s: float) -> str:
    """The kind of one checked-out connection, most specific first."""
    if session is not None and session.blocked_by:
        return LOCK_WAIT
    if holder.request_finished_s is not None or (holder.route is None and holder.held_s >= long_s):
        return LEAKED
    if session is None or not session.visible:
        # Without the database's view, only the hold time speaks.
        return LONG_TRANSACTION if holder.held_s >= long_s else SHORT
    if session.state == "active" and (session.query_age_s or 0.0) >= long_s:
        return SLOW_STATEMENT
    if session.state != "active" and holder.held_s >= long_s:
        # Idle in a transaction, or idle while checked out: held without being used.
        return LONG_TRANSACTION
    if (session.xact_age_s or 0.0) >= long_s:
        return LONG_TRANSACTION
    return SHORT


def diagnose(facts: Facts) -> Diagnosis:
    """The diagnosis, the others that fit (``also``) and a hint with the numbers to act on."""
    long_s = long_threshold(facts.pool.timeout_s)
    sessions = {s.pid: s for s in facts.db.sessions}
    kinds = {i: classify(h, sessions.get(h.backend_pid or -1), long_s) for i, h in enumerate(facts.holders)}
    counts = Counter(kinds.values())
    total = len(facts.holders)

    def fits(kind: str) -> bool:
        return counts[kind] > 0 and 2 * counts[kind] >= total

    at_capacity = (facts.trigger.kind == "refused" and is_capacity_error(facts.trigger.error)) or facts.budget.full
    fitting = [d for d in DIAGNOSES if (d == DATABASE_AT_CAPACITY and at_capacity)
               or (d != DATABASE_AT_CAPACITY and d != UNDERSIZED_POOL and fits(_kind_of(d)))]
    primary = fitting[0] if fitting else UNDERSIZED_POOL
    present = {KIND_DIAGNOSIS[k] for k in counts if k != SHORT} | set(fitting)
    if facts.budget.fits is False:
        present.add(DATABASE_AT_CAPACITY)
    if counts[SHORT] and facts.pool.peak_demand > facts.pool.capacity:
        present.add(UNDERSIZED_POOL)
    also = tuple(d for d in DIAGNOSES if d in present and d != primary)
    hint = HINTS[primary](Context(facts, kinds, sessions, long_s))
    return Diagnosis(diagnosis=primary, also=also, hint=hint, kinds=kinds)


def _kind_of(diagnosis: str) -> str:
    return next(kind for kind, d in KIND_DIAGNOSIS.items() if d == diagnosis)

"""The hint of each diagnosis: one paragraph with the route, the pid and the setting to change.

Pure string building from a ``Context``; written for a person who has never
seen the code and reads one log line at three in the morning.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from jarlpm.pool.budget import APP_PREFIX, program_name
from jarlpm.pool.facts import (
    CAPACITY_MESSAGES,
    LEAKED,
    LOCK_WAIT,
    LONG_TRANSACTION,
    SLOW_STATEMENT,
    Facts,
    server_message,
)
from jarlpm.pool.model import DbLock, DbSession, HolderView
from supervisor.contract.diagnoses import (
    CONNECTION_LEAK,
    DATABASE_AT_CAPACITY,
    LOCK_CONTENTION,
    LONG_TRANSACTIONS,
    SLOW_QUERIES,
    UNDERSIZED_POOL,
)


@dataclass(frozen=True)
class Context:
    """A diagnosis in the making: the facts, each holder's kind, sessions by pid."""

    facts: Facts
    kinds: dict[int, str]
    sessions: dict[int, DbSession]
    long_s: float

    def of_kind(self, kind: str) -> list[HolderView]:
        return [h for i, h in enumerate(self.facts.holders) if self.kinds[i] == kind]

    def session(self, holder: HolderView) -> DbSession | None:
        return self.sessions.get(holder.backend_pid or -1)

    @property
    def share(self) -> str:
        return f"of {self.facts.pool.checked_out} checked-out connections"

    def holder_for_pid(self, pid: int) -> HolderView | None:
        return next((h for h in self.facts.holders if h.backend_pid == pid), None)


def seconds(value: float | None) -> str:
    return "?s" if value is None else f"{value:.1f}s"


def _top_route(holders: Sequence[HolderView]) -> tuple[str, int]:
    label, count = Counter(h.label for h in holders).most_common(1)[0]
    return label, count


def _session_label(session: DbSession | None, pid: int) -> str:
    if session is None:
        return f"pid {pid}"
    app = session.application or "no application_name"
    return f"pid {pid} ({app}{', user ' + session.user if session.user else ''})"


def _lock_text(locks: Sequence[DbLock]) -> str:
    return ", ".join(f"{lock.mode} on {lock.relation}" for lock in locks[:3])


def _hint_lock(ctx: Context) -> str:
    blocked = ctx.of_kind(LOCK_WAIT)
    blockers = Counter(pid for h in blocked for pid in (ctx.session(h) or DbSession(0, "")).blocked_by)
    pid = blockers.most_common(1)[0][0]
    blocker = ctx.sessions.get(pid)
    held = [lock for lock in ctx.facts.db.locks if lock.pid == pid and lock.granted]
    waits = [s.query_age_s for h in blocked if (s := ctx.session(h)) and s.query_age_s is not None]
    text = f"{len(blocked)} {ctx.share} wait for a lock held by {_session_label(blocker, pid)}"
    if held:
        text += f", which holds {_lock_text(held)}"
    if waits:
        text += f" (waiting up to {seconds(max(waits))})"
    if blocker is not None and blocker.visible:
        text += (f"; that session is {blocker.state!r}, its transaction open {seconds(blocker.xact_age_s)}"
                 + (f", statement {blocker.statement!r}" if blocker.statement else ""))
    own = ctx.holder_for_pid(pid)
    if own is not None:
        text += f"; it is this process's own {own.label}"
    elif blocker is not None and blocker.application.startswith(APP_PREFIX + ":"):
        text += f"; it belongs to another JarlPM server process ({blocker.application})"
    return (
        text + f". End or finish that transaction: SELECT pg_terminate_backend({pid}) as its owner or a "
        "superuser, or have it commit; give maintenance sessions a lock_timeout (SET lock_timeout = '5s') "
        "so they fail instead of stalling every request"
    )


def _hint_capacity(ctx: Context) -> str:
    budget = ctx.facts.budget
    pool = ctx.facts.pool
    trigger = ctx.facts.trigger
    if any(text in trigger.error.lower() for text in CAPACITY_MESSAGES[2:]):  # a role's or database's limit
        return (f"PostgreSQL refused a connection ({server_message(trigger.error)!r}): the role's or the database's "
                f"CONNECTION LIMIT is reached; this deployment may open {budget.needed} "
                f"(WORKERS={budget.workers} × (DB_POOL_SIZE={pool.pool_size} + DB_MAX_OVERFLOW={pool.max_overflow})): "
                "raise the limit (ALTER ROLE/DATABASE ... CONNECTION LIMIT) or lower the pool")
    if budget.max_connections is None:
        limits = "its max_connections"
    else:
        limits = f"max_connections={budget.max_connections} ({budget.reserved} reserved for superusers)"
    if budget.in_use is not None:
        usage = f"{budget.in_use} connections in use against {limits}"
        apps = Counter(program_name(s.application) for s in ctx.facts.db.sessions)
        top = ", ".join(f"{name} {count}" for name, count in apps.most_common(4))
        if top:
            usage += f" (by application: {top})"
    else:
        usage = f"no slot left of {limits}"
    refused = (f"PostgreSQL refused a new connection ({server_message(trigger.error)!r}): "
               if trigger.kind == "refused" else "")
    return (
        f"{refused}{usage}; this process holds {pool.checked_out} and may open {pool.capacity}, "
        f"the deployment {budget.needed} (WORKERS={budget.workers} × (DB_POOL_SIZE={pool.pool_size} + "
        f"DB_MAX_OVERFLOW={pool.max_overflow})). Lower DB_POOL_SIZE/DB_MAX_OVERFLOW or WORKERS, stop idle "
        "clients, put PgBouncer in front, or raise max_connections"
        + ("" if budget.in_use is not None else
           "; see who holds the slots as a superuser: SELECT application_name, state, count(*) "
           "FROM pg_stat_activity GROUP BY 1, 2")
    )


def _hint_leak(ctx: Context) -> str:
    leaked = ctx.of_kind(LEAKED)
    label, count = _top_route(leaked)
    sample = max((h for h in leaked if h.label == label), key=lambda h: h.held_s)
    where = f" at {sample.where}" if sample.where else ""
    if sample.request_finished_s is not None:
        story = f"their request finished (up to {seconds(sample.request_finished_s)} ago) without returning them"
    else:
        story = "held outside any request"
    text = (f"{len(leaked)} {ctx.share} are never returned: {count} taken by {label}{where}, "
            f"{story}; longest held {seconds(sample.held_s)}. Close what that code opens: use the "
            "request's session dependency or `with engine.connect() as conn:` / `with Session(...)`")
    if not sample.where:
        text += "; set DB_LEAK_THRESHOLD=10 to log the stack where a connection held over 10 s was taken"
    return text


def _hint_long_transactions(ctx: Context) -> str:
    held = ctx.of_kind(LONG_TRANSACTION)
    label, count = _top_route(held)
    sample = max((h for h in held if h.label == label), key=lambda h: h.held_s)
    session = ctx.session(sample)
    if session is not None and session.visible:
        state = (f"pid {session.pid} {session.state} with its transaction open "
                 f"{seconds(session.xact_age_s)}")
        if session.statement:
            state += f", last statement {session.statement!r}"
    else:
        state = f"held {seconds(sample.held_s)}; the database's view is unavailable"
    idle_timeout = max(5, round(ctx.facts.pool.timeout_s))
    return (f"{len(held)} {ctx.share} are held by open transactions that are not running anything: "
            f"{count} by {label} ({state}). Commit or roll back before slow non-database work (calls to "
            "other services, sleeps, file uploads), or do that work outside the session; set "
            f"DB_IDLE_IN_TRANSACTION_TIMEOUT={idle_timeout} so PostgreSQL ends transactions left idle longer")


def _hint_slow(ctx: Context) -> str:
    slow = ctx.of_kind(SLOW_STATEMENT)
    label, count = _top_route(slow)
    sessions = [s for h in slow if (s := ctx.session(h)) is not None]
    longest = max(sessions, key=lambda s: s.query_age_s or 0.0)
    statement = f": {longest.statement!r}" if longest.statement else ""
    cap = max(5, round(ctx.facts.pool.timeout_s))
    return (f"{len(slow)} {ctx.share} are running long statements: {count} by {label}; the longest, "
            f"pid {longest.pid}, has run {seconds(longest.query_age_s)}{statement}. Make the statement "
            "faster (EXPLAIN ANALYZE it; an index, a smaller page) or set "
            f"DB_STATEMENT_TIMEOUT={cap} so one slow request cannot hold a connection for long")


def _hint_undersized(ctx: Context) -> str:
    pool = ctx.facts.pool
    budget = ctx.facts.budget
    longest = max((h.held_s for h in ctx.facts.holders), default=0.0)
    wanted = max(pool.peak_demand, pool.checked_out + pool.waiting, pool.capacity + 1)
    size = wanted - pool.max_overflow
    total = budget.workers * wanted
    text = (f"requests hold connections briefly (longest {seconds(longest)}), but {wanted} wanted one at "
            f"once against this process's {pool.capacity} (DB_POOL_SIZE={pool.pool_size} + "
            f"DB_MAX_OVERFLOW={pool.max_overflow}); {pool.waiting} still waiting. DB_POOL_SIZE={size} "
            f"(with DB_MAX_OVERFLOW={pool.max_overflow}) would have sufficed")
    if budget.available is not None:
        room = (f"max_connections {budget.max_connections} − reserved {budget.reserved} − "
                f"{budget.other_clients or 0} other clients = {budget.available}")
        if total <= budget.available:
            text += f"; WORKERS={budget.workers} × {wanted} = {total} fits PostgreSQL's {room}"
        else:
            text += (f", but WORKERS={budget.workers} × {wanted} = {total} exceeds PostgreSQL's {room}: "
                     "put PgBouncer in front or raise max_connections")
    return text


HINTS: dict[str, Callable[[Context], str]] = {
    LOCK_CONTENTION: _hint_lock,
    DATABASE_AT_CAPACITY: _hint_capacity,
    CONNECTION_LEAK: _hint_leak,
    LONG_TRANSACTIONS: _hint_long_transactions,
    SLOW_QUERIES: _hint_slow,
    UNDERSIZED_POOL: _hint_undersized,
}

"""What to change, for the errors a verdict meets: crash exceptions, SQLSTATEs, pool diagnoses.

Each function turns facts into a concrete instruction: the variable and its new
value, the file and line, the session to end.  Generic advice is the last resort.
"""

from __future__ import annotations

import math
import re
from typing import Any

from supervisor.contract import diagnoses
from supervisor.explain import fmt
from supervisor.explain.pool import (
    blocker_detail,
    blocker_pids,
    blocker_text,
    top_holder,
)

_MISSING_MODULE = re.compile(r"No module named '([^']+)'")
_CANNOT_IMPORT = re.compile(r"cannot import name '([^']+)' from '([^']+)'")

# SQLSTATE classes a failing migration meets most (PostgreSQL Appendix A).
SQLSTATE_TIPS = {
    "42P01": "the revision uses a table that does not exist at that point: check its down_revision order, "
             "or create the table in an earlier revision",
    "42703": "the revision names a column that does not exist: check the column name and the revision order",
    "42P07": "the table already exists: the database was changed by hand, or an earlier revision already "
             "created it; make the revision idempotent or stamp the database",
    "42701": "the column already exists: the database was changed by hand or an earlier revision added it",
    "42601": "SQL syntax error in the revision",
    "23505": "existing rows violate the new unique constraint: de-duplicate them in the revision first",
    "23502": "existing rows have NULLs in a column made NOT NULL: backfill a value in the revision first",
    "23503": "existing rows violate the new foreign key: fix or delete the orphans first",
    "23514": "existing rows violate the new check constraint: fix them first",
    "55P03": "the revision waited longer than MIGRATION_DDL_LOCK_TIMEOUT for a table lock",
    "42501": "the migration role lacks a privilege: migrate with the table owner (DATABASE_DIRECT_URL)",
}


def frame_text(frame: Any) -> str:
    if not isinstance(frame, dict):
        return ""
    return f"{frame.get('file')}:{frame.get('line')} in {frame.get('func')}"


def crash_fix(exception: str | None, app_frame: Any) -> str:
    """The fix for a server process that dies at start-up, from its last exception line."""
    where = f" ({frame_text(app_frame)})" if app_frame else ""
    if not exception:
        return ("run the server alone to see why it dies: `python -m supervisor.server.worker --help`, or import "
                "the app named by JARLPM_APP in a Python shell")
    missing = _MISSING_MODULE.search(exception)
    if missing:
        module = missing.group(1)
        return (f"install the missing dependency `{module.split('.')[0]}` in the deployed environment (add it "
                f"to the project's dependencies and rebuild), or remove the import{where}; if `{module}` is "
                f"the app's own module, fix JARLPM_APP / JARLPM_APP_DIR")
    cannot = _CANNOT_IMPORT.search(exception)
    if cannot:
        return (f"`{cannot.group(2)}` has no `{cannot.group(1)}`: pin the dependency to a version that has it, "
                f"or fix the import{where}")
    if exception.startswith(("AttributeError", "ImportFromStringError")) or "Attribute" in exception:
        return f"fix JARLPM_APP (module:attribute) so it names the ASGI app object{where}: {exception}"
    if exception.startswith("SyntaxError") or exception.startswith("IndentationError"):
        return f"fix the syntax error{where} and redeploy"
    if "OperationalError" in exception or "could not connect" in exception:
        return "the app could not reach the database at start-up: see the database outage, check DATABASE_URL"
    return f"fix the app's start-up error{where}: {fmt.clip(exception, 160)}"


def migration_fix(failure: dict[str, Any], migration: dict[str, Any]) -> str:
    """The fix for a failed migrate phase: the revision, the error, the blocking session."""
    revision = failure.get("revision")
    sqlstate = failure.get("sqlstate")
    blockers = failure.get("blockers") if isinstance(failure.get("blockers"), list) else []
    if failure.get("heads"):
        return (f"merge the heads {', '.join(map(str, failure['heads']))}: `alembic merge -m 'merge heads' "
                f"{' '.join(map(str, failure['heads']))}`, commit the merge revision and redeploy")
    if sqlstate == "55P03" and blockers:
        b = blockers[0] if isinstance(blockers[0], dict) else {}
        return (f"PostgreSQL session pid {b.get('pid')} ({b.get('application_name') or '?'}, "
                f"{b.get('state') or '?'}) held the lock revision {revision} needed: let it finish or end it "
                f"with `SELECT pg_terminate_backend({b.get('pid')})`, then restart; raise "
                "MIGRATION_DDL_LOCK_TIMEOUT only if that session is legitimate")
    if revision:
        tip = SQLSTATE_TIPS.get(str(sqlstate), "")
        stays = fmt.revision(failure.get("last_good_revision"))
        return (f"fix revision {revision} (alembic/versions/{revision}.py){': ' + tip if tip else ''}; "
                f"the database stays at {stays}; try it with `jarlpm migrate upgrade` before redeploying")
    return str(failure.get("hint") or "fix the migration named in the error and redeploy")


def _lock_fix(facts: dict[str, Any], pid: int) -> str:
    d = blocker_detail(facts.get("database"), pid)
    fix = (f"end or finish the blocking transaction: `SELECT pg_terminate_backend({pid});` (as its owner or a "
           "superuser), or have it commit")
    application = str(d.get("application") or d.get("application_name") or "")
    state = str(d.get("state") or "")
    if application.startswith("jarlpm-server"):
        fix += ("; it is JarlPM's own connection: set DB_IDLE_IN_TRANSACTION_TIMEOUT=60 so a transaction left "
                "open cannot hold locks, and find the code path that leaves it open")
    elif state.startswith("idle in transaction"):
        role = d.get("user") or "…"
        fix += (f"; make that client ({application or 'unknown application'}) commit, or give its role an idle "
                f"timeout: ALTER ROLE {role} SET idle_in_transaction_session_timeout = '60s'")
    else:
        fix += (f"; give maintenance sessions ({application or 'the blocker'}) a lock_timeout "
                "(SET lock_timeout = '5s') so they fail instead of stalling every request")
    return fix + ", and set DB_STATEMENT_TIMEOUT so requests stuck behind a lock give their connection back"


def pool_fix(diagnosis: str | None, facts: dict[str, Any]) -> tuple[str, str]:
    """(cause, fix) for a pool episode, by its diagnosis."""
    holder = top_holder(facts.get("holders"))
    route = facts.get("route") or (holder["route"] if holder else None)
    where = (holder or {}).get("where") or facts.get("where")
    pool_size, overflow = facts.get("pool_size"), facts.get("max_overflow")
    if diagnosis == diagnoses.LOCK_CONTENTION:
        pids = blocker_pids(facts.get("database"), facts.get("hint"))
        if pids:
            return (f"the pool's connections waited on a lock held by PostgreSQL session "
                    f"{blocker_text(facts.get('database'), pids[0])}", _lock_fix(facts, pids[0]))
        return ("the pool's connections waited on a row or table lock",
                "find the blocker with `SELECT pid, pg_blocking_pids(pid), state, query FROM pg_stat_activity`; "
                "set DB_STATEMENT_TIMEOUT so requests stuck behind a lock give their connection back")
    if diagnosis == diagnoses.CONNECTION_LEAK:
        held = f", held up to {fmt.duration(holder['age_s'])}" if holder and holder.get("age_s") else ""
        at = f" at {where}" if where else ""
        return (f"route {route or '?'} checks connections out{at} and does not return them{held}",
                f"close the connection taken{at or ' in ' + str(route or 'that route')}: use the request's "
                "session dependency or a `with engine.connect() as conn:` / `with Session(...)` block; "
                "DB_LEAK_THRESHOLD=30 logs the checkout stack of any connection held longer")
    if diagnosis == diagnoses.DATABASE_AT_CAPACITY:
        return ("PostgreSQL ran out of connection slots (max_connections)",
                "lower WORKERS × (DB_POOL_SIZE + DB_MAX_OVERFLOW) across all replicas, put PgBouncer in "
                "front, or raise max_connections")
    if diagnosis == diagnoses.LONG_TRANSACTIONS:
        return (f"long transactions{' in ' + route if route else ''} keep connections checked out",
                f"shorten the transactions{' of ' + route if route else ''} (no network calls inside them); "
                "set DB_IDLE_IN_TRANSACTION_TIMEOUT=60")
    if diagnosis == diagnoses.SLOW_QUERIES:
        return (f"slow queries{' in ' + route if route else ''} keep connections busy",
                "find them in pg_stat_statements and index or rewrite them; set DB_STATEMENT_TIMEOUT=30 so "
                "one slow query cannot hold a connection forever")
    if diagnosis == diagnoses.UNDERSIZED_POOL and isinstance(pool_size, int):
        demand = (facts.get("peak_checked_out") or 0) + (facts.get("peak_waiting") or 0)
        new_size = max(pool_size + 1, math.ceil(demand) - (overflow or 0))
        return (f"demand ({demand} connections at peak) exceeded DB_POOL_SIZE {pool_size} + "
                f"DB_MAX_OVERFLOW {overflow}",
                f"raise DB_POOL_SIZE from {pool_size} to {new_size} (check the pool budget against "
                "max_connections first), or add WORKERS/replicas")
    hint = facts.get("hint")
    return (f"the connection pool was exhausted{' (' + diagnosis + ')' if diagnosis else ''}",
            str(hint) if hint else "see the holders in the db.pool.exhausted event; raise DB_POOL_SIZE only "
            "if no route leaks and nothing blocks")

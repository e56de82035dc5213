"""Every incident that can be a cause, as a scored ``Candidate`` with its cause and fix in words.

The score says how decisive the incident is: what made the supervisor exit (a
failed phase, a crash loop) beats a warning; a specific pool diagnosis beats a
generic one.  ``causality`` then decides which candidates are effects of others,
and ``verdict`` words the independent ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from supervisor.contract import diagnoses
from supervisor.explain import fmt
from supervisor.explain.fixes import (
    crash_fix,
    frame_text,
    migration_fix,
    pool_fix,
)
from supervisor.explain.lifecycle import EXIT_MEANING, problem_text
from supervisor.explain.model import Incident


@dataclass
class Candidate:
    """One possible root cause."""

    score: int
    cause: str
    fix: str
    incident: Incident
    next: list[str] = field(default_factory=list)


def _start_failed(inc: Incident) -> Candidate:
    failure = inc.facts.get("failure") or {}
    code = failure.get("exit_code")
    error = fmt.clip(failure.get("error", ""), 300)
    phase = failure.get("phase")
    if code == 78:
        problems: list[Any] = failure["problems"] if isinstance(failure.get("problems"), list) else []
        fix = "; ".join(fmt.clip(problem_text(p), 200) for p in problems) or str(failure.get("hint", ""))
        unknown: list[Any] = failure.get("unknown_variables") or []
        typos = [f"{u.get('variable')} → {u.get('suggestion')}" for u in unknown if u.get("suggestion")]
        if typos:
            fix += f"; rename the misspelt {', '.join(typos)}"
        return Candidate(100, error if error.startswith("invalid configuration") else
                         f"invalid configuration: {error}", f"fix the environment: {fix}", inc,
                         ["run `jarlpm check` with the corrected environment before deploying"])
    if code == 65 or phase == "migrate":
        revision = failure.get("revision")
        cause = f"migration {revision} failed: {error}" if revision and str(revision) not in error else error
        if failure.get("sqlstate"):
            cause += f" (SQLSTATE {failure['sqlstate']})"
        return Candidate(100, cause, migration_fix(failure, inc.facts.get("migration") or {}), inc,
                         ["`jarlpm migrate current` shows where the database stands",
                          "`jarlpm migrate upgrade --sql` prints the SQL the revision runs"])
    if code == 69:
        timeout = inc.facts.get("db_wait_timeout_s")
        now = f" (now {timeout:g} s)" if isinstance(timeout, (int, float)) else ""
        return Candidate(100, f"the database did not answer within DB_WAIT_TIMEOUT: {error}",
                         "start or repair the database, or fix the host/port in DATABASE_URL; if it only "
                         f"starts slowly, raise DB_WAIT_TIMEOUT{now}", inc,
                         ["check the database's own log and that this host can reach it (firewall, DNS)"])
    if code == 77:
        return Candidate(100, f"the database refused the credentials or a permission: {error}",
                         "fix the user/password in DATABASE_URL (or its *_FILE secret), or GRANT the role what "
                         "it lacks; waiting will not help", inc, [])
    if code == 75:
        holder = (inc.facts.get("migration") or {}).get("lock_holder_pid")
        who = f" held by PostgreSQL session pid {holder}" if holder is not None else ""
        return Candidate(100, f"another replica's migration lock{who} was not released in time: {error}",
                         "check the replica that is migrating (is its migration stuck on a lock?); raise "
                         "MIGRATION_LOCK_TIMEOUT if migrations are legitimately long", inc, [])
    return Candidate(95, f"{phase} failed: {error}", str(failure.get("hint") or "see the error"), inc, [])


def _crash_loop(inc: Incident) -> Candidate:
    exc = inc.facts.get("exception")
    where = frame_text(inc.facts.get("app_frame"))
    cause = (f"every server process died during start-up: {exc or 'no exception in stderr_tail'}"
             + (f" at {where}" if where else ""))
    return Candidate(100, cause, crash_fix(exc, inc.facts.get("app_frame")), inc,
                     ["the stderr_tail of child.crash_loop holds the last traceback",
                      "after fixing, `jarlpm run` again; CRASH_LOOP_LIMIT only decides how soon it gives up"])


def _restarts(inc: Incident) -> Candidate:
    causes = inc.facts.get("causes", {})
    exc = inc.facts.get("exception")
    if "SIGKILL" in causes:
        return Candidate(75, f"server processes were killed by SIGKILL ({fmt.counted(causes)}): most likely the "
                         "kernel's OOM killer", "raise the container's memory limit or find what grows memory "
                         "(`journalctl -k | grep -i oom`, `dmesg`)", inc, [])
    if inc.facts.get("after_ready", 0) == 0:
        return Candidate(60, f"server processes died during start-up, then one became ready: {exc or '?'}",
                         crash_fix(exc, inc.facts.get("app_frame")), inc, [])
    codes = [c for c in causes if c.startswith("exit ")]
    return Candidate(70, f"server processes exited on their own after serving ({fmt.counted(causes)})"
                     + (f": {exc}" if exc else ""),
                     crash_fix(exc, inc.facts.get("app_frame")) if exc else
                     f"find what ends the process with {' / '.join(codes) or 'that status'} while serving "
                     "(sys.exit/os._exit in the app or a library, a fatal native error): read the server lines "
                     "just before each child.exited", inc, [])


def _hang(inc: Incident) -> Candidate:
    f = inc.facts
    if f.get("stopped"):
        return Candidate(
            80, "the server process was stopped (SIGSTOP, a debugger, `docker pause` or a cgroup freezer): "
                "it sent no heartbeat and printed no stacks, so no blocking call is to blame",
            "find what stopped it (`kill -STOP`, gdb/py-spy attached, a paused container) and stop doing "
            "that to a serving process; the supervisor replaced it after HEARTBEAT_TIMEOUT", inc,
            ["the process_state field of child.unresponsive"])
    func, endpoint = f.get("function"), f.get("endpoint")
    where = f"{func} ({f.get('file', '?').rsplit('/', 1)[-1]}:{f.get('line')})" if func else f.get("where")
    cause = f"the event loop stalled in {where}" + (f", called by endpoint {endpoint}" if endpoint else "")
    cause += ": a blocking call inside async code"
    target = f"endpoint `{endpoint}`" if endpoint else "the async function"
    fix = (f"make {target} a plain `def` (FastAPI runs it in a thread pool) or move `{func or 'the call'}` "
           f"off the loop with `await asyncio.to_thread(...)`; HEARTBEAT_TIMEOUT "
           f"(now {f.get('heartbeat_timeout_s')} s) only decides how soon a stalled process is killed")
    return Candidate(80, cause, fix, inc, ["the stacks field of child.unresponsive shows every thread"])


def _pool(inc: Incident) -> Candidate:
    diagnosis = inc.facts.get("diagnosis")
    if inc.kind == "pool_leak_suspected" and diagnosis is None:
        diagnosis = diagnoses.CONNECTION_LEAK
    cause, fix = pool_fix(diagnosis, inc.facts)
    base = {diagnoses.LOCK_CONTENTION: 85, diagnoses.CONNECTION_LEAK: 82, diagnoses.DATABASE_AT_CAPACITY: 78,
            diagnoses.LONG_TRANSACTIONS: 72, diagnoses.SLOW_QUERIES: 70,
            diagnoses.UNDERSIZED_POOL: 65}.get(str(diagnosis), 55)
    if inc.kind == "pool_saturated":
        base -= 30
    elif inc.kind == "pool_leak_suspected":
        base -= 15
    if inc.kind == "pool_timeout":
        cause = (f"requests waited DB_POOL_TIMEOUT for a pooled connection "
                 f"({fmt.counted(inc.facts.get('timeout_paths', {}))}) and no diagnosis was logged")
    nxt = ["the holders and database fields of db.pool.exhausted say who held the connections"]
    return Candidate(base, cause, fix, inc, nxt)


def _outage(inc: Incident) -> Candidate:
    f = inc.facts
    error = max(f["errors"], key=lambda e: f["errors"][e]) if f.get("errors") else "?"
    startup_only = set(f.get("signals", {})) <= {"db.wait.retry"} and f.get("recovered")
    if startup_only:
        return Candidate(30, f"the database was not reachable yet when the supervisor started "
                         f"({fmt.duration(inc.duration)}): {error}",
                         "nothing to fix if the database was starting too; otherwise order the services "
                         "(systemd After=postgresql.service, compose depends_on: condition: service_healthy)",
                         inc, [])
    score = 95 if not f.get("recovered") else 70
    how = "and had not recovered" if not f.get("recovered") else f"for {fmt.duration(inc.duration)}"
    return Candidate(score, f"the database was unreachable {how}: {error}",
                     "check the database server (its log, restarts, failover) and the network path to it; the "
                     "supervisor and the server recover by themselves when it returns", inc,
                     ["the database's own log around " + fmt.timestamp(inc.start)])


_SIMPLE: dict[str, Callable[[Incident], Candidate]] = {
    "start_failed": _start_failed, "crash_loop": _crash_loop, "restarts": _restarts, "hang": _hang,
    "pool_exhausted": _pool, "pool_saturated": _pool, "pool_leak_suspected": _pool, "pool_timeout": _pool,
    "db_outage": _outage,
}


def _other(inc: Incident) -> Candidate | None:
    f = inc.facts
    if inc.kind == "reload_failed":
        failure = f.get("failure") or f.get("reload_failed") or {}
        return Candidate(70, f"a reload failed: {fmt.clip(failure.get('error', inc.summary), 300)}",
                         str(failure.get("hint") or "fix the error, then send SIGHUP again"), inc,
                         ["the previous server processes kept serving"])
    if inc.kind == "supervisor_crashed":
        return Candidate(90, f"the supervisor crashed: {fmt.clip(f.get('error'), 300)}",
                         "this is a bug in the supervisor: report it with the traceback of supervisor.crashed",
                         inc, [])
    if inc.kind == "app_errors":
        top = max(f["exceptions"], key=lambda k: f["exceptions"][k]) if f.get("exceptions") else "?"
        where = frame_text(f.get("app_frame"))
        return Candidate(50, f"the app raised {top}" + (f" at {where}" if where else ""),
                         f"fix {where or 'the code in the traceback'}", inc, [])
    if inc.kind == "http_errors":
        return Candidate(45, inc.summary, "read the server lines just before these responses", inc, [])
    if inc.kind == "pool_budget":
        return Candidate(35, inc.summary, "lower DB_POOL_SIZE/DB_MAX_OVERFLOW or WORKERS, use PgBouncer, or "
                         "raise max_connections", inc, [])
    if inc.kind == "start_incomplete":
        return Candidate(25, inc.summary, "read the lines after the last phase event", inc, [])
    if inc.kind == "log_dropped":
        return Candidate(20, inc.summary, "check the log shipper or journald's rate limits", inc, [])
    if inc.kind == "stop" and f.get("exit_code") not in (0, None):
        meaning = EXIT_MEANING.get(f["exit_code"], "")
        return Candidate(40, f"the supervisor exited {f['exit_code']} ({meaning})", "see the incidents before",
                         inc, [])
    return None


def candidates(incidents: list[Incident]) -> list[Candidate]:
    """The candidates of a timeline; a supervisor's exit code only when nothing else of it explains it."""
    found = []
    for inc in incidents:
        make = _SIMPLE.get(inc.kind)
        candidate = make(inc) if make is not None else _other(inc)
        if candidate is not None:
            found.append(candidate)
    # An exit code is a consequence: keep it only when nothing else of that supervisor explains it.
    explained = {(c.incident.origin, c.incident.supervisor) for c in found
                 if c.incident.kind != "stop" and c.score >= 60}
    return [c for c in found
            if c.incident.kind != "stop" or (c.incident.origin, c.incident.supervisor) not in explained]

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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import fmt
from .causality import independent
from .fixes import crash_fix, frame_text, migration_fix, pool_fix
from .lifecycle import EXIT_MEANING, problem_text
from .model import Incident

MINOR_SCORE = 40  # below this a root cause is only noted, unless it is the only one
MAX_NOTES = 3


@dataclass
class Candidate:
    """One possible root cause."""

    score: int
    cause: str
    fix: str
    incident: Incident
    next: list[str] = field(default_factory=list)


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
        diagnosis = "connection_leak"
    cause, fix = pool_fix(diagnosis, inc.facts)
    base = {"lock_contention": 85, "connection_leak": 82, "database_at_capacity": 78, "long_transactions": 72,
            "slow_queries": 70, "undersized_pool": 65}.get(str(diagnosis), 55)
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


def _candidates(incidents: list[Incident]) -> list[Candidate]:
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
    candidates = _candidates(incidents)
    if not candidates:
        starts = sum(1 for i in incidents if i.kind == "start")
        cause = (f"no incident: {fmt.plural(starts, 'clean start')}" if starts else
                 "no incident found in these lines")
        return Verdict(cause, "nothing to fix", None, ["widen --since/--until if you expected something"])
    roots: list[RootCause] = []
    notes: list[str] = []
    seen: dict[tuple[str, str], RootCause] = {}
    for root, effects in independent(candidates, _rank):
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

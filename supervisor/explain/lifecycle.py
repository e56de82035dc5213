"""A supervisor's life as phases: one start (validate_env … warm_pool, then ready), reloads, a stop.

``PhaseRun`` accumulates the phases of one start or one reload and says how they
went in one line ("validate_env 3 ms, wait_for_db 1.2 s (4 retries), migrate 0.8 s
(applied 0002→0003), warm_pool 40 ms"); the supervisor tracker turns it into a
``start``/``start_failed``/``reload``/``reload_failed`` incident.
"""

from __future__ import annotations

from typing import Any

from supervisor.explain import fmt
from supervisor.explain.model import Event, Incident

EXIT_MEANING = {
    0: "stopped on request",
    64: "command-line usage error",
    65: "migrations failed, several heads, or models out of step",
    69: "database not reachable within DB_WAIT_TIMEOUT",
    70: "the server kept crashing",
    75: "timed out waiting for another replica's migration lock",
    77: "database refused the credentials or the permission",
    78: "invalid configuration",
}


def exit_meaning(code: Any) -> str:
    if isinstance(code, int) and code in EXIT_MEANING:
        return f"exit {code}, {EXIT_MEANING[code]}"
    return f"exit {code}"


class PhaseRun:
    """The phases of one start or reload, the retries and migrations inside them, and how it ended."""

    def __init__(self, incident: Incident) -> None:
        self.incident = incident
        self.phases: list[dict[str, Any]] = []
        self.retries = 0
        self.last_retry_error: str | None = None
        self.wait_timeout_s: float | None = None
        self.migration: dict[str, Any] = {}
        self.failure: Event | None = None
        self.notes: list[str] = []

    def feed(self, event: Event) -> None:
        """Fold a phase.*, db.wait.retry, migrate.* or config event into this run."""
        self.incident.touch(event)
        name = event["event"]
        if name == "phase.started":
            self.phases.append({"phase": event.get("phase"), "status": "running"})
        elif name in ("phase.completed", "phase.failed", "phase.interrupted"):
            self._phase_ended(event)
        elif name == "db.wait.retry":
            self.retries += 1
            self.last_retry_error = fmt.clip(event.get("error", ""), 200)
            if self.retries == 1 and isinstance(event.get("remaining_s"), (int, float)):
                self.wait_timeout_s = event["remaining_s"]  # the first retry has all of DB_WAIT_TIMEOUT left
        elif name.startswith("migrate."):
            self._migrate(event)
        elif name == "config.unknown_variable":
            suggestion = event.get("suggestion")
            self.notes.append(f"unknown variable {event.get('variable')}"
                              + (f" (did you mean {suggestion}?)" if suggestion else ""))
        elif name == "db.pool.budget" and event.get("fits") is False:
            self.notes.append(fmt.clip(f"pool budget {event.get('needed')} > {event.get('available')} "
                                       "connections available", 120))

    def _phase_ended(self, event: Event) -> None:
        phase = event.get("phase")
        record = next((p for p in reversed(self.phases) if p["phase"] == phase), None)
        if record is None:
            record = {"phase": phase}
            self.phases.append(record)
        record["duration_ms"] = event.get("duration_ms")
        record["status"] = {"phase.completed": "ok", "phase.failed": "failed"}.get(event["event"], "interrupted")
        if event["event"] == "phase.failed":
            self.failure = event

    def _migrate(self, event: Event) -> None:
        name = event["event"]
        m = self.migration
        if name == "migrate.applied":
            m.update(applied=True, from_revision=event.get("from_revision"),
                     to_revision=event.get("to_revision"), revisions=event.get("revisions"))
        elif name == "migrate.step":
            steps = m.setdefault("steps", [])
            if len(steps) < 200:
                steps.append({"revision": event.get("revision"), "duration_ms": event.get("duration_ms")})
        elif name == "migrate.up_to_date":
            m.update(up_to_date=event.get("revision"))
        elif name == "migrate.database_ahead":
            m.update(database_ahead=event.get("database_revision"), code_head=event.get("code_head"))
        elif name == "migrate.lock_waiting":
            m.update(lock_holder_pid=event.get("holder_pid"), lock_waited_s=event.get("waited_s"))

    # -- describing --------------------------------------------------------------------------
    def phase_text(self, record: dict[str, Any]) -> str:
        text = f"{record['phase']} {fmt.ms(record.get('duration_ms'))}"
        extra = []
        if record["phase"] == "wait_for_db" and self.retries:
            extra.append(fmt.plural(self.retries, "retry", "retries"))
        if record["phase"] == "migrate":
            extra.extend(self.migration_words())
        if record.get("status") == "failed":
            extra.append("FAILED")
        elif record.get("status") in ("running", "interrupted"):
            text = f"{record['phase']} {record.get('status')}"
        return text + (f" ({', '.join(extra)})" if extra else "")

    def migration_words(self) -> list[str]:
        m = self.migration
        words = []
        if m.get("lock_holder_pid") is not None:
            words.append(f"waited {m.get('lock_waited_s')} s for the lock held by pid {m['lock_holder_pid']}")
        if m.get("applied"):
            revs = m.get("revisions") or []
            words.append(f"applied {fmt.revision(m.get('from_revision'))}→{fmt.revision(m.get('to_revision'))}"
                         + (f", {fmt.plural(len(revs), 'revision')}" if isinstance(revs, list) else ""))
        elif m.get("up_to_date"):
            words.append(f"up to date at {m['up_to_date']}")
        if m.get("database_ahead"):
            words.append(f"database ahead at {m['database_ahead']}")
        return words

    def phases_text(self) -> str:
        return ", ".join(self.phase_text(p) for p in self.phases if p.get("phase"))

    def facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = {"phases": self.phases, "db_retries": self.retries}
        if self.last_retry_error:
            facts["last_retry_error"] = self.last_retry_error
        if self.wait_timeout_s is not None:
            facts["db_wait_timeout_s"] = self.wait_timeout_s
        if self.migration:
            facts["migration"] = self.migration
        if self.notes:
            facts["notes"] = self.notes[:20]
        if self.failure is not None:
            facts["failure"] = {k: v for k, v in self.failure.items()
                                if k not in ("timestamp", "level", "event", "source", "_ts", "_n")}
        return facts


def failure_text(failure: Event) -> str:
    """``migrate failed (exit 65, …): <error>; hint: <hint>``."""
    text = (f"{failure.get('phase')} failed ({exit_meaning(failure.get('exit_code'))}): "
            f"{fmt.clip(failure.get('error', ''), 240)}")
    problems = failure.get("problems")
    if isinstance(problems, list) and problems:
        text += " — " + "; ".join(fmt.clip(problem_text(p), 160) for p in problems[:5])
    if failure.get("hint"):
        text += f"; hint: {fmt.clip(failure['hint'], 240)}"
    return text


def problem_text(problem: Any) -> str:
    """``DB_POOL_SIZE is 'lots', which is not a whole number (expected a whole number from 1 to 1000)``."""
    if isinstance(problem, dict):
        text = " ".join(str(problem[k]) for k in ("variable", "problem") if problem.get(k))
        if problem.get("expected"):
            text += f" (expected {problem['expected']})"
        return text or str(problem)
    return str(problem)


def migration_incident(run: PhaseRun, supervisor: int | None, event: Event) -> Incident:
    """A ``migration`` incident for an upgrade that was applied, with its slowest step."""
    incident = Incident("migration", event.get("_ts"), supervisor=supervisor)
    steps = run.migration.get("steps") or []
    durations = [s["duration_ms"] for s in steps if isinstance(s.get("duration_ms"), (int, float))]
    first_ts = run.incident.start
    words = run.migration_words()
    summary = "migrations " + (words[-1] if words else "applied")
    if durations:
        summary += f" in {fmt.ms(sum(durations))}"
        slow = max(steps, key=lambda s: s.get("duration_ms") or 0)
        if len(steps) > 1:
            summary += f"; slowest {slow['revision']} {fmt.ms(slow['duration_ms'])}"
    incident.summary = summary
    incident.facts = {k: v for k, v in run.migration.items() if k != "lock_waited_s"}
    incident.touch(event)
    if first_ts is not None and durations:
        incident.start = max(first_ts, (event.get("_ts") or first_ts) - sum(durations) / 1000)
    return incident

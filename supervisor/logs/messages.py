"""The ``message`` of a line: a short sentence for people, beside the stable ``event`` for machines.

Log platforms (Datadog, Elastic, Google Cloud Logging) show ``message`` first, so
every line carries one.  A table keyed by event name gives the sentence; an event
not in it gets a generic one built from its name and a few of its scalar fields.
Templates name only fields that never hold a secret, and the line is redacted
after the message is added anyway.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

# Fields never put into a generic message: long (stacks, tails) or already said elsewhere.
_SKIPPED = {"timestamp", "level", "event", "source", "pid", "message", "hint", "traceback", "stacks",
            "stderr_tail", "problems", "holders", "diagnosis", "also", "database", "exception",
            "unknown_variables", "logger"}
_GENERIC_FIELDS = 3

TEMPLATES: dict[str, str] = {
    "phase.started": "Phase {phase} started",
    "phase.completed": "Phase {phase} completed in {duration_ms} ms",
    "phase.failed": "Phase {phase} failed (exit {exit_code}): {error}",
    "phase.interrupted": "Phase {phase} interrupted by a stop request",
    "check.passed": "Pre-flight check passed",
    "db.wait.retry": "Database not reachable yet (attempt {attempt}); retrying in {delay_s} s",
    "migrate.up_to_date": "Database schema is up to date",
    "migrate.lock_waiting": "Waiting for another replica's migration (lock holder pid {holder_pid})",
    "migrate.applied": "Migrated from {from_revision} to {to_revision}",
    "migrate.database_ahead": "Database is at a revision this code does not know",
    "migrate.failed": "Migration command failed (exit {exit_code}): {error}",
    "child.prespawned": "Server process {pid} started importing the app",
    "child.standby": "Standby server process {pid} ready to stand in: the app imported in {imported_ms} ms",
    "child.standby_restarting": "The standby died before it was needed: a new one in {delay_s} s",
    "child.spawned": "Server process {pid} started (worker {worker})",
    "forkserver.started": "Fork server {pid} started importing the app",
    "forkserver.ready": "Fork server {pid} ready: the app imported in {imported_ms} ms",
    "forkserver.forked": "Fork server forked server process {pid} (worker {worker}) in {fork_ms} ms",
    "forkserver.unsafe": "Fork server off for this run: {reason}",
    "forkserver.exited": "Fork server {pid} exited",
    "forkserver.fork_failed": "Fork server {pid} failed to fork (worker {worker}); spawning instead",
    "child.ready": "Server process {pid} ready in {startup_ms} ms",
    "child.exited": "Server process {pid} exited",
    "child.restarting": "Restarting worker {worker} in {delay_s} s (restart {restarts})",
    "child.crash_loop": "Server processes keep dying before becoming ready; giving up",
    "child.unresponsive": "Server process {pid} stalled for {stalled_s} s; killing it",
    "child.recycling": "Replacing server process {pid} (worker {worker}): {reason}",
    "child.memory_leak_suspected": "Server processes keep outgrowing MAX_WORKER_MEMORY_MB "
                                   "({recycles} recycles): a memory leak?",
    "supervisor.ready": "Serving on {listen} with {workers} worker(s)",
    "supervisor.watching": "Watching the code for changes (RELOAD)",
    "supervisor.reloading": "Reloading: migrating, then replacing the server processes",
    "supervisor.reloaded": "Reload complete: every server process runs the new code",
    "supervisor.reload_failed": "Reload failed ({reason}); the previous processes keep serving",
    "supervisor.reload_ignored": "Reload ignored: a reload or stop is already under way",
    "supervisor.stopping": "Stopping",
    "supervisor.stopped": "Stopped with exit code {exit_code}",
    "supervisor.crashed": "The supervisor crashed: this is a bug",
    "supervisor.socket_activated": "Serving on the socket systemd handed over ({listen})",
    "supervisor.cgroup": "Each server process gets a cgroup of its own under {path}",
    "supervisor.cgroup_unavailable": "No cgroup of our own ({reason}): process tags find daemonised helpers",
    "supervisor.metrics_serving": "Prometheus metrics on http://{listen}/metrics",
    "config.unknown_variable": "Unknown variable {variable}",
    "log.dropped": "{dropped} log line(s) dropped: the log reader is too slow",
    "http.access": "{method} {path} {status}",
    "db.pool.saturated": "Connection pool saturated: requests are waiting for a connection",
    "db.pool.exhausted": "Connection pool exhausted: a request timed out waiting for a connection",
    "db.pool.leak_suspected": "A pooled connection has been checked out suspiciously long",
}


class _Strict(string.Formatter):
    """Formats only from the event's own fields; a missing one raises KeyError."""

    def get_value(self, key: int | str, args: Any, kwargs: Mapping[str, Any]) -> Any:
        return kwargs[str(key)]


_FORMATTER = _Strict()


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def generic(event: str, fields: Mapping[str, Any]) -> str:
    """'Child exited: pid=12, exit_code=1' from the name and the first few scalar fields."""
    words = event.replace("_", " ").split(".")
    head = " ".join(words).capitalize()
    shown = [f"{k}={_short(v)}" for k, v in fields.items()
             if k not in _SKIPPED and isinstance(v, (str, int, float, bool)) and v != ""][:_GENERIC_FIELDS]
    return f"{head}: {', '.join(shown)}" if shown else head


def message_for(fields: Mapping[str, Any]) -> str:
    """The sentence for an event's fields: its template when every field it names is there."""
    event = str(fields.get("event", "log"))
    template = TEMPLATES.get(event)
    if template is not None:
        try:
            return _FORMATTER.format(template, **{k: _short(v) for k, v in fields.items()})
        except (KeyError, IndexError, ValueError):
            pass
    return generic(event, fields)


def has_message(fields: Mapping[str, Any]) -> bool:
    """Whether ``fields`` carry a meaningful ``message`` (a string, not blank, not the event name)."""
    current = fields.get("message")
    return isinstance(current, str) and bool(current.strip()) and current != fields.get("event")


def ensure_message(fields: dict[str, Any]) -> dict[str, Any]:
    """Give ``fields`` a ``message`` unless it has a meaningful one (not empty, not the event name)."""
    if not has_message(fields):
        fields["message"] = message_for(fields)
    return fields

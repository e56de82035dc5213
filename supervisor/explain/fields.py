"""The types explain expects of the fields it reads; a field of another type is dropped, not trusted.

Logs are input from outside: a line from another program, a hand-edited file or
a future version may put a dict where a pid should be.  Checking each known field
once here lets the rest of the package read fields without guarding every access.
The check is by exact type (one set lookup per field, fast enough for a million
lines), then by content for the few lists and floats that need it.
"""

from __future__ import annotations

import math
from typing import Any

_INT = frozenset({int})
_NUMBER = frozenset({int, float})
_STR = frozenset({str})
_BOOL = frozenset({bool})
_LIST = frozenset({list})
_STR_OR_LIST = frozenset({str, list})
_CONTAINER = frozenset({dict, list})

_TYPES: dict[str, frozenset[type]] = {}
for _names, _types in (
    (("pid", "exit_code", "attempt", "restarts", "deaths", "limit", "last_pid", "previous_pid", "worker",
      "checked_out", "waiting", "pool_size", "max_overflow", "status", "holder_pid", "workers", "needed",
      "available", "dropped", "max_connections", "reserved", "in_use", "opened", "wanted"), _INT),
    (("duration_ms", "startup_ms", "delay_s", "stalled_s", "uptime_s", "heartbeat_timeout_s", "timeout_s",
      "remaining_s", "waited_s", "held_s", "age_s", "threshold_s", "drain_delay_s", "graceful_timeout_s"), _NUMBER),
    (("event", "source", "level", "phase", "error", "hint", "signal", "revision", "from_revision",
      "to_revision", "diagnosis", "message", "traceback", "exception", "path", "method", "reason", "variable",
      "suggestion", "sqlstate", "last_good_revision", "during", "code_head", "timestamp", "logger"), _STR),
    (("was_ready", "graceful", "fits", "locked"), _BOOL),
    (("stderr_tail", "stacks", "revisions", "also", "heads", "pids", "problems", "blockers",
      "unknown_variables"), _LIST),
    (("database_revision",), _STR_OR_LIST),
    (("holders", "database"), _CONTAINER),
):
    for _name in _names:
        _TYPES[_name] = _types

# What the items of the list fields must be.
_ITEMS: dict[str, type] = {"stderr_tail": str, "stacks": str, "revisions": str, "also": str, "heads": str,
                           "database_revision": str, "pids": int, "problems": dict, "blockers": dict,
                           "unknown_variables": dict}
_MAX_INT = 2**62


def _content_ok(key: str, value: Any) -> bool:
    kind = type(value)
    if kind is float:
        return bool(math.isfinite(value) and abs(value) < 1e15)
    if kind is int:
        return bool(-_MAX_INT < value < _MAX_INT)
    if kind is list and key in _ITEMS:
        item = _ITEMS[key]
        return all(type(v) is item for v in value)
    return True


def sanitise(event: dict[str, Any]) -> dict[str, Any]:
    """Drop the known fields whose value has the wrong type (``None`` stays: it means 'not known')."""
    types = _TYPES
    bad = [k for k, v in event.items() if v is not None and k in types and (
        type(v) not in types[k] or (type(v) is not str and not _content_ok(k, v)))]
    for key in bad:
        del event[key]
    return event

"""Writing the ``db.pool.*`` events: stdlib records whose ``event`` and fields become JSON keys.

Under the supervisor each record becomes one JSON line (``supervisor/serverlog.py``
takes ``record.event`` as the event name and every other ``extra`` key as a
field).  Run without it, the message still reads on its own: the event name
and a one-line summary.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("jarlpm.pool")

EXHAUSTED = "db.pool.exhausted"
SATURATED = "db.pool.saturated"
LEAK_SUSPECTED = "db.pool.leak_suspected"
THREAD_BUDGET = "db.pool.thread_budget"
INSTRUMENTED = "db.pool.instrumented"


def emit(level: int, event: str, fields: dict[str, Any], summary: str = "") -> None:
    """Log ``event`` with ``fields``; the message is the event name and ``summary``."""
    log.log(level, f"{event}: {summary}" if summary else event, extra={"event": event, **fields})

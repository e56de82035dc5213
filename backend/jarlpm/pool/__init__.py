"""Connection-pool instrumentation: who holds the connections, and a diagnosis when none is left.

The app uses four entry points: ``instrument`` (on the engine, at start),
``RequestContextMiddleware`` (which request takes a connection), the two
``report_*`` calls (from the 503 handlers) and ``check_thread_budget``.
"""

from __future__ import annotations

import logging

from sqlalchemy.engine import Engine

from jarlpm.pool import events
from jarlpm.pool.budget import ThreadBudget
from jarlpm.pool.context import RequestContextMiddleware, current_request
from jarlpm.pool.diagnosis import is_capacity_error
from jarlpm.pool.instrumentation import instrument, monitor_for
from jarlpm.pool.model import Trigger

__all__ = ["RequestContextMiddleware", "check_thread_budget", "instrument", "monitor_for",
           "report_connect_refused", "report_pool_timeout"]


def _trigger(kind: str, error: str) -> Trigger:
    request = current_request()
    if request is None:
        return Trigger(kind, error)
    return Trigger(kind, error, method=request.method, route=request.route)


def report_pool_timeout(engine: Engine | None, error: str) -> bool:
    """A request gave up waiting for a connection: have the monitor diagnose it (rate-limited)."""
    monitor = monitor_for(engine)
    return monitor is not None and monitor.request_report(_trigger("timeout", error))


def report_connect_refused(engine: Engine | None, error: str) -> bool:
    """PostgreSQL refused the pool a new connection; reported only when it was for want of slots."""
    monitor = monitor_for(engine)
    if monitor is None or not is_capacity_error(error):
        return False
    return monitor.request_report(_trigger("refused", error))


def check_thread_budget(engine: Engine | None, threads: int) -> bool:
    """Say (``db.pool.thread_budget``) when more sync endpoints can run at once than the pool serves.

    Logged at info, not warning: with the defaults (40 threads, 5 + 10
    connections) it holds for every start, and a warning on every clean start
    teaches people to ignore warnings.  The numbers come back, with the
    consequence, in ``db.pool.saturated`` when a burst actually queues.
    """
    monitor = monitor_for(engine)
    if monitor is None:
        return False
    monitor.threads = threads
    budget = ThreadBudget(threads, monitor.pool_size, monitor.max_overflow)
    if not budget.exceeds:
        return False
    events.emit(logging.INFO, events.THREAD_BUDGET, {
        "threads": threads, "pool_size": monitor.pool_size, "max_overflow": monitor.max_overflow,
        "capacity": budget.capacity, "hint": budget.hint(monitor.timeout_s),
    }, f"{threads} threads, {budget.capacity} connections")
    return True

"""Hooking the tracker into one engine's pool: SQLAlchemy pool events plus a wrapper on the queue's wait.

Per checkout the cost is one dict insert and, at checkin, one delete (plus a
stack capture when DB_LEAK_THRESHOLD is on).  Waiting has no pool event, so
the pool's queue ``get`` is wrapped: only a blocking ``get`` (the pool at its
limit) is tracked, and every other checkout passes straight through.

Only pool events are listened to, never engine events: a single listener on
the engine (even ``engine_disposed``) sets its ``_has_events``, and from then on
every connection dispatches events on each execute, begin, commit and rollback.
That cost GET /api/epics about 140 Python calls (3 % of all it makes), ten
times what the tracking itself adds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import psycopg2
from sqlalchemy import event, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.pool import ConnectionPoolEntry, Pool, QueuePool
from sqlalchemy.util import queue as sa_queue

from jarlpm.pool import dbview, events
from jarlpm.pool.metrics import PoolMetrics, pool_metrics
from jarlpm.pool.monitor import PoolMonitor
from jarlpm.pool.options import PoolOptions
from jarlpm.pool.tracker import PoolTracker

if TYPE_CHECKING:
    # Only a type here: jarlpm.settings imports jarlpm.pool.options (its variables are checked at start).
    from jarlpm.settings import Settings

log = logging.getLogger("jarlpm.pool")

_MONITORS: weakref.WeakKeyDictionary[Engine, PoolMonitor] = weakref.WeakKeyDictionary()
_WRAPPED = "_jarlpm_tracked"
BACKEND_PID = "jarlpm_backend_pid"


def monitor_for(engine: Engine | None) -> PoolMonitor | None:
    """The monitor instrumenting ``engine``, if any (None when instrumentation is off)."""
    return None if engine is None else _MONITORS.get(engine)


def instrument(engine: Engine, settings: Settings, env: Mapping[str, str] | None = None) -> PoolMonitor | None:
    """Track ``engine``'s pool and start its monitor; nothing when JARLPM_POOL_INSTRUMENTATION=0."""
    options = PoolOptions.from_env(os.environ if env is None else env)
    if not options.enabled or not isinstance(engine.pool, QueuePool) or engine in _MONITORS:
        return _MONITORS.get(engine)
    tracker = PoolTracker(capture_stacks=options.leak_threshold_s > 0)
    monitor = PoolMonitor(
        engine, tracker, options,
        pool_size=settings.pool_size, max_overflow=settings.max_overflow, timeout_s=settings.pool_timeout_s,
        connect_kwargs=dbview.connect_kwargs(_direct_params(engine, options)),
    )
    metrics = pool_metrics()
    _listen(engine, tracker, monitor, metrics)
    if not _track_waits(engine.pool, tracker, metrics):
        log.warning("db.pool.waits_untracked", extra={
            "event": "db.pool.waits_untracked",
            "hint": "this SQLAlchemy version's pool has no queue to watch: db.pool.saturated is off"})
    _MONITORS[engine] = monitor
    monitor.start()
    events.emit(logging.INFO, events.INSTRUMENTED, {
        "pool_size": settings.pool_size, "max_overflow": settings.max_overflow,
        "timeout_s": settings.pool_timeout_s, "leak_threshold_s": options.leak_threshold_s,
        "workers": options.workers,
    }, f"leak threshold {options.leak_threshold_s:g}s" if options.leak_threshold_s else "leak threshold off")
    return monitor


def _direct_params(engine: Engine, options: PoolOptions) -> dict[str, Any]:
    """psycopg2 connect arguments of DATABASE_DIRECT_URL when set, else of the engine's own URL."""
    url = make_url(options.direct_url) if options.direct_url else engine.url
    _, params = engine.dialect.create_connect_args(url)
    return dict(params)


def _listen(engine: Engine, tracker: PoolTracker, monitor: PoolMonitor, metrics: PoolMetrics | None) -> None:
    pool = engine.pool
    engine_ref = weakref.ref(engine)  # the pool's listeners must not keep the engine alive

    def on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        info = getattr(dbapi_connection, "info", None)
        record.info[BACKEND_PID] = getattr(info, "backend_pid", None)
        # dispose() replaces the pool: its events carry over, its queue does not.  A new
        # pool connects before it can ever block (it waits only once its connections are
        # all out), so its first connection is soon enough to watch its queue.
        current = engine_ref()
        if current is not None:
            _track_waits(current.pool, tracker, metrics)

    def on_first_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # The limits are read once now, while a connection is at hand: when PostgreSQL
        # later runs out of slots, the report can still say how many there are.
        try:
            with dbapi_connection.cursor() as cursor:
                monitor.db_settings, _ = dbview.read_settings(cursor)
        except psycopg2.Error as exc:
            log.info("db.pool.settings_unread", extra={"event": "db.pool.settings_unread", "error": str(exc)})
        with contextlib.suppress(psycopg2.Error):
            dbapi_connection.rollback()

    def on_checkout(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        tracker.checked_out(record, record.info.get(BACKEND_PID))

    def on_checkin(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        tracker.checked_in(record)

    if metrics is not None:
        checked_out = metrics.checked_out

        def on_checkout(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
            tracker.checked_out(record, record.info.get(BACKEND_PID))
            checked_out.inc()

        def on_checkin(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
            # A checkin without a checkout (a connection invalidated before it was handed
            # out) would drive the gauge below zero: only what the tracker holds counts.
            if record in tracker.holders:
                checked_out.dec()
            tracker.checked_in(record)

    event.listen(pool, "connect", on_connect)
    event.listen(pool, "first_connect", on_first_connect)
    event.listen(pool, "checkout", on_checkout)
    event.listen(pool, "checkin", on_checkin)


def _track_waits(pool: Pool, tracker: PoolTracker, metrics: PoolMetrics | None = None) -> bool:
    """Wrap the pool queue's ``get`` so that blocking gets (the pool at its limit) count as waiting.

    Idempotent (a wrapped queue is left alone); False when the pool has no queue to wrap.
    """
    queue = getattr(pool, "_pool", None)
    get: Callable[..., Any] | None = getattr(queue, "get", None)
    if queue is None or get is None:
        return False
    if getattr(get, _WRAPPED, False):
        return True

    def tracked_get(block: bool = True, timeout: float | None = None) -> Any:
        if not block:
            return get(block, timeout)
        token = tracker.wait_started()
        try:
            return get(block, timeout)
        finally:
            tracker.wait_ended(token)

    def measured_get(block: bool = True, timeout: float | None = None) -> Any:
        assert metrics is not None
        if not block:
            # Room to grow: served at once from the queue, or by a new connection (Empty).
            metrics.wait_seconds.observe(0.0)
            return get(block, timeout)
        metrics.waiting.inc()
        started = time.monotonic()
        try:
            return tracked_get(block, timeout)
        except sa_queue.Empty:
            metrics.timeouts.inc()  # SQLAlchemy turns it into its pool TimeoutError
            raise
        finally:
            metrics.waiting.dec()
            metrics.wait_seconds.observe(time.monotonic() - started)

    if metrics is not None:
        setattr(measured_get, _WRAPPED, True)
        queue.get = measured_get
        return True

    setattr(tracked_get, _WRAPPED, True)
    queue.get = tracked_get
    return True

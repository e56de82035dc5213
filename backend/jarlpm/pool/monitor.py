"""The per-process monitor thread: looks for leaks and saturation, and makes exhaustion reports.

Nothing here runs on the request path except ``request_report``, which only
takes a snapshot of the tracker (microseconds) and wakes the thread.  The
thread holds the engine weakly and ends when the engine is gone.

The thread sleeps until there is something to look at, rather than ticking:
a wait for a connection wakes it (then it looks every ``TICK_S`` until the
queue is empty again), a leak check is due when the oldest connection out
reaches DB_LEAK_THRESHOLD, and a report or the engine's end wakes it.  On a
healthy pool with the leak check off it never wakes, so it never takes the
GIL from the requests.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from jarlpm.pool import dbview, diagnosis, events, report
from jarlpm.pool.budget import connection_budget
from jarlpm.pool.model import DbSettings, DbView, PoolNumbers, TrackerSnapshot, Trigger
from jarlpm.pool.options import PoolOptions
from jarlpm.pool.ratelimit import RateLimiter, SaturationWatch, saturation_wait
from jarlpm.pool.tracker import PoolTracker, view_holder

# How often a pool with requests waiting is looked at (for db.pool.saturated).
TICK_S = 0.25
# Sleeps are never shorter (a leak check due "now" must not spin) and wake a bit late
# rather than a bit early (a connection reported as held for 0.999 s of a 1 s threshold).
MIN_SLEEP_S = 0.01
# The exhaustion event must be out within 2 s of the 503; the database gets most of that.
DB_VIEW_DEADLINE_S = 1.5


@dataclass(frozen=True)
class PendingReport:
    """An exhaustion captured at the moment it happened, waiting for the database's view."""

    trigger: Trigger
    snapshot: TrackerSnapshot
    pool: PoolNumbers
    suppressed: int


class PoolMonitor:
    """Watches one engine's pool; one per server process."""

    def __init__(self, engine: Engine, tracker: PoolTracker, options: PoolOptions,
                 pool_size: int, max_overflow: int, timeout_s: float,
                 connect_kwargs: dict[str, Any]) -> None:
        self.tracker = tracker
        self.options = options
        self.pool_size = pool_size
        self.max_overflow = max_overflow
        self.timeout_s = timeout_s
        self.connect_kwargs = connect_kwargs
        self.db_settings: DbSettings | None = None
        self.threads: int | None = None  # the request thread pool's size, once the app has started
        self.limiter = RateLimiter(options.report_interval_s)
        self.saturation = SaturationWatch(saturation_wait(timeout_s), options.report_interval_s)
        self._pending: deque[PendingReport] = deque()
        self._wake = wake = threading.Event()
        # The engine's end wakes the thread, which then ends; it holds the engine weakly.
        self._engine = weakref.ref(engine, lambda _: wake.set())
        self._queueing = False  # requests were waiting when last looked: look again in TICK_S
        tracker.on_wait = self._wake.set
        self._thread = threading.Thread(target=self._run, name="pool-monitor", daemon=True)

    @property
    def capacity(self) -> int:
        return self.pool_size + self.max_overflow

    def start(self) -> None:
        self._thread.start()

    # -- called from a request's error handler -----------------------------------------------
    def request_report(self, trigger: Trigger) -> bool:
        """Capture the pool now and have the thread report it, unless rate-limited (then counted)."""
        suppressed = self.limiter.hit(time.monotonic())
        if suppressed is None:
            return False
        snapshot = self.tracker.snapshot(reset_peak=True)
        self._pending.append(PendingReport(trigger, snapshot, self._numbers(snapshot), suppressed))
        self._wake.set()
        return True

    def _numbers(self, snapshot: TrackerSnapshot) -> PoolNumbers:
        # Counted from the tracker, not QueuePool.checkedout(): the pool counts a new
        # connection as checked out while it is still being opened (or refused).
        return PoolNumbers(
            pool_size=self.pool_size, max_overflow=self.max_overflow, timeout_s=self.timeout_s,
            checked_out=len(snapshot.holders), waiting=len(snapshot.waiters), peak_demand=snapshot.peak_demand,
            workers=self.options.workers,
        )

    # -- the thread --------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self._sleep_s(time.monotonic()))
            self._wake.clear()
            if self._engine() is None:
                return
            while self._pending:
                self._guarded(self._report, self._pending.popleft())
            if self.options.leak_threshold_s > 0:
                self._guarded(self._check_leaks)
            self._guarded(self._check_saturation)

    def _sleep_s(self, now: float) -> float | None:
        """How long nothing can need looking at; None: until woken (no leak check, nobody waiting)."""
        sleep: float | None = TICK_S if self._queueing else None
        if self.options.leak_threshold_s > 0:
            due = self.tracker.next_overdue(self.options.leak_threshold_s) - now + MIN_SLEEP_S
            sleep = due if sleep is None else min(sleep, due)
        return None if sleep is None else max(sleep, MIN_SLEEP_S)

    @staticmethod
    def _guarded(step: Callable[..., None], *args: Any) -> None:
        # The monitor's own failure must never take the server down nor stop the
        # monitoring; it is logged with its traceback and the loop goes on.
        try:
            step(*args)
        except Exception:  # noqa: BLE001 - the thread's top-level guard
            logging.getLogger("jarlpm.pool").exception("db.pool.monitor_failed",
                                                       extra={"event": "db.pool.monitor_failed"})

    def _check_leaks(self) -> None:
        for holder in self.tracker.overdue(self.options.leak_threshold_s):
            view = view_holder(holder, time.monotonic())
            fields = report.leak_fields(view, self.options.leak_threshold_s,
                                        self._numbers(self.tracker.snapshot()))
            events.emit(logging.WARNING, events.LEAK_SUSPECTED, fields,
                        f"{view.label} at {view.where or '?'}, held {view.held_s:.1f}s")

    def _check_saturation(self) -> None:
        checked_out, waiting, longest = self.tracker.counts()
        self._queueing = waiting > 0
        if self.saturation.update(time.monotonic(), checked_out, self.capacity, waiting, longest):
            snapshot = self.tracker.snapshot()
            numbers = self._numbers(snapshot)
            fields = report.saturated_fields(numbers, snapshot, longest, self.threads)
            events.emit(logging.WARNING, events.SATURATED, fields,
                        f"{numbers.checked_out}/{self.capacity} checked out, {numbers.waiting} waiting")

    def _report(self, pending: PendingReport) -> None:
        db = dbview.read_view(self.connect_kwargs, DB_VIEW_DEADLINE_S)
        if db.settings is not None:
            self.db_settings = db.settings
        else:
            db = DbView(settings=self.db_settings, error=db.error)
        budget = connection_budget(self.options.workers, self.capacity, db.settings, db.in_use, db.sessions)
        facts = diagnosis.Facts(pool=pending.pool, holders=pending.snapshot.holders, db=db, budget=budget,
                                trigger=pending.trigger, leak_threshold_s=self.options.leak_threshold_s)
        found = diagnosis.diagnose(facts)
        fields = report.exhausted_fields(facts, found, pending.snapshot.waiters, pending.suppressed,
                                         self.options.report_interval_s)
        pool = pending.pool
        events.emit(logging.ERROR, events.EXHAUSTED, fields,
                    f"{found.diagnosis} ({pool.checked_out}/{self.capacity} checked out, {pool.waiting} waiting)")

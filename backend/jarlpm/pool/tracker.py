"""Who holds the pool's connections and who waits for one: a dict insert and delete per checkout.

The pool events call ``checked_out``/``checked_in`` on the request path, so
they do nothing but stamp the time and the current request; everything else
(grouping, stacks, the database's view) happens when a report is made, in the
monitor thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from jarlpm.pool import stacks
from jarlpm.pool.context import CURRENT_REQUEST, RequestContext, current_request
from jarlpm.pool.model import HolderView, TrackerSnapshot, WaiterView


class Holder:
    """One checked-out connection: since when, for which request, taken where (when captured)."""

    __slots__ = ("taken_at", "context", "stack", "backend_pid", "reported")

    def __init__(self, context: RequestContext | None, stack: stacks.RawStack | None,
                 backend_pid: int | None) -> None:
        self.taken_at = time.monotonic()
        self.context = context
        self.stack = stack
        self.backend_pid = backend_pid
        self.reported = False


class Waiter:
    """One request waiting in the pool's queue for a connection."""

    __slots__ = ("since", "context")

    def __init__(self, context: RequestContext | None) -> None:
        self.since = time.monotonic()
        self.context = context


def view_holder(holder: Holder, now: float) -> HolderView:
    context = holder.context
    finished = None if context is None or context.finished_at is None else now - context.finished_at
    raw = holder.stack or ()
    return HolderView(
        method=context.method if context else None,
        route=context.route if context else None,
        request_id=context.request_id if context else None,
        held_s=now - holder.taken_at,
        request_finished_s=finished,
        backend_pid=holder.backend_pid,
        where=stacks.where(raw) if raw else None,
        stack=tuple(stacks.format_stack(raw)) if raw else (),
    )


class PoolTracker:
    """Holders keyed by connection record, waiters keyed by a token.

    ``capture_stacks`` is on when DB_LEAK_THRESHOLD is: the stack is then taken
    at every checkout (a few microseconds), since a leak is only known later.

    A checkout and a checkin are one dict store and one dict pop, which are
    atomic (the GIL, or the dict's own lock in free-threaded builds), so they
    take no lock; readers copy the dict in one call (``list(d.values())``) and
    never iterate it live.  The lock guards the waiters, whose token counter and
    peak demand need several steps; waits only happen when the pool is at its
    limit.  ``on_wait`` (set by the monitor) is called when a wait starts, so the
    monitor needs no timer to notice saturation.
    """

    def __init__(self, capture_stacks: bool = False) -> None:
        self.capture_stacks = capture_stacks
        self.holders: dict[object, Holder] = {}
        self.waiters: dict[int, Waiter] = {}
        self.peak_demand = 0
        self.on_wait: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._tokens = 0

    # -- the request path -----------------------------------------------------------------
    def checked_out(self, record: object, backend_pid: int | None) -> None:
        stack = stacks.capture(skip=2) if self.capture_stacks else None
        self.holders[record] = Holder(CURRENT_REQUEST.get(), stack, backend_pid)

    def checked_in(self, record: object) -> None:
        self.holders.pop(record, None)

    def wait_started(self) -> int:
        waiter = Waiter(current_request())
        with self._lock:
            self._tokens += 1
            token = self._tokens
            self.waiters[token] = waiter
            demand = len(self.holders) + len(self.waiters)
            if demand > self.peak_demand:
                self.peak_demand = demand
        if self.on_wait is not None:
            self.on_wait()
        return token

    def wait_ended(self, token: int) -> None:
        with self._lock:
            self.waiters.pop(token, None)

    # -- the monitor thread -----------------------------------------------------------------
    def counts(self) -> tuple[int, int, float]:
        """(checked out, waiting, longest wait in seconds) without building views."""
        now = time.monotonic()
        with self._lock:
            waits = [now - waiter.since for waiter in self.waiters.values()]
        return len(self.holders), len(waits), max(waits, default=0.0)

    def overdue(self, threshold_s: float) -> list[Holder]:
        """Holders out longer than ``threshold_s`` not yet reported; marks them reported."""
        deadline = time.monotonic() - threshold_s
        found = [h for h in list(self.holders.values()) if not h.reported and h.taken_at <= deadline]
        for holder in found:
            holder.reported = True
        return found

    def next_overdue(self, threshold_s: float) -> float:
        """The monotonic time at which the next holder not yet reported turns overdue.

        With none out, a connection taken from now on is overdue ``threshold_s``
        from now at the earliest, so that is when to look again.
        """
        pending = [h.taken_at for h in list(self.holders.values()) if not h.reported]
        return min(pending, default=time.monotonic()) + threshold_s

    def snapshot(self, reset_peak: bool = False) -> TrackerSnapshot:
        now = time.monotonic()
        with self._lock:
            holders = list(self.holders.values())
            waiters = list(self.waiters.values())
            peak = max(self.peak_demand, len(holders) + len(waiters))
            if reset_peak:
                self.peak_demand = len(holders) + len(waiters)
        return TrackerSnapshot(
            holders=tuple(view_holder(h, now) for h in holders),
            waiters=tuple(
                WaiterView(w.context.method if w.context else None, w.context.route if w.context else None,
                           now - w.since)
                for w in waiters
            ),
            peak_demand=peak,
        )

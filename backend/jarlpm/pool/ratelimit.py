"""When to speak: one full exhaustion report per interval, and one saturation warning per episode.

Pure state machines fed with ``time.monotonic()`` readings, so that a burst of
a thousand 503s makes one event with a count, not a thousand events and a
thousand queries against a database that is already struggling.
"""

from __future__ import annotations

import threading


class RateLimiter:
    """Lets one report through per ``interval_s``; counts the ones it holds back."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.last_full: float | None = None
        self.suppressed = 0
        self._lock = threading.Lock()

    def hit(self, now: float) -> int | None:
        """None when this report is suppressed; else how many were suppressed since the last full one."""
        with self._lock:
            if self.last_full is None or now - self.last_full >= self.interval_s:
                count, self.suppressed = self.suppressed, 0
                self.last_full = now
                return count
            self.suppressed += 1
            return None


class SaturationWatch:
    """Warns once when requests start queueing at a full pool, again only after the queue emptied.

    Saturated means: every connection is checked out and a request has waited
    ``wait_s`` already, so trouble is coming before any ``DB_POOL_TIMEOUT``
    fires.  A new episode is reported no sooner than ``interval_s`` after the last.
    """

    def __init__(self, wait_s: float, interval_s: float) -> None:
        self.wait_s = wait_s
        self.interval_s = interval_s
        self.in_episode = False
        self.last_warned: float | None = None

    def update(self, now: float, checked_out: int, capacity: int, waiting: int, longest_wait_s: float) -> bool:
        """True when a warning should be logged now."""
        if waiting == 0:
            self.in_episode = False
            return False
        if self.in_episode or checked_out < capacity or longest_wait_s < self.wait_s:
            return False
        self.in_episode = True
        if self.last_warned is not None and now - self.last_warned < self.interval_s:
            return False
        self.last_warned = now
        return True


def saturation_wait(timeout_s: float) -> float:
    """A second of waiting, or half the pool timeout when that is shorter, so the warning comes first."""
    return min(1.0, timeout_s / 2)

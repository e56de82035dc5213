"""Pure recycling rules: when a healthy server process is due for replacement, and when that smells of a leak.

``MAX_REQUESTS`` (plus a random 0..``MAX_REQUESTS_JITTER`` per process, so processes
started together do not all go at once) and ``MAX_WORKER_MEMORY_MB`` (resident
memory above the limit for ``MEMORY_CHECKS`` checks in a row: a single spike, such
as one large response, is not a reason).  A process recycled for memory again and
again is probably leaking: ``LeakWatch`` says when to warn.  No process, no clock
of its own: the ``recycler`` carries these out (tests/unit/test_recycling_rules.py).
"""

from __future__ import annotations

import random
from collections import deque

MEMORY_CHECK_INTERVAL = 1.0  # seconds between reads of each process's VmRSS
MEMORY_CHECKS = 3  # consecutive reads above the limit before a process is recycled
LEAK_RECYCLES = 3  # memory recycles of the service ...
LEAK_WINDOW = 600.0  # ... within this many seconds: a leak is suspected


def request_limit(max_requests: int, jitter: int, rng: random.Random | None = None) -> int | None:
    """This process's own limit: ``max_requests`` plus 0..``jitter``; None when recycling is off."""
    if max_requests <= 0:
        return None
    return max_requests + ((rng or random).randint(0, jitter) if jitter > 0 else 0)


def due_for_requests(requests: int, limit: int | None) -> bool:
    return limit is not None and requests >= limit


def memory_streak(streak: int, rss_mb: float | None, limit_mb: int) -> int:
    """The number of consecutive reads above ``limit_mb``, after this one (0 resets it)."""
    if limit_mb <= 0 or rss_mb is None or rss_mb <= limit_mb:
        return 0
    return streak + 1


def due_for_memory(streak: int) -> bool:
    return streak >= MEMORY_CHECKS


class LeakWatch:
    """Remembers when processes were recycled for memory; ``record`` says whether a leak is suspected."""

    def __init__(self, count: int = LEAK_RECYCLES, window: float = LEAK_WINDOW) -> None:
        self.count = count
        self.window = window
        self.times: deque[float] = deque()

    def record(self, now: float) -> int | None:
        """Note a memory recycle at ``now``; the recycles within the window when they reach ``count``."""
        self.times.append(now)
        while self.times and now - self.times[0] > self.window:
            self.times.popleft()
        return len(self.times) if len(self.times) >= self.count else None

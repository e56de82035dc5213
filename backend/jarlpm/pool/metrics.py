"""The pool's Prometheus figures, written to the supervisor's multiprocess directory.

On only under the supervisor with ``METRICS_PORT`` set (it sets
``PROMETHEUS_MULTIPROC_DIR`` for server processes): run standalone, the backend
records nothing and pays nothing.  The gauges are ``livesum`` (summed over the
processes alive now; the supervisor marks dead ones), the counter and the
histogram keep what exited processes recorded.  The cost is a few shared-memory
increments per checkout (the gauge, the histogram) and one per checkin.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# Waits for a connection: from "a moment" to DB_POOL_TIMEOUT's default 30 s.
BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class PoolMetrics:
    """jarlpm_db_pool_* for one process: checked out, waiting, timeouts, checkout waits."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.checked_out: Any = Gauge("jarlpm_db_pool_checked_out", "Pooled connections checked out now.",
                                      multiprocess_mode="livesum")
        self.waiting: Any = Gauge("jarlpm_db_pool_waiting", "Requests waiting for a pooled connection now.",
                                  multiprocess_mode="livesum")
        self.timeouts: Any = Counter("jarlpm_db_pool_timeouts",
                                     "Checkouts that gave up after DB_POOL_TIMEOUT (the request got a 503).")
        self.wait_seconds: Any = Histogram(
            "jarlpm_db_pool_checkout_wait_seconds",
            "Time each checkout waited for a pooled connection (connecting a new one not included).",
            buckets=BUCKETS)


_METRICS: list[PoolMetrics] = []


def pool_metrics(env: Mapping[str, str] | None = None) -> PoolMetrics | None:
    """This process's pool metrics (created once), or None when metrics are off."""
    if not (os.environ if env is None else env).get(METRICS_DIR):
        return None
    if not _METRICS:
        _METRICS.append(PoolMetrics())
    return _METRICS[0]

"""What the pool instrumentation reads from the environment, once, when the engine is created.

The variables are read by the contract's rules (``supervisor.contract.envread``), the
supervisor's own: a malformed value is refused with the supervisor's words, never
replaced by a default behind the operator's back.  ``jarlpm.settings`` checks these
together with its own when the app starts, so every problem is reported at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from supervisor.contract import dburl, envread

# Exhaustion reports: one full event per interval per process; the rest are counted.
REPORT_INTERVAL_S = 60.0

# DB_LEAK_THRESHOLD's default depends on JARLPM_ENV (off in production, 30 s in development).
VARIABLES = ("JARLPM_ENV", "DB_LEAK_THRESHOLD", "WORKERS", "DATABASE_DIRECT_URL")

_OFF = {"0", "false", "no", "off"}


def instrumentation_enabled(env: Mapping[str, str]) -> bool:
    """``JARLPM_POOL_INSTRUMENTATION``: on unless set to 0/false/no/off (the benchmark's switch)."""
    return env.get("JARLPM_POOL_INSTRUMENTATION", "").strip().lower() not in _OFF


@dataclass(frozen=True)
class PoolOptions:
    """The instrumentation's own settings; the pool's sizes come from the engine itself."""

    enabled: bool = True
    leak_threshold_s: float = 0.0
    workers: int = 1
    report_interval_s: float = REPORT_INTERVAL_S
    # The URL the diagnosis connects with, outside the pool (DATABASE_DIRECT_URL when set,
    # because behind PgBouncer pg_stat_activity shows PgBouncer's sessions, not ours).
    direct_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PoolOptions:
        """Read the options; raises ``ConfigError`` naming every malformed variable."""
        values = envread.read(env, VARIABLES)
        direct = values["DATABASE_DIRECT_URL"]
        return cls(
            enabled=instrumentation_enabled(env),
            leak_threshold_s=values["DB_LEAK_THRESHOLD"],
            workers=values["WORKERS"],
            direct_url=dburl.normalise(direct) if direct else None,
        )

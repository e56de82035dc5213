"""What the pool instrumentation reads from the environment, once, when the engine is created.

These variables are validated by the supervisor before a server process starts;
run without it (plain uvicorn), a malformed value falls back to its default
rather than stopping a server over a diagnostic setting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from jarlpm.dburl import normalise_database_url, read_env_url

# Exhaustion reports: one full event per interval per process; the rest are counted.
REPORT_INTERVAL_S = 60.0
# DB_LEAK_THRESHOLD's defaults (shared/DESIGN.md): off in production, 30 s in development.
DEVELOPMENT_LEAK_THRESHOLD_S = 30.0

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
        development = env.get("JARLPM_ENV", "").strip().lower() == "development"
        default_threshold = DEVELOPMENT_LEAK_THRESHOLD_S if development else 0.0
        try:
            direct = read_env_url("DATABASE_DIRECT_URL", env)
        except OSError:
            direct = None
        return cls(
            enabled=instrumentation_enabled(env),
            leak_threshold_s=_number(env, "DB_LEAK_THRESHOLD", default_threshold, float),
            workers=int(_number(env, "WORKERS", 1, int, minimum=1)),
            direct_url=normalise_database_url(direct) if direct else None,
        )


def _number(env: Mapping[str, str], name: str, default: float, kind: Callable[[str], float],
            minimum: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    try:
        value = kind(raw) if raw else default
    except ValueError:
        return default
    return value if value >= minimum else default

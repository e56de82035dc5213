"""Pool warm-up: latency of the first 50 concurrent GET /api/epics right after the server answers.

"supervisor" is the backend as shipped (its lifespan opens DB_POOL_SIZE
connections before serving); "no warm-up" is the same backend with the warm-up
replaced by a no-op (``bench/apps/nowarm.py``: the backend has no switch for
it).  Both run under the supervisor on a fresh database seeded with 20 epics;
the 50 requests are released together (a barrier) as soon as /api/health answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import stats
from bench.context import Context
from bench.harness import contender, fresh_database, launched
from bench.load import burst
from bench.model import NOT_AVAILABLE, Row, ScenarioResult
from bench.paths import BENCH_APPS, REPO

KEY = "warmup"
TITLE = "Pool warm-up"
CONCURRENT = 50


def warm_up_hook_present() -> bool:
    """The backend's lifespan still warms through ``jarlpm.db.warm_pool`` (what nowarm.py disables)."""
    source = Path(REPO / "backend" / "jarlpm" / "runtime.py")
    return source.exists() and "warm_pool(" in source.read_text()


def _one(ctx: Context, label: str) -> dict[str, Any]:
    build = (contender(ctx, "supervisor") if label == "supervisor"
             else contender(ctx, "supervisor", app="nowarm:app", app_dir=str(BENCH_APPS)))
    with fresh_database(ctx) as url, launched(ctx, build, url, f"warmup-{label}") as server:
        samples = burst(server.port, "/api/epics", CONCURRENT, timeout=60)
        latencies = [s.latency * 1000 for s in samples if s.outcome == "ok"]
        return {"contender": label, "ok": len(latencies), "failed": CONCURRENT - len(latencies),
                "p50_ms": stats.percentile(latencies, 50), "p95_ms": stats.percentile(latencies, 95),
                "max_ms": max(latencies, default=None)}


def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(KEY, TITLE)
    if not warm_up_hook_present():
        result.status = NOT_AVAILABLE
        result.reason = "backend/jarlpm/runtime.py no longer calls warm_pool(): nowarm.py cannot disable it"
        return result
    result.notes.append("the backend has no setting to disable the warm-up; 'no warm-up' replaces "
                        "jarlpm.db.warm_pool with a no-op (bench/apps/nowarm.py)")
    contenders = ["supervisor", "no warm-up"]
    for _, label in stats.interleaved(ctx.options.reps, contenders):
        run_ = _one(ctx, label)
        ctx.progress(f"warmup {label:12s} p50={run_['p50_ms']:.1f}ms p95={run_['p95_ms']:.1f}ms "
                     f"max={run_['max_ms']:.1f}ms failed={run_['failed']}")
        result.runs.append(run_)

    def values(key: str) -> dict[str, float | None]:
        return {label: stats.median([r[key] for r in result.runs if r["contender"] == label])
                for label in contenders}

    rows = []
    for key, name in (("p50_ms", "median"), ("p95_ms", "95th percentile"), ("max_ms", "slowest")):
        v = values(key)
        rows.append(Row(f"first {CONCURRENT} concurrent GET /api/epics, {name} latency", "ms", v,
                        ratio=stats.ratio(v["supervisor"], v["no warm-up"]), baseline="no warm-up"))
    result.rows = rows
    return result



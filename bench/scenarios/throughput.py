"""Throughput with access logs: ``GET /api/epics`` under wrk, the supervisor vs gunicorn.

Both serve the same app from the same venv (uvicorn with uvloop and httptools)
in one server process, on a fresh database with 20 epics, with access logs on:
the supervisor's server process logs every request as JSON to its pipe and the
supervisor's relay parses, stamps, redacts and writes each line (the point of
the figure: the relay must not cost throughput); gunicorn's worker writes its
access log to its own stdout (``--access-logfile -``).  Both outputs go to a file.
wrk loads one contender at a time with keep-alive connections for a fixed time,
after a short warm-up; contenders alternate ABBA over the repetitions.
"""

from __future__ import annotations

from typing import Any

from bench import proctools, stats, wrk
from bench.contenders import GUNICORN, SUPERVISOR, available
from bench.context import Context
from bench.harness import contender, fresh_database, launched
from bench.model import NOT_AVAILABLE, Row, ScenarioResult

KEY = "throughput"
TITLE = "Throughput with access logs"
PATH = "/api/epics"
CONNECTIONS = 8
THREADS = 1  # wrk's event loop: one thread keeps 8 connections busy and leaves the cores to the server
WARMUP_S = 1.0
TARGET_RATIO = 0.95
CONTENDERS = (SUPERVISOR, GUNICORN)


def _one(ctx: Context, path: str, label: str, seconds: float) -> dict[str, Any]:
    with fresh_database(ctx) as url, launched(ctx, contender(ctx, label), url, f"throughput-{label}") as server:
        target = f"http://127.0.0.1:{server.port}{PATH}"
        wrk.run(path, target, WARMUP_S, CONNECTIONS, THREADS)  # connections open, pool and caches warm
        # The supervising process (the supervisor with its relay threads, gunicorn's master):
        # what it costs per request is steadier than req/s on shared cores.
        cpu_before = proctools.cpu_seconds(server.pid)
        measured = wrk.run(path, target, seconds, CONNECTIONS, THREADS)
        cpu_after = proctools.cpu_seconds(server.pid)
        # Proof that access logging was on: the lines naming the path (some may still be in a pipe).
        access_lines = server.count_text(PATH)
    return {"contender": label, "req_per_s": measured.req_per_s, "requests": measured.requests,
            "seconds": measured.seconds, "non_2xx": measured.non_2xx, "socket_errors": measured.socket_errors,
            "latency_p50_ms": measured.latency_p50_ms, "latency_p99_ms": measured.latency_p99_ms,
            "access_lines": access_lines,
            "supervising_cpu_us_per_request": None if cpu_before is None or cpu_after is None or not measured.requests
            else round((cpu_after - cpu_before) / measured.requests * 1e6, 1)}


def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(KEY, TITLE)
    seconds = ctx.options.wrk_seconds
    figure = f"GET {PATH} throughput, access logs on, wrk {CONNECTIONS} connections, {seconds:g} s"
    target = f"≥ {TARGET_RATIO:g}× gunicorn"
    try:
        path = ctx.wrk()
    except wrk.WrkUnavailable as exc:
        result.status = NOT_AVAILABLE
        result.reason = str(exc)
        result.rows = [Row(figure, "req/s", {SUPERVISOR: None, GUNICORN: None}, target=target, note="no wrk")]
        return result
    contenders = available(CONTENDERS, ctx.supervisord_version, result.notes)
    for _, label in stats.interleaved(ctx.options.reps, contenders):
        run_ = _one(ctx, path, label, seconds)
        ctx.progress(f"throughput {label:12s} {run_['req_per_s']:,.0f} req/s errors="
                     f"{run_['non_2xx'] + run_['socket_errors']} access lines={run_['access_lines']}")
        if run_["access_lines"] == 0:
            ctx.anomaly(f"throughput {label}: no access line in its output; were access logs off?")
        result.runs.append(run_)

    def values(key: str) -> dict[str, float | None]:
        return {label: stats.median([r[key] for r in result.runs if r["contender"] == label])
                for label in contenders}

    rates = values("req_per_s")
    ratio = stats.ratio(rates.get(SUPERVISOR), rates.get(GUNICORN))
    errors = {label: stats.median([r["non_2xx"] + r["socket_errors"] for r in result.runs
                                   if r["contender"] == label]) for label in contenders}
    p99 = values("latency_p99_ms")
    result.rows = [
        Row(figure, "req/s", rates, ratio=ratio, baseline=GUNICORN if ratio is not None else None,
            target=target, passed=None if ratio is None else ratio >= TARGET_RATIO),
        Row("latency, 99th percentile, under that load", "ms", p99,
            ratio=stats.ratio(p99.get(SUPERVISOR), p99.get(GUNICORN)),
            baseline=GUNICORN if p99.get(GUNICORN) else None),
        Row("supervising process CPU per request under that load (the supervisor, its log relay included; "
            "gunicorn's master)", "µs", values("supervising_cpu_us_per_request")),
        Row("non-2xx responses and socket errors", "count", errors, target="0 in every run",
            passed=None if SUPERVISOR not in contenders else all(
                r["non_2xx"] + r["socket_errors"] == 0 for r in result.runs if r["contender"] == SUPERVISOR)),
    ]
    return result

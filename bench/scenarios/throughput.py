"""Throughput with access logs: ``GET /api/epics`` under wrk, the supervisor vs gunicorn.

Both serve the same app from the same venv (uvicorn with uvloop and httptools)
in one server process, on a fresh database with 20 epics, with access logs on:
the supervisor's server process logs every request as JSON to its pipe and the
supervisor's relay parses, stamps, redacts and writes each line (the point of
the figure: the relay must not cost throughput); gunicorn's worker writes its
access log to its own stdout (``--access-logfile -``).  Both outputs go to a file.
Each repetition starts both contenders side by side, warms each up, then wrk
loads one at a time with keep-alive connections in one-second slices alternating
ABBA (``--wrk-seconds`` slices each).  Rates pool every slice of every
repetition (requests / seconds): one-second slices of the same server vary by
±20 % on this machine's shared cores, so one 10-second run per contender and a
median of three (as before) still moved the ratio by ±7 % between runs.
"""

from __future__ import annotations

import contextlib
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


def _slices(ctx: Context, path: str, contenders: list[str], seconds: float) -> list[dict[str, Any]]:
    """One repetition: every contender running, loaded in alternating one-second slices; a run each."""
    with contextlib.ExitStack() as stack:
        running = {}
        for label in contenders:
            url = stack.enter_context(fresh_database(ctx))
            running[label] = stack.enter_context(launched(ctx, contender(ctx, label), url, f"throughput-{label}"))
        targets = {label: f"http://127.0.0.1:{server.port}{PATH}" for label, server in running.items()}
        for target in targets.values():
            wrk.run(path, target, WARMUP_S, CONNECTIONS, THREADS)  # connections open, pool and caches warm
        totals: dict[str, dict[str, Any]] = {
            label: {"requests": 0, "seconds": 0.0, "non_2xx": 0, "socket_errors": 0, "cpu": 0.0,
                    "cpu_known": True, "p50": [], "p99": []} for label in contenders}
        for _, label in stats.interleaved(max(1, round(seconds)), contenders):
            pid = running[label].pid
            # The supervising process (the supervisor with its relay threads, gunicorn's master):
            # what it costs per request is steadier than req/s on shared cores.
            cpu_before = proctools.cpu_seconds(pid)
            measured = wrk.run(path, targets[label], 1, CONNECTIONS, THREADS)
            cpu_after = proctools.cpu_seconds(pid)
            total = totals[label]
            total["requests"] += measured.requests
            total["seconds"] += measured.seconds
            total["non_2xx"] += measured.non_2xx
            total["socket_errors"] += measured.socket_errors
            if cpu_before is None or cpu_after is None:
                total["cpu_known"] = False
            else:
                total["cpu"] += cpu_after - cpu_before
            total["p50"].append(measured.latency_p50_ms)
            total["p99"].append(measured.latency_p99_ms)
        # Proof that access logging was on: the lines naming the path (some may still be in a pipe).
        access = {label: server.count_text(PATH) for label, server in running.items()}
    return [{"contender": label, "slices": len(t["p99"]), "requests": t["requests"], "seconds": round(t["seconds"], 3),
             "req_per_s": round(t["requests"] / t["seconds"], 1) if t["seconds"] else None,
             "non_2xx": t["non_2xx"], "socket_errors": t["socket_errors"],
             "latency_p50_ms": stats.median(t["p50"]), "latency_p99_ms": stats.median(t["p99"]),
             "access_lines": access[label],
             "supervising_cpu_us_per_request": round(t["cpu"] / t["requests"] * 1e6, 1)
             if t["cpu_known"] and t["requests"] else None}
            for label, t in totals.items()]


def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(KEY, TITLE)
    seconds = ctx.options.wrk_seconds
    figure = (f"GET {PATH} throughput, access logs on, wrk {CONNECTIONS} connections, "
              f"{max(1, round(seconds))} one-second slices each per repetition, alternating")
    target = f"≥ {TARGET_RATIO:g}× gunicorn"
    try:
        path = ctx.wrk()
    except wrk.WrkUnavailable as exc:
        result.status = NOT_AVAILABLE
        result.reason = str(exc)
        result.rows = [Row(figure, "req/s", {SUPERVISOR: None, GUNICORN: None}, target=target, note="no wrk")]
        return result
    contenders = available(CONTENDERS, ctx.supervisord_version, result.notes)
    for _ in range(ctx.options.reps):
        for run_ in _slices(ctx, path, contenders, seconds):
            ctx.progress(f"throughput {run_['contender']:12s} {run_['req_per_s'] or 0:,.0f} req/s errors="
                         f"{run_['non_2xx'] + run_['socket_errors']} access lines={run_['access_lines']}")
            if run_["access_lines"] == 0:
                ctx.anomaly(f"throughput {run_['contender']}: no access line in its output; were access logs off?")
            result.runs.append(run_)

    def values(key: str) -> dict[str, float | None]:
        return {label: stats.median([r[key] for r in result.runs if r["contender"] == label])
                for label in contenders}

    rates = {label: stats.pooled_rate(result.runs, label) for label in contenders}
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

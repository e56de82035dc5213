"""Footprint: the supervising process's memory, idle CPU and idle wake-ups, beside supervisord's and gunicorn's.

All of them run the backend at the same time (same machine, same minute), idle.
The supervising process is the supervisor, supervisord, or gunicorn's master.
RSS is VmRSS of that process alone (not its server processes); idle CPU is its
utime + stime over the window, as a percentage of one core; wake-ups per second
are the voluntary + involuntary context switches of all its threads over the
window (from /proc/PID/task/*/status).  The server processes' RSS is recorded in
the runs for reference.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from typing import Any

from bench import proctools, stats
from bench.contenders import GUNICORN, GUNICORN_PRELOAD, SUPERVISOR, SUPERVISORD, available
from bench.context import Context
from bench.harness import contender, fresh_database, launched
from bench.model import Row, ScenarioResult
from bench.paths import PYTHON, REPO
from bench.servers import Server

KEY = "footprint"
TITLE = "Footprint"
TARGET_MB = 60.0
SETTLE_S = 2.0
WAKEUPS_TARGET_RATIO = 1.0  # idle wake-ups: ≤ supervisord's
CONTENDERS = (SUPERVISOR, SUPERVISORD, GUNICORN, GUNICORN_PRELOAD)


def _measure(servers: dict[str, Server], window: float) -> dict[str, dict[str, Any]]:
    """Sample RSS every second and CPU at both ends of ``window`` seconds of idleness."""
    cpu0 = {label: proctools.cpu_seconds(s.pid) or 0.0 for label, s in servers.items()}
    threads0 = {label: proctools.thread_switches(s.pid) or {} for label, s in servers.items()}
    rss: dict[str, list[int]] = {label: [] for label in servers}
    started = time.monotonic()
    while True:
        for label, server in servers.items():
            rss[label].append(proctools.rss_kb(server.pid) or 0)
        left = window - (time.monotonic() - started)
        if left <= 0:
            break
        time.sleep(min(1.0, left))
    elapsed = time.monotonic() - started
    out = {}
    for label, server in servers.items():
        cpu = (proctools.cpu_seconds(server.pid) or 0.0) - cpu0[label]
        # Per thread, so a reader can see which thread wakes (a thread born in the window counts from 0).
        by_thread = {name: n - threads0[label].get(name, 0)
                     for name, n in (proctools.thread_switches(server.pid) or {}).items()}
        switches = sum(by_thread.values())
        workers = [p for p in server.server_pids() if p != server.pid]
        out[label] = {"contender": label, "rss_mb": round(max(rss[label]) / 1024, 2),
                      "idle_cpu_pct": round(100 * cpu / elapsed, 3), "window_s": round(elapsed, 1),
                      "wakeups_per_s": round(switches / elapsed, 3), "context_switches": switches,
                      "switches_by_thread": by_thread,
                      "server_rss_mb": [round((proctools.rss_kb(p) or 0) / 1024, 1) for p in workers]}
    return out


# What the supervising process holds, import by import (cumulative RSS), to explain its figure.
IMPORT_STEPS = """
import json, os, sys
def rss():
    for line in open(f"/proc/{os.getpid()}/status"):
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
steps = [("python", None), ("structlog", "structlog"), ("psycopg2", "psycopg2"), ("sqlalchemy", "sqlalchemy"),
         ("alembic", "alembic.command"), ("supervisor", "supervisor.supervision.service"),
         ("backend models", "jarlpm.models")]
out = {}
for name, module in steps:
    if module:
        __import__(module)
    out[name] = rss()
print(json.dumps(out))
"""


def import_breakdown() -> dict[str, float]:
    """Cumulative RSS (MB) of a fresh interpreter after each of the supervisor's heavy imports."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": f"{REPO}:{REPO / 'backend'}"}
    out = subprocess.run([PYTHON, "-c", IMPORT_STEPS], env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    if out.returncode != 0:
        return {}
    return {str(k): float(v) for k, v in json.loads(out.stdout).items()}


def _versus(values: dict[str, float | None], baseline: str) -> str:
    """``0.52× gunicorn``: a second ratio, for the note."""
    ratio = stats.ratio(values.get(SUPERVISOR), values.get(baseline))
    return "" if ratio is None else f"{ratio:.2f}× {baseline}"


def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(KEY, TITLE)
    contenders = available(CONTENDERS, ctx.supervisord_version, result.notes)
    window = ctx.options.idle_seconds
    with contextlib.ExitStack() as stack:
        running = {}
        for label in contenders:
            url = stack.enter_context(fresh_database(ctx))
            running[label] = stack.enter_context(launched(ctx, contender(ctx, label), url, f"footprint-{label}"))
        time.sleep(min(SETTLE_S, window))
        ctx.progress(f"footprint: idle for {window:g}s")
        measured = _measure(running, window)
    result.runs = list(measured.values())
    steps = import_breakdown()
    if steps:
        result.runs.append({"contender": "imports (fresh interpreter, cumulative RSS MB)", **steps})
        result.notes.append("the supervisor's RSS is mostly its imports (cumulative RSS of a fresh interpreter): "
                            + ", ".join(f"{name} {mb:g} MB" for name, mb in steps.items()))
    for run_ in measured.values():
        ctx.progress(f"footprint {run_['contender']:20s} rss={run_['rss_mb']} MB idle cpu={run_['idle_cpu_pct']}% "
                     f"wake-ups={run_['wakeups_per_s']}/s")
    rss = {label: stats.median([measured[label]["rss_mb"]]) for label in contenders}
    cpu = {label: stats.median([measured[label]["idle_cpu_pct"]]) for label in contenders}
    wakeups = {label: stats.median([measured[label]["wakeups_per_s"]]) for label in contenders}
    wakeups_ratio = stats.ratio(wakeups.get(SUPERVISOR), wakeups.get(SUPERVISORD))
    ours = rss.get(SUPERVISOR)
    result.rows = [
        Row("supervising process RSS (workers excluded)", "MB", rss,
            ratio=stats.ratio(ours, rss.get(SUPERVISORD)), baseline=SUPERVISORD if SUPERVISORD in rss else None,
            target=f"< {TARGET_MB:g} MB", passed=None if ours is None else ours < TARGET_MB,
            note=_versus(rss, GUNICORN)),
        Row(f"idle CPU over {window:g} s, % of one core", "%", cpu,
            ratio=stats.ratio(cpu.get(SUPERVISOR), cpu.get(SUPERVISORD)),
            baseline=SUPERVISORD if SUPERVISORD in cpu else None, note=_versus(cpu, GUNICORN)),
        Row(f"idle wake-ups per second over {window:g} s (context switches, all threads)", "/s", wakeups,
            ratio=wakeups_ratio, baseline=SUPERVISORD if wakeups_ratio is not None else None,
            target=f"≤ {WAKEUPS_TARGET_RATIO:g}× supervisord",
            passed=None if wakeups_ratio is None else wakeups_ratio <= WAKEUPS_TARGET_RATIO,
            note=_versus(wakeups, GUNICORN)),
    ]
    return result

"""Reload under load: SIGHUP to the supervisor vs SIGHUP to gunicorn's master vs ``supervisorctl restart``.

Clients request /api/health in a loop while the server is replaced.  The
supervisor re-runs its migrate phase, starts a new process, waits for it to be
ready, then drains the old one; gunicorn forks a new worker and at once sends
the old one SIGTERM (its master keeps the socket, so connections wait in the
backlog); supervisorctl stops the program, then starts it.  Counted: refused
connections and failed requests during the whole window, and the reload's
duration (to ``supervisor.reloaded``, to the new gunicorn worker's "Application
startup complete.", or until supervisorctl returns).
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from bench import proctools, stats
from bench.contenders import GUNICORN, SUPERVISOR, SUPERVISORD, available
from bench.context import Context
from bench.harness import contender, fresh_database, launched
from bench.load import LoopingClients, tally
from bench.model import Row, ScenarioResult
from bench.servers import Server

KEY = "reload"
TITLE = "Reload under load"
CLIENTS = 4
BEFORE_S = 1.0
AFTER_S = 1.0
LIMIT_S = 60.0
CONTENDERS = (SUPERVISOR, GUNICORN, SUPERVISORD)
HOW = {SUPERVISOR: "SIGHUP", GUNICORN: "SIGHUP", SUPERVISORD: "supervisorctl restart"}
# uvicorn's line once lifespan startup is done: the new gunicorn worker is ready to serve.
UVICORN_READY = "Application startup complete."


def _trigger(label: str, server: Server) -> float:
    """Start the reload and return when it is done (monotonic time)."""
    if label == SUPERVISOR:
        server.signal(signal.SIGHUP)
        server.wait_event("supervisor.reloaded", LIMIT_S)
        return time.monotonic()
    if label == GUNICORN:
        mark = server.log_size()
        server.signal(signal.SIGHUP)
        return server.wait_text(UVICORN_READY, LIMIT_S, since=mark)
    subprocess.run([*server.spec.ctl, "restart", "backend"], capture_output=True, timeout=LIMIT_S, check=True)
    return time.monotonic()


def _when_gone(pids: set[int], limit: float) -> Callable[[], float | None]:
    """Watch ``pids`` in a thread; the returned function waits and gives when the last one exited."""
    gone: list[float] = []

    def watch() -> None:
        if proctools.wait_gone(list(pids), limit):
            gone.append(time.monotonic())

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()

    def result() -> float | None:
        thread.join(limit)
        return gone[0] if gone else None
    return result


def _versus(durations: dict[str, float | None], baseline: str) -> str:
    ratio = stats.ratio(durations.get(SUPERVISOR), durations.get(baseline))
    return "" if ratio is None else f"; {ratio:.2f}× {baseline}"


def _one(ctx: Context, label: str) -> dict[str, Any]:
    name = HOW[label]
    with fresh_database(ctx) as url, launched(ctx, contender(ctx, label), url, f"reload-{label}") as server:
        before = set(server.server_pids())
        clients = LoopingClients(server.port, "/api/health", threads=CLIENTS, max_seconds=LIMIT_S + 10).start()
        time.sleep(BEFORE_S)
        started = time.monotonic()
        done = _trigger(label, server)
        old_gone = _when_gone(before, LIMIT_S)
        recovered = None
        while recovered is None and time.monotonic() < done + LIMIT_S:
            time.sleep(0.02)
            recovered = clients.first_ok_after(done)
        time.sleep(AFTER_S)
        samples = clients.stop()
        counts = tally(samples)
        after = set(server.server_pids())
        gone_at = old_gone()
        return {"contender": label, "how": name, "requests": len(samples), "ok": counts["ok"],
                "refused": counts["refused"], "failed": counts["failed"],
                "reload_s": round(done - started, 4), "replaced": bool(after - before),
                "old_process_gone_s": None if gone_at is None else round(gone_at - done, 3),
                "errors": sorted({s.detail for s in samples if s.outcome == "failed"})}


def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(KEY, TITLE)
    contenders = available(CONTENDERS, ctx.supervisord_version, result.notes)
    for _, label in stats.interleaved(ctx.options.reps, contenders):
        run_ = _one(ctx, label)
        ctx.progress(f"reload {label:12s} refused={run_['refused']} failed={run_['failed']} "
                     f"reload={run_['reload_s']}s replaced={run_['replaced']}")
        result.runs.append(run_)

    def values(key: str) -> dict[str, float | None]:
        return {label: stats.median([r[key] for r in result.runs if r["contender"] == label])
                for label in contenders}

    ours = [r for r in result.runs if r["contender"] == SUPERVISOR]
    durations = values("reload_s")
    gone = values("old_process_gone_s")
    result.rows = [
        Row("connections refused during reload", "count", values("refused"), target="0 in every run",
            passed=None if not ours else all(r["refused"] == 0 for r in ours)),
        Row("requests failed during reload", "count", values("failed"), target="0 in every run",
            passed=None if not ours else all(r["failed"] == 0 for r in ours)),
        Row("reload duration", "s", durations,
            ratio=stats.ratio(durations.get(SUPERVISOR), durations.get(GUNICORN)),
            baseline=GUNICORN if GUNICORN in durations else None,
            note="SIGHUP to supervisor.reloaded; gunicorn: SIGHUP to the new worker's application startup; "
                 "supervisorctl until it returns"
                 + _versus(durations, SUPERVISORD)),
        Row("old server process gone, after the reload is done", "s", gone,
            note="the supervisor drains it: CLOSE_GRACE, then SIGTERM and uvicorn's shutdown; "
                 "gunicorn sends it SIGTERM at once, before the new worker is ready"),
    ]
    if any(not r["replaced"] for r in result.runs):
        result.notes.append("in some runs the server process was not replaced: see runs[].replaced")
    return result

"""Graceful stop with requests in flight: 20 requests to /slow?s=2, then SIGTERM to the top process.

Runs ``tests/apps/sampleapp.py`` (an app that knows nothing of any supervisor)
under the supervisor, under supervisord and as plain uvicorn.  Counted: requests
that did not get their 200 ("lost"), and seconds from SIGTERM to the top
process's exit (a 2 s request sent ~0.3 s before: ~1.7 s is the floor).
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

from bench import stats
from bench.context import Context
from bench.harness import contender, fresh_database, launched
from bench.load import Sample, burst
from bench.model import Row, ScenarioResult
from bench.paths import TEST_APPS
from bench.supervisord import SupervisordUnavailable

KEY = "graceful"
TITLE = "Graceful stop"
IN_FLIGHT = 20
SLOW_S = 2.0
SETTLE_S = 0.3  # after the last request is written, so the server has read them all


def _one(ctx: Context, label: str) -> dict[str, Any]:
    build = contender(ctx, label, app="sampleapp:app", app_dir=str(TEST_APPS))
    with fresh_database(ctx) as url, launched(ctx, build, url, f"graceful-{label}") as server:
        sent = threading.Semaphore(0)
        samples: list[Sample] = []
        sender = threading.Thread(target=lambda: samples.extend(
            burst(server.port, f"/slow?s={SLOW_S:g}", IN_FLIGHT, timeout=30, sent=sent)), daemon=True)
        sender.start()
        deadline = time.monotonic() + 15
        written = sum(sent.acquire(timeout=max(0.0, deadline - time.monotonic())) for _ in range(IN_FLIGHT))
        time.sleep(SETTLE_S)
        server.signal(signal.SIGTERM)
        exit_s = server.wait_exit(60)
        sender.join(45)
        outcomes = [s.outcome for s in samples]
        return {"contender": label, "sent": written, "answered": outcomes.count("ok"),
                "lost": IN_FLIGHT - outcomes.count("ok"), "exit_s": None if exit_s is None else round(exit_s, 4),
                "exit_code": server.proc.returncode, "errors": sorted({s.detail for s in samples if s.detail})}


def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(KEY, TITLE)
    contenders = ["supervisor", "supervisord", "uvicorn"]
    try:
        ctx.supervisord_version()
    except SupervisordUnavailable as exc:
        contenders.remove("supervisord")
        result.notes.append(f"supervisord not available: {exc}")
    for _, label in stats.interleaved(ctx.options.reps, contenders):
        run_ = _one(ctx, label)
        ctx.progress(f"graceful {label:12s} lost={run_['lost']}/{IN_FLIGHT} exit={run_['exit_s']}s "
                     f"code={run_['exit_code']}")
        result.runs.append(run_)

    def values(key: str) -> dict[str, float | None]:
        return {label: stats.median([r[key] for r in result.runs if r["contender"] == label])
                for label in contenders}

    worst = max((r["lost"] for r in result.runs if r["contender"] == "supervisor"), default=None)
    exits = values("exit_s")
    result.rows = [
        Row(f"requests lost of {IN_FLIGHT} in flight", "count", values("lost"), target="0 in every run",
            passed=None if worst is None else worst == 0),
        Row("SIGTERM to exit", "s", exits, ratio=stats.ratio(exits.get("supervisor"), exits.get("uvicorn")),
            baseline="uvicorn", note=f"requests of {SLOW_S:g} s sent {SETTLE_S:g} s before"),
    ]
    return result

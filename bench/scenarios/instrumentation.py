"""Pool instrumentation overhead: GET /api/epics throughput with JARLPM_POOL_INSTRUMENTATION=1 vs 0.

Two supervisors run the backend side by side (one with the switch on, one off,
each on a fresh seeded database).  8 keep-alive clients load one of them at a
time, in one-second slices alternating ABBA, so that anything else the machine
does lands on both alike.  Overhead is ``1 - on/off``.  When the backend does
not read the variable, the row reads "not available" rather than measuring the
same code twice.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from bench import stats
from bench.context import Context
from bench.harness import contender, fresh_database, launched
from bench.load import LoopingClients, tally
from bench.model import NOT_AVAILABLE, Row, ScenarioResult
from bench.paths import REPO
from bench.servers import Server

KEY = "instrumentation"
TITLE = "Pool instrumentation overhead"
VARIABLE = "JARLPM_POOL_INSTRUMENTATION"
CLIENTS = 8
SLICE_S = 1.0
WARMUP_S = 0.5
TARGET_PCT = 5.0
ON, OFF = "supervisor", "instrumentation off"


def instrumentation_available(backend: Path = REPO / "backend") -> bool:
    """The backend's code reads the switch (so 0 and 1 differ)."""
    return any(VARIABLE in path.read_text(errors="replace") for path in backend.rglob("*.py"))


def _load(server: Server, seconds: float, errors: set[str] | None = None) -> tuple[int, int, float]:
    """(ok, failed, seconds) of ``seconds`` of back-to-back keep-alive requests; error kinds into ``errors``."""
    clients = LoopingClients(server.port, "/api/epics", threads=CLIENTS, think=0, keepalive=True,
                             max_seconds=seconds + 30)
    started = time.monotonic()
    samples = clients.run_for(seconds)
    counts = tally(samples)
    if errors is not None:
        errors.update(s.detail for s in samples if s.outcome != "ok")
    return counts["ok"], counts["failed"] + counts["refused"], time.monotonic() - started


def _rep(ctx: Context, seconds: float) -> list[dict[str, Any]]:
    with contextlib.ExitStack() as stack:
        running: dict[str, Server] = {}
        for label, switch in ((ON, "1"), (OFF, "0")):
            url = stack.enter_context(fresh_database(ctx))
            build = contender(ctx, "supervisor", **{VARIABLE: switch})
            running[label] = stack.enter_context(launched(ctx, build, url, f"instrumentation-{switch}"))
        for server in running.values():
            _load(server, WARMUP_S)
        totals = {label: [0, 0, 0.0] for label in running}
        errors: dict[str, set[str]] = {label: set() for label in running}
        slices = max(1, round(seconds / SLICE_S))
        for _, label in stats.interleaved(slices, [ON, OFF]):
            ok, failed, took = _load(running[label], SLICE_S, errors[label])
            totals[label][0] += ok
            totals[label][1] += failed
            totals[label][2] += took
    return [{"contender": label, VARIABLE: "1" if label == ON else "0", "ok": int(ok), "failed": int(failed),
             "seconds": round(took, 3), "req_per_s": round(ok / took, 1), "errors": sorted(errors[label])}
            for label, (ok, failed, took) in totals.items()]


def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(KEY, TITLE)
    target = f"< {TARGET_PCT:g} % overhead"
    if not instrumentation_available():
        result.status = NOT_AVAILABLE
        result.reason = f"the backend does not read {VARIABLE} yet"
        result.rows = [Row("GET /api/epics throughput", "req/s", {ON: None, OFF: None}, target=target,
                           note="not available")]
        return result
    for _ in range(ctx.options.reps):
        runs = _rep(ctx, ctx.options.throughput_seconds)
        for run_ in runs:
            ctx.progress(f"instrumentation {run_[VARIABLE]}: {run_['req_per_s']:,.0f} req/s failed={run_['failed']}")
        result.runs += runs
    rates = {label: stats.median([r["req_per_s"] for r in result.runs if r["contender"] == label])
             for label in (ON, OFF)}
    ratio = stats.ratio(rates[ON], rates[OFF])
    overhead = None if ratio is None else (1 - ratio) * 100
    per_rep = [100 * (1 - on["req_per_s"] / off["req_per_s"])
               for on, off in zip(result.runs[0::2], result.runs[1::2], strict=True) if off["req_per_s"]]
    if per_rep:
        result.notes.append(f"overhead per repetition: {', '.join(f'{x:+.1f} %' for x in per_rep)}; a spread "
                            f"wider than the {TARGET_PCT:g} % target means this machine was too busy to tell")
    result.rows = [
        Row(f"GET /api/epics throughput, {CLIENTS} keep-alive clients", "req/s", rates, ratio=ratio,
            baseline=OFF, target=target, passed=None if overhead is None else overhead < TARGET_PCT,
            note="" if overhead is None else f"overhead {overhead:.1f} %"),
    ]
    return result

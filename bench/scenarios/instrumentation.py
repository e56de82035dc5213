"""Instrumentation overhead: GET /api/epics throughput with the pool instrumentation on vs off, and metrics on vs off.

Two supervisors run the backend side by side (one with the switch on, one off,
each on a fresh seeded database).  8 keep-alive connections load one of them at
a time, in one-second slices alternating ABBA, so that anything else the machine
does lands on both alike.  The load comes from ``wrk`` when it is there (one C
thread: a client that does not compete with the server for the GIL or the cores
the way Python threads do, which made slices differ by ±7 %), else from Python
threads.

On this machine one-second slices of the same server vary by ±20 % (165-291
req/s in one run: the cores are shared), while two launches of the same code
agree within 0.1 % over 12 slices each.  So what decides is the number of slices:
each repetition runs ``--throughput-seconds`` (default 15) slices per side, and
the verdict pools every slice of every repetition (requests / seconds per side),
about 45-60 slices per side in a full run.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from bench import stats, wrk
from bench.context import Context
from bench.harness import contender, fresh_database, launched
from bench.load import LoopingClients, tally
from bench.model import NOT_AVAILABLE, Row, ScenarioResult
from bench.paths import REPO
from bench.servers import Server, pick_port

KEY = "instrumentation"
TITLE = "Instrumentation overhead (pool, metrics)"
VARIABLE = "JARLPM_POOL_INSTRUMENTATION"
CLIENTS = 8
SLICE_S = 1.0
WARMUP_S = 0.5
TARGET_PCT = 5.0
ON, OFF = "supervisor", "instrumentation off"
METRICS_ON, METRICS_OFF = ON, "metrics off"  # "supervisor" is the report's column for the measured side


def instrumentation_available(backend: Path = REPO / "backend") -> bool:
    """The backend's code reads the switch (so 0 and 1 differ)."""
    return any(VARIABLE in path.read_text(errors="replace") for path in backend.rglob("*.py"))


def _load(server: Server, seconds: float, errors: set[str] | None = None,
          wrk_path: str | None = None) -> tuple[int, int, float]:
    """(ok, failed, seconds) of ``seconds`` of back-to-back keep-alive requests; error kinds into ``errors``."""
    if wrk_path is not None:
        measured = wrk.run(wrk_path, f"http://127.0.0.1:{server.port}/api/epics", seconds, CLIENTS, threads=1)
        if errors is not None and measured.errors:
            errors.add(f"wrk: {measured.non_2xx} non-2xx, {measured.socket_errors} socket errors")
        return measured.requests - measured.non_2xx, measured.errors, measured.seconds
    clients = LoopingClients(server.port, "/api/epics", threads=CLIENTS, think=0, keepalive=True,
                             max_seconds=seconds + 30)
    started = time.monotonic()
    samples = clients.run_for(seconds)
    counts = tally(samples)
    if errors is not None:
        errors.update(s.detail for s in samples if s.outcome != "ok")
    return counts["ok"], counts["failed"] + counts["refused"], time.monotonic() - started


def _wrk_or_none(ctx: Context) -> str | None:
    """wrk's path, or None (the Python clients then) where it cannot be had."""
    try:
        return ctx.wrk()
    except wrk.WrkUnavailable:
        return None


def _rep(ctx: Context, seconds: float, pair: dict[str, dict[str, str]] | None = None,
         kind: str = "pool") -> list[dict[str, Any]]:
    """One ABBA comparison of two supervisors; ``pair`` maps each label to its extra environment."""
    pair = pair or {ON: {VARIABLE: "1"}, OFF: {VARIABLE: "0"}}
    with contextlib.ExitStack() as stack:
        running: dict[str, Server] = {}
        for label, extra in pair.items():
            url = stack.enter_context(fresh_database(ctx))
            build = contender(ctx, "supervisor", **extra)
            name = f"instrumentation-{kind}-{label.replace(' ', '-')}"
            running[label] = stack.enter_context(launched(ctx, build, url, name))
        wrk_path = _wrk_or_none(ctx)
        for server in running.values():
            _load(server, WARMUP_S, wrk_path=wrk_path)
        totals = {label: [0, 0, 0.0] for label in running}
        errors: dict[str, set[str]] = {label: set() for label in running}
        slices = max(1, round(seconds / SLICE_S))
        for _, label in stats.interleaved(slices, list(pair)):
            ok, failed, took = _load(running[label], SLICE_S, errors[label], wrk_path)
            totals[label][0] += ok
            totals[label][1] += failed
            totals[label][2] += took
    client = "wrk" if wrk_path else "python threads"
    return [{"contender": label, "pair": kind, "client": client, **pair[label], "ok": int(ok), "failed": int(failed),
             "seconds": round(took, 3), "req_per_s": round(ok / took, 1), "errors": sorted(errors[label])}
            for label, (ok, failed, took) in totals.items()]


def _metrics_pair() -> dict[str, dict[str, str]]:
    return {METRICS_ON: {"METRICS_PORT": str(pick_port()), "METRICS_HOST": "127.0.0.1"}, METRICS_OFF: {}}


def _overhead_row(runs: list[dict[str, Any]], kind: str, on: str, off: str, what: str) -> tuple[Row, list[float]]:
    """Each side's rate pooled over every slice of every repetition, their ratio against the target,
    and each repetition's own overhead (for the notes: the spread).

    Pooled, not a median of repetitions: the noise is in the slices (see the module
    docstring), so more slices, not fewer numbers, is what narrows it.
    """
    target = f"< {TARGET_PCT:g} % overhead"
    runs = [r for r in runs if r.get("pair", "pool") == kind]
    rates = {label: stats.pooled_rate(runs, label, count="ok") for label in (on, off)}
    ratio = stats.ratio(rates[on], rates[off])
    overhead = None if ratio is None else (1 - ratio) * 100
    ons = [r for r in runs if r["contender"] == on]
    offs = [r for r in runs if r["contender"] == off]
    per_rep = [100 * (1 - a["req_per_s"] / b["req_per_s"]) for a, b in zip(ons, offs, strict=True) if b["req_per_s"]]
    note = "" if overhead is None else f"overhead {overhead:.1f} % over {len(ons)} repetitions"
    row = Row(f"GET /api/epics throughput, {CLIENTS} keep-alive clients, {what}", "req/s", rates, ratio=ratio,
              baseline=off, target=target, passed=None if overhead is None else overhead < TARGET_PCT,
              note=note)
    return row, per_rep


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
        for kind, pair in (("pool", None), ("metrics", _metrics_pair())):
            runs = _rep(ctx, ctx.options.throughput_seconds, pair, kind)
            for run_ in runs:
                ctx.progress(f"instrumentation ({kind}) {run_['contender']}: {run_['req_per_s']:,.0f} req/s "
                             f"failed={run_['failed']}")
            result.runs += runs
    rows = []
    for kind, on, off, what in (("pool", ON, OFF, "pool instrumentation on vs off"),
                                ("metrics", METRICS_ON, METRICS_OFF, "metrics on vs off")):
        row, per_rep = _overhead_row(result.runs, kind, on, off, what)
        rows.append(row)
        if per_rep:
            result.notes.append(f"{what}: overhead per repetition {', '.join(f'{x:+.1f} %' for x in per_rep)} "
                                "(one-second slices vary by ±20 % on shared cores; the row pools them all)")
    result.rows = rows
    return result

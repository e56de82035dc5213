"""Crash under load: the server process is SIGKILLed while clients request /api/health in a loop.

Contenders: the supervisor (restarts its worker; the socket it holds queues
connections meanwhile), gunicorn with one uvicorn worker, with and without
``--preload`` (its master holds the socket and forks a new worker),
supervisord (``autorestart=true``), and the shell chain restarted by ``while
true; do ...; done``; and the supervisor with its fast-replacement option
(``supervisor (standby)``) once it reads the switch.  Counted around the kill:

* refused: connections refused (nothing was listening);
* failed after the kill: requests sent after the kill that did not get a 200
  (other than refusals): resets, timeouts, errors;
* lost in flight: requests already sent to the killed process, which no design
  can save (the kernel resets those connections);
* recovery: from the kill to the first 200 of a request sent after it.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from bench import stats
from bench.contenders import (
    GUNICORN,
    GUNICORN_PRELOAD,
    NO_FORK_SERVER,
    SHELL_LOOP,
    STANDBY,
    SUPERVISOR,
    SUPERVISORD,
    available,
    is_supervisor,
)
from bench.context import Context
from bench.harness import contender, fresh_database, launched
from bench.load import LoopingClients, Sample
from bench.model import NOT_AVAILABLE, Row, ScenarioResult

KEY = "crash"
TITLE = "Crash under load"
CLIENTS = 4
BEFORE_S = 1.0  # load before the kill
AFTER_S = 1.0  # load after recovery
RECOVERY_LIMIT_S = 30.0
CONTENDERS = (SUPERVISOR, STANDBY, NO_FORK_SERVER, GUNICORN, GUNICORN_PRELOAD, SUPERVISORD, SHELL_LOOP)
SMOKE_CONTENDERS = (GUNICORN,)  # the smoke run's cheap check of the baseline (the supervisor's is in tests/e2e)
TARGET_RATIO = 1.0  # recovery: the supervisor vs gunicorn, and with standby vs gunicorn --preload


def split(samples: list[Sample], killed_at: float) -> dict[str, int]:
    """Counts around the kill (pure: for a unit test or a reader)."""
    before = [s for s in samples if s.started < killed_at]
    after = [s for s in samples if s.started >= killed_at]
    return {
        "requests": len(samples),
        "ok": sum(s.outcome == "ok" for s in samples),
        "refused": sum(s.outcome == "refused" for s in samples),
        "lost_in_flight": sum(s.outcome == "failed" and s.ended >= killed_at for s in before),
        "failed_after_kill": sum(s.outcome == "failed" for s in after),
    }


def _one(ctx: Context, label: str) -> dict[str, Any]:
    with fresh_database(ctx) as url, launched(ctx, contender(ctx, label), url, f"crash-{label}") as server:
        victim = server.wait_server_pid()
        if label in (SUPERVISOR, STANDBY):
            # The fork server (the default) starts once the service is ready: kill once it has
            # imported the app, so the figure is the forked replacement's, not a race.
            _wait_for_event(server, "forkserver.ready")
        if label == STANDBY:
            _wait_for_event(server, "child.standby")
        clients = LoopingClients(server.port, "/api/health", threads=CLIENTS, max_seconds=RECOVERY_LIMIT_S + 10)
        clients.start()
        time.sleep(BEFORE_S)
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        recovered_at = None
        deadline = killed_at + RECOVERY_LIMIT_S
        while recovered_at is None and time.monotonic() < deadline:
            time.sleep(0.02)
            recovered_at = clients.first_ok_after(killed_at)
        if recovered_at is not None:
            time.sleep(AFTER_S)
        samples = clients.stop()
        run: dict[str, Any] = {"contender": label, **split(samples, killed_at),
               "recovery_s": None if recovered_at is None else round(recovered_at - killed_at, 4),
               "errors": sorted({s.detail for s in samples if s.outcome == "failed"})}
        if is_supervisor(label):
            run["restart_events"] = [e for e in server.events() if e.get("event") in ("child.exited",
                                                                                      "child.restarting")]
        return run


def _wait_for_event(server: Any, event: str, timeout: float = 60.0) -> None:
    """Kill only once the standby (``child.standby``) or the fork server (``forkserver.ready``) has
    imported the app: the figure is the replacement's, not a race with their own start."""
    deadline = time.monotonic() + timeout
    while not any(e.get("event") == event for e in server.events()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {event} within {timeout:g} s")
        time.sleep(0.05)


def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(KEY, TITLE)
    wanted = SMOKE_CONTENDERS if ctx.options.smoke else CONTENDERS
    contenders = available(wanted, ctx.supervisord_version, result.notes)
    if not contenders:
        result.status = NOT_AVAILABLE
        result.reason = "; ".join(result.notes)
        return result
    for _, label in stats.interleaved(ctx.options.reps, contenders):
        run_ = _one(ctx, label)
        ctx.progress(f"crash {label:20s} refused={run_['refused']} failed_after={run_['failed_after_kill']} "
                     f"lost_in_flight={run_['lost_in_flight']} recovery={run_['recovery_s']}s")
        result.runs.append(run_)
    result.rows = rows(result.runs, contenders, standby_row=STANDBY in wanted)
    return result


def _median(runs: list[dict[str, Any]], label: str, key: str) -> float | None:
    return stats.median([r[key] for r in runs if r["contender"] == label])


def _recovery_row(figure: str, recovery: dict[str, float | None], ours: str, baseline: str, note: str = "") -> Row:
    """Recovery of ``ours`` against ``baseline``, held to TARGET_RATIO; both bars even when one is missing."""
    values = {ours: recovery.get(ours), baseline: recovery.get(baseline)}
    ratio = stats.ratio(values[ours], values[baseline])
    return Row(figure, "s", values, ratio=ratio, baseline=baseline, target=f"≤ {TARGET_RATIO:g}× {baseline}",
               passed=None if ratio is None else ratio <= TARGET_RATIO, note=note, subject=ours)


def rows(runs: list[dict[str, Any]], contenders: list[str], standby_row: bool = False) -> list[Row]:
    def values(key: str) -> dict[str, float | None]:
        return {label: _median(runs, label, key) for label in contenders}

    ours = [r for r in runs if r["contender"] == SUPERVISOR]
    refused_worst = max((r["refused"] for r in ours), default=None)
    failed_worst = max((r["failed_after_kill"] for r in ours), default=None)
    theirs_refuse = any(r["refused"] for r in runs if r["contender"] == SUPERVISORD)
    recovery = values("recovery_s")
    versus_supervisord = stats.ratio(recovery.get(SUPERVISOR), recovery.get(SUPERVISORD))
    found = [
        Row("connections refused (median of runs)", "count", values("refused"),
            target="0 in every run where supervisord refuses",
            passed=None if refused_worst is None else (refused_worst == 0),
            note="" if theirs_refuse or SUPERVISORD not in contenders else "supervisord refused none"),
        Row("requests failed after the kill (not refused)", "count", values("failed_after_kill"),
            target="0 in every run", passed=None if failed_worst is None else failed_worst == 0),
        Row("requests lost in flight at the kill", "count", values("lost_in_flight"),
            note="already sent to the killed process: no supervisor can answer them"),
        Row("time to recovery, every contender", "s", recovery,
            ratio=versus_supervisord, baseline=SUPERVISORD if versus_supervisord is not None else None),
        _recovery_row("time to recovery vs gunicorn", recovery, SUPERVISOR, GUNICORN),
    ]
    if GUNICORN_PRELOAD in contenders:
        fast = {SUPERVISOR: recovery.get(SUPERVISOR), GUNICORN_PRELOAD: recovery.get(GUNICORN_PRELOAD)}
        ratio = stats.ratio(fast[SUPERVISOR], fast[GUNICORN_PRELOAD])
        found.append(Row("time to recovery, the default (fork server) vs gunicorn --preload", "s", fast,
                         ratio=ratio, baseline=GUNICORN_PRELOAD if ratio is not None else None, subject=SUPERVISOR,
                         note="both fork a process that has the app imported"))
    if NO_FORK_SERVER in contenders:
        off = {NO_FORK_SERVER: recovery.get(NO_FORK_SERVER), GUNICORN: recovery.get(GUNICORN)}
        ratio = stats.ratio(off[NO_FORK_SERVER], off[GUNICORN])
        found.append(Row("time to recovery with JARLPM_FORK_SERVER=0 vs gunicorn", "s", off, ratio=ratio,
                         baseline=GUNICORN if ratio is not None else None, subject=NO_FORK_SERVER,
                         note="what turning the fork server off costs (fresh interpreters)"))
    if standby_row:
        found.append(_recovery_row("time to recovery with fast replacement vs gunicorn --preload", recovery,
                                   STANDBY, GUNICORN_PRELOAD,
                                   note="" if STANDBY in contenders else "supervisor (standby) not built yet"))
    return found

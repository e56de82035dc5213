"""Log relay: lines per second from the server through the supervisor vs the server writing directly.

The app (``bench/apps/logspam.py``) logs N JSON records as fast as it can.
"direct" is plain uvicorn whose stdout is a pipe the bench reads, as a container
runtime or journald would; "supervisor" is the same app under the supervisor,
whose relay parses each line, stamps ``source``/``pid``, redacts it and writes it
to its own stdout, the pipe the bench reads.  The clock runs from the request
to the moment the reader has seen the N-th line.  The supervisor's CPU time
(utime + stime from /proc) over that window is the relay's cost.
"""

from __future__ import annotations

import os
import threading
import time
from typing import IO, Any

from bench import probe, proctools, servers, stats
from bench.context import Context
from bench.harness import fresh_database, launched
from bench.model import Row, ScenarioResult
from bench.paths import BENCH_APPS

KEY = "relay"
TITLE = "Log relay"
MARKER = b"bench.spam.line"
TARGET = 0.8


class LineCounter:
    """Drains a pipe in a thread, counting lines that contain ``MARKER`` and timing the N-th."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self.fd = pipe.fileno()
        self.count = 0
        self.goal: int | None = None
        self.reached = threading.Event()
        self.reached_at = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def expect(self, goal: int) -> None:
        self.count = 0
        self.reached.clear()
        self.goal = goal

    def _run(self) -> None:
        carry = b""
        while True:
            try:
                chunk = os.read(self.fd, 1 << 20)
            except OSError:
                return
            if not chunk:
                return
            *lines, carry = (carry + chunk).split(b"\n")
            self.count += sum(MARKER in line for line in lines)
            if self.goal is not None and self.count >= self.goal and not self.reached.is_set():
                self.reached_at = time.monotonic()
                self.reached.set()


def _builder(label: str) -> Any:
    def build(port: int, url: str, run_dir: Any) -> servers.ServerSpec:
        if label == "supervisor":
            return servers.supervisor(port, url, run_dir, {"JARLPM_APP": "logspam:app",
                                                           "JARLPM_APP_DIR": str(BENCH_APPS)})
        return servers.plain_uvicorn(port, "logspam:app", str(BENCH_APPS), {"PYTHONUNBUFFERED": "1"})
    return build


def _one(ctx: Context, label: str, lines: int) -> dict[str, Any]:
    with fresh_database(ctx) as url, launched(ctx, _builder(label), url, f"relay-{label}", capture=True) as server:
        assert server.proc.stdout is not None
        counter = LineCounter(server.proc.stdout)
        counter.expect(lines)
        cpu_before = proctools.cpu_seconds(server.pid) or 0.0
        started = time.monotonic()
        status = probe.get(server.port, f"/spam?n={lines}", timeout=300)
        if not counter.reached.wait(300):
            raise RuntimeError(f"{label}: only {counter.count} of {lines} lines arrived")
        seconds = counter.reached_at - started
        cpu = (proctools.cpu_seconds(server.pid) or 0.0) - cpu_before
        return {"contender": label, "lines": lines, "status": status, "seconds": round(seconds, 4),
                "lines_per_s": round(lines / seconds, 1), "top_process_cpu_s": round(cpu, 3),
                "top_process_cpu_pct": round(100 * cpu / seconds, 1)}


def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(KEY, TITLE)
    lines = ctx.options.relay_lines
    contenders = ["supervisor", "direct"]
    for _, label in stats.interleaved(ctx.options.reps, contenders):
        run_ = _one(ctx, label, lines)
        ctx.progress(f"relay {label:12s} {run_['lines_per_s']:,.0f} lines/s, top process CPU "
                     f"{run_['top_process_cpu_pct']}%")
        result.runs.append(run_)
    rates = {label: stats.median([r["lines_per_s"] for r in result.runs if r["contender"] == label])
             for label in contenders}
    ratio = stats.ratio(rates["supervisor"], rates["direct"])
    ours = [r for r in result.runs if r["contender"] == "supervisor"]
    cpu_pct = stats.median([r["top_process_cpu_pct"] for r in ours])
    per_100k = stats.median([r["top_process_cpu_s"] * 100_000 / r["lines"] for r in ours])
    result.rows = [
        Row(f"lines per second ({lines:,} lines)", "lines/s", rates, ratio=ratio, baseline="direct",
            target=f"≥ {TARGET:g}× direct", passed=None if ratio is None else ratio >= TARGET),
        Row("supervisor CPU while relaying, % of one core", "%", {"supervisor": cpu_pct}),
        Row("supervisor CPU per 100,000 lines", "s", {"supervisor": per_100k}),
    ]
    return result

"""How fast `jarlpm explain` reads a big log, and how much memory it needs (not part of the test run).

Generates a realistic log of ``--lines`` lines (default one million): two
supervisors interleaved, mostly access lines, with starts, a database outage,
pool exhaustion episodes, hangs, crashes and restarts, journald and docker
prefixes, lines of other programs and lines cut short.  Then runs
``python -m supervisor.explain`` on it in a child process and prints lines/s and
its CPU time and the child's peak RSS (``resource.getrusage(RUSAGE_CHILDREN)``); CPU
time is the fairer number on a busy machine.

    .venv/bin/python bench/explain_bench.py             # 1,000,000 lines
    .venv/bin/python bench/explain_bench.py --lines 10000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
START = datetime(2026, 11, 25, 0, 0, tzinfo=UTC).timestamp()
STACKS = [
    "Thread 0x00007f43e05366c0 (most recent call first):",
    '  File "/srv/jarlpm/supervisor/worker.py", line 54 in _read',
    '  File "/usr/lib/python3.11/threading.py", line 982 in run',
    "",
    "Current thread 0x00007f43e1fd5b80 (most recent call first):",
    '  File "/srv/jarlpm/backend/jarlpm/api/reports.py", line 42 in render_pdf',
    '  File "/srv/jarlpm/backend/jarlpm/api/reports.py", line 17 in export_report',
    '  File "/srv/jarlpm/.venv/lib/python3.11/site-packages/fastapi/routing.py", line 381 in run_endpoint_function',
]


class Log:
    """Writes events with a moving clock; some lines get a journald or docker prefix."""

    def __init__(self, out: IO[str], rng: random.Random) -> None:
        self.out = out
        self.rng = rng
        self.clock = START
        self.lines = 0

    def stamp(self) -> str:
        return datetime.fromtimestamp(self.clock, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def event(self, level: str, event: str, source: str, pid: int, **fields: Any) -> None:
        self.clock += self.rng.random() * 0.004
        line = json.dumps({"timestamp": self.stamp(), "level": level, "event": event, "source": source,
                           "pid": pid, **fields})
        roll = self.rng.random()
        if roll < 0.1:
            line = f"{self.stamp()} web-1 jarlpm[{pid}]: {line}"
        elif roll < 0.15:
            line = f"{self.stamp()[:-1]}123456Z {line}"
        elif roll < 0.151:
            line = line[: self.rng.randrange(20, len(line))]
        self.write(line)

    def write(self, line: str) -> None:
        self.out.write(line + "\n")
        self.lines += 1


def supervisor_life(log: Log, sup: int, child: int) -> Iterator[None]:
    """One supervisor's lines, yielded one at a time so two lives can be interleaved."""
    rng = log.rng
    s = lambda level, event, **f: log.event(level, event, "supervisor", sup, **f)  # noqa: E731
    for phase, ms in (("validate_env", 4), ("wait_for_db", 30), ("migrate", 80), ("warm_pool", 120)):
        s("info", "phase.started", phase=phase)
        if phase == "wait_for_db" and rng.random() < 0.5:
            for attempt in range(1, 4):
                s("info", "db.wait.retry", attempt=attempt, delay_s=0.2, remaining_s=60.0,
                  error="connection to server at \"db\", port 5432 failed: Connection refused")
                yield
        s("info", "phase.completed", phase=phase, duration_ms=ms)
        yield
    log.event("info", "child.spawned", "supervisor", child, worker=0)
    log.event("info", "child.ready", "supervisor", child, worker=0, startup_ms=900)
    s("info", "supervisor.ready", workers=1, pids=[child], listen="0.0.0.0:8001", startup_ms=900)
    yield
    while True:
        roll = rng.random()
        if roll < 0.97:
            status = 200 if rng.random() < 0.995 else 503
            log.event("info", "http.access", "server", child, logger="uvicorn.access", client="10.0.0.9:4711",
                      method="GET", path=rng.choice(["/api/epics", "/api/epics/7", "/api/health/ready"]),
                      http_version="1.1", status=status)
        elif roll < 0.975:
            log.event("warning", "server.log", "server", child, logger="jarlpm.api", message="db.unavailable",
                      path="/api/epics", error="connection to server at \"db\", port 5432 failed: Connection refused")
        elif roll < 0.98:
            log.event("error", "db.pool.exhausted", "server", child, pool_size=5, max_overflow=10, checked_out=15,
                      waiting=rng.randrange(1, 20), timeout_s=30,
                      holders=[{"route": "GET /api/epics/{id}/report", "count": 15, "oldest_s": 40}],
                      database={"blocking_pids": [4242]}, diagnosis=rng.choice(["lock_contention", "slow_queries"]),
                      also=["undersized_pool"], hint="end pid 4242: SELECT pg_terminate_backend(4242)")
        elif roll < 0.9802:
            log.event("error", "child.unresponsive", "supervisor", child, worker=0, stalled_s=31.0,
                      heartbeat_timeout_s=30.0, stacks=STACKS)
            log.event("error", "child.exited", "supervisor", child, worker=0, signal="SIGKILL", uptime_s=300.0,
                      was_ready=True, stderr_tail=[], hint="killed by the supervisor after its event loop stalled")
            s("warning", "child.restarting", worker=0, delay_s=0.0, restarts=1, previous_pid=child)
            child += 2
            log.event("info", "child.spawned", "supervisor", child, worker=0)
            log.event("info", "child.ready", "supervisor", child, worker=0, startup_ms=800)
        elif roll < 0.985:
            log.write(f"{log.stamp()} web-1 kernel: [12345.678] eth0: link becomes ready {{ not json")
        else:
            log.event("info", "server.uvicorn", "server", child, logger="uvicorn.error", message="tick")
        yield


def generate(path: Path, lines: int, seed: int = 7) -> int:
    """Write about ``lines`` lines to ``path``; returns the exact count."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as out:
        log = Log(out, rng)
        lives = [supervisor_life(log, 1000, 1001), supervisor_life(log, 2000, 2001)]
        while log.lines < lines:
            next(lives[0] if rng.random() < 0.5 else lives[1])
        return log.lines


def measure(path: Path, as_json: bool) -> dict[str, Any]:
    """Run explain on ``path`` in a child process; wall time and the child's peak RSS."""
    args = [sys.executable, "-m", "supervisor.explain", str(path)] + (["--json"] if as_json else [])
    started = time.perf_counter()
    result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"explain failed ({result.returncode}): {result.stderr}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the only child is explain: its own numbers
    return {"seconds": elapsed, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mib": usage.ru_maxrss / 1024, "output": result.stdout}  # ru_maxrss is KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--keep", metavar="PATH", help="write the generated log here and keep it")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep) if args.keep else Path(tmp) / "bench.log"
        count = generate(path, args.lines)
        size = os.path.getsize(path)
        result = measure(path, as_json=False)
    report = {"lines": count, "bytes": size, "seconds": round(result["seconds"], 3),
              "cpu_s": round(result["cpu_s"], 3), "lines_per_s": round(count / result["seconds"]),
              "lines_per_cpu_s": round(count / max(result["cpu_s"], 1e-6)),
              "peak_rss_mib": round(result["peak_rss_mib"], 1)}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"explain: {count:,} lines ({size / 2**20:.0f} MiB) in {report['seconds']} s = "
              f"{report['lines_per_s']:,} lines/s ({report['cpu_s']} s CPU, {report['lines_per_cpu_s']:,} "
              f"lines per CPU second); peak RSS {report['peak_rss_mib']} MiB")
        print(result["output"].split("\nVerdict", 1)[-1].strip()[:600])
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A small ASGI app that knows nothing of the supervisor, for supervision tests.

/slow?s=N answers after N seconds (in-flight requests on shutdown); /block stalls the
event loop with a blocking sleep (hang detection); /helper starts a grandchild
process (orphan clean-up); /pid says which server process answered, /gc whether it
collects garbage, /import-env what the import saw (variables, a handed-over URL),
/random what its ``random`` module draws (a forked process must not repeat its
siblings'); /spam prints a burst of output lines, /drip lines a few ms apart (an access
log); /daemon starts a helper that double-forks out of its group;
/escape one that also clears its environment (only a cgroup holds it);
/nested prints a line too deep to parse, /progress tens of MiB of tqdm-style output
without a newline.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import shutil
import subprocess
import time

from fastapi import FastAPI

app = FastAPI()


def _environment_at_import() -> dict[str, object]:
    """What this module saw when it was imported (by a fork server: before any fork)."""
    url_file = os.environ.get("DATABASE_URL_FILE")
    readable = False
    if url_file:
        try:
            with open(url_file) as handle:
                readable = handle.read().startswith("postgresql")
        except OSError:
            readable = False
    return {"WORKERS": os.environ.get("WORKERS"), "DATABASE_URL_FILE": url_file, "url_file_readable": readable}


AT_IMPORT = _environment_at_import()


@app.get("/api/health")
async def health() -> dict[str, str]:
    return {"status": "healthy"}


@app.get("/api/health/ready")
async def ready() -> dict[str, str]:
    return {"status": "ready"}


@app.get("/pid")
async def pid() -> dict[str, int]:
    return {"pid": os.getpid()}


@app.get("/import-env")
async def import_env() -> dict[str, object]:
    return AT_IMPORT


@app.get("/gc")
async def collector() -> dict[str, object]:
    """Whether this process collects cyclic garbage, and how many objects it keeps frozen."""
    return {"pid": os.getpid(), "enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}


@app.get("/random")
async def draw() -> dict[str, float]:
    return {"pid": os.getpid(), "random": random.random()}


IN_FLIGHT = {"slow": 0}


@app.get("/slow")
async def slow(s: float = 1.0) -> dict[str, float]:
    IN_FLIGHT["slow"] += 1
    try:
        await asyncio.sleep(s)
    finally:
        IN_FLIGHT["slow"] -= 1
    return {"slept": s}


@app.get("/inflight")
async def inflight() -> dict[str, int]:
    return IN_FLIGHT


def stalled_in_blocking_call(seconds: float) -> None:
    time.sleep(seconds)


@app.get("/block")
async def block(s: float = 60.0) -> dict[str, str]:
    stalled_in_blocking_call(s)
    return {"status": "unblocked"}


@app.get("/helper")
async def helper() -> dict[str, int]:
    # A helper that outlives the request, in its own session like a daemonising tool would.
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    return {"helper_pid": proc.pid}


@app.get("/crash")
async def crash() -> dict[str, str]:
    os._exit(7)


@app.get("/leak")
async def leak() -> dict[str, str]:
    # An app that carelessly logs its configuration: the supervisor must redact it.
    import logging
    import sys

    url = os.environ.get("DATABASE_URL", "")
    print(f"connecting to {url}", flush=True)
    print(f"stderr says {url}", file=sys.stderr, flush=True)
    logging.getLogger("sampleapp").warning("config: %s", url)
    return {"status": "logged"}


@app.get("/spam")
async def spam(lines: int = 1000) -> dict[str, int]:
    # A chatty app: many lines of output at once (the log's reader may be stalled).
    text = "x" * 150
    for i in range(lines):
        print(f"spam {i} {text}", flush=True)
    return {"printed": lines}


@app.get("/drip")
async def drip(lines: int = 200, gap_ms: float = 2.0) -> dict[str, int]:
    # A busy server's access log: one line at a time, a little apart (the relay may batch them).
    for i in range(lines):
        print(f"drip {i}", flush=True)
        await asyncio.sleep(gap_ms / 1000)
    return {"printed": lines}


@app.get("/nested")
async def nested(depth: int = 20000) -> dict[str, int]:
    # One deeply nested JSON line: more than json can parse (RecursionError), under 64 KiB.
    print('{"event": "app.nested", "a": ' + "[" * depth + "]" * depth + "}", flush=True)
    return {"depth": depth}


@app.get("/progress")
def progress(mb: int = 30) -> dict[str, int]:
    # tqdm-style progress: carriage returns, no newline until the end.
    import sys

    step = b"".join(b"\r%3d%%|%s| %8d" % (i % 100, b"#" * (i % 40), i) for i in range(20000))
    for _ in range(mb * 1024 * 1024 // len(step)):
        sys.stderr.buffer.write(step)
    sys.stderr.buffer.write(b"\rprogress done\n")
    sys.stderr.buffer.flush()
    return {"mb": mb}


@app.get("/daemon")
def daemon() -> dict[str, int]:
    # A helper that daemonises: double fork + setsid, so it leaves the server's process
    # group and its parentage (reparented to the subreaper, or to init).
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(write_end, str(os.getpid()).encode())
            os.execvp("sleep", ["sleep", "600"])
        os._exit(0)
    os.close(write_end)
    os.waitpid(middle, 0)
    helper = int(os.read(read_end, 32))
    os.close(read_end)
    return {"helper_pid": helper}


@app.get("/escape")
def escape() -> dict[str, int]:
    # A helper that escapes everything but a cgroup: double fork + setsid, and exec with an
    # empty environment (`env -i`), so not even JARLPM_PROCESS_TAG can find it.
    read_end, write_end = os.pipe()
    sleep = shutil.which("sleep") or "/bin/sleep"
    middle = os.fork()
    if middle == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(write_end, str(os.getpid()).encode())
            os.execve(sleep, ["sleep", "600"], {})
        os._exit(0)
    os.close(write_end)
    os.waitpid(middle, 0)
    helper = int(os.read(read_end, 32))
    os.close(read_end)
    return {"helper_pid": helper}


@app.get("/orphans")
async def orphans() -> dict[str, str]:
    # A shell that backgrounds two short jobs and exits: the jobs become orphans, reparented
    # to the nearest subreaper (the supervisor, or PID 1), which must reap them.
    subprocess.run(["sh", "-c", "sleep 0.3 & sleep 0.3 & exit 0"], check=True)
    return {"status": "orphaned"}

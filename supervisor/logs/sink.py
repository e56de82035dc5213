"""The single writer of the log stream: nobody but its thread ever waits for the reader.

A stalled reader (a stopped journald, a full log driver, a paused ``| less``) once
blocked the relay, then the server's event loop on its own stdout: the API stopped
answering and was killed for it, cycle after cycle (issue #16).  So every line goes
through one FIFO drained by one writer thread, and nothing else blocks:

- server lines have a budget in bytes; beyond it they are dropped and counted (per
  source and per server pid), never waited for;
- supervisor events have their own, much larger budget, so server output can never
  push them out; they are dropped only if even that fills, and counted too;
- ``log.dropped`` with the counts is written first thing once a write succeeds again
  (lines drop only while the writer is blocked, and it looks at the counters as soon
  as that write returns: it does not wait for the next event).

Order is kept: one FIFO, so an event still follows the server lines that explain it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

SERVER_BUFFER_BYTES = 4 * 1024 * 1024
EVENT_BUFFER_LINES = 20000
WRITE_BATCH_BYTES = 256 * 1024
DROP_HINT = ("the log reader stalled or is too slow; check the log shipper, the container's log driver "
             "or journald's rate limits (RateLimitIntervalSec, RateLimitBurst)")

NoticeRenderer = Callable[[dict[str, Any]], str]


def yield_on_wakeup() -> None:
    """Let the calling thread wait for a free core or the next tick instead of preempting on wake-up.

    For the threads that move log lines (the relays, the writer): a server process's
    write wakes them once per batch, and a woken thread of normal policy may preempt the
    thread that woke it, on its core.  That thread is often a server's event loop holding
    its GIL, and every thread of the server then waits for ours (issue #17: throughput
    with access logs vs gunicorn's, whose log has no reader to wake).  ``SCHED_BATCH``
    keeps the thread's share of the CPU and only gives up that wake-up preemption
    (Linux; no privilege needed).  Elsewhere, or if refused, nothing changes.
    """
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is None:
        return
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, policy, os.sched_param(0))  # 0: the calling thread on Linux


class LogSink:
    """One FIFO of rendered lines and the daemon thread that writes them to stdout."""

    def __init__(self, stream: TextIO | None = None, server_bytes: int = SERVER_BUFFER_BYTES,
                 event_lines: int = EVENT_BUFFER_LINES, render_notice: NoticeRenderer | None = None) -> None:
        self._stream = stream
        self._server_budget = server_bytes
        self._event_budget = event_lines
        self._render_notice = render_notice
        self._cond = threading.Condition()
        self._queue: deque[tuple[str, int | None]] = deque()  # (line with "\n", server pid or None)
        self._server_bytes = 0
        self._events = 0
        self._writing = False
        self._dropped: Counter[str] = Counter()
        self._dropped_pids: Counter[int] = Counter()
        self._closed = False
        self._total_dropped = 0
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    # -- producers (never block) ----------------------------------------------------------
    def put_event(self, line: str) -> None:
        """Queue a supervisor event; only an absurd backlog (tens of thousands) drops one."""
        with self._cond:
            if self._events >= self._event_budget:
                self._dropped["supervisor"] += 1
                self._total_dropped += 1
            else:
                self._events += 1
                self._queue.append((line + "\n", None))
            self._cond.notify()

    # The name structlog's end of the chain and older callers use.
    put_nowait = put_event

    def put_server(self, line: str, pid: int) -> None:
        """Queue a server line, or drop and count it when the server budget is spent."""
        self.put_server_lines([line], pid)

    def put_server_lines(self, lines: list[str], pid: int) -> None:
        """``put_server`` for what one read of a process's pipe held: one lock, one wake-up."""
        with self._cond:
            for line in lines:
                size = len(line) + 1
                if self._server_bytes + size > self._server_budget:
                    self._dropped["server"] += 1
                    self._dropped_pids[pid] += 1
                    self._total_dropped += 1
                else:
                    self._server_bytes += size
                    self._queue.append((line + "\n", pid))
            self._cond.notify()

    def set_server_budget(self, server_bytes: int) -> None:
        """LOG_BUFFER_KB, known only once the configuration is validated."""
        with self._cond:
            self._server_budget = server_bytes

    def dropped(self) -> dict[str, int]:
        """Lines dropped and not yet reported, per source."""
        with self._cond:
            return dict(self._dropped)

    def total_dropped(self) -> int:
        """Lines dropped since the start, reported or not."""
        with self._cond:
            return self._total_dropped

    # -- the writer -------------------------------------------------------------------------
    def _run(self) -> None:
        yield_on_wakeup()
        while not self._closed:
            with self._cond:
                # No timer: every put (a drop included) notifies, and a drop happens only while
                # this thread is busy writing, so the notice goes out the moment that write
                # returns.  Idle, the writer sleeps: the supervisor wakes no one at rest.
                self._cond.wait_for(lambda: bool(self._queue or self._dropped or self._closed))
                notice = self._take_notice()
                batch = self._take_batch()
                self._writing = bool(batch or notice)
            if notice or batch:
                # May block for as long as the reader is stalled: only this thread waits.
                self._write(notice + "".join(batch))
            with self._cond:
                self._writing = False
                self._cond.notify_all()

    def _take_notice(self) -> str:
        if not self._dropped:
            return ""
        by_source, self._dropped = dict(self._dropped), Counter()
        by_pid, self._dropped_pids = {str(p): n for p, n in self._dropped_pids.items()}, Counter()
        event: dict[str, Any] = {
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": "warning", "event": "log.dropped", "source": "supervisor", "pid": os.getpid(),
            "message": f"{sum(by_source.values())} log line(s) dropped while the log reader was stalled",
            "dropped": sum(by_source.values()), "by_source": by_source, "hint": DROP_HINT,
        }
        if by_pid:
            event["by_pid"] = by_pid
        render = self._render_notice or json.dumps
        return render(event) + "\n"

    def _take_batch(self) -> list[str]:
        batch: list[str] = []
        size = 0
        while self._queue and size < WRITE_BATCH_BYTES:
            line, pid = self._queue.popleft()
            if pid is None:
                self._events -= 1
            else:
                self._server_bytes -= len(line)
            batch.append(line)
            size += len(line)
        return batch

    def _write(self, text: str) -> None:
        data = text.encode("utf-8", "replace")
        try:
            fd = (self._stream or sys.stdout).fileno()
            while data:
                written = os.write(fd, data)
                data = data[written:]
        except (OSError, ValueError):
            # stdout is gone (reader exited): nothing sensible left to do with logs.
            pass

    def close(self, timeout: float = 5.0) -> None:
        """Stop the writer after its current write (tests: its stream may be closed next)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait (bounded) until everything queued has been written."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._writing or self._dropped:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(min(left, 0.05))

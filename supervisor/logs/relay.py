"""Relay a server process's stdout/stderr into the supervisor's log stream, in order, as JSON.

JSON lines pass through with ``source: server`` and the process's ``pid`` stamped
over whatever they claimed (a server line cannot pose as a supervisor event).  Plain
text is wrapped; a Python traceback becomes one event instead of twenty lines; a
faulthandler stack dump (asked for by the supervisor) is kept aside for
``child.unresponsive`` instead of being printed.

A JSON line that needs nothing but those two stamps is written as the server wrote it,
with them spliced in (``logsetup.VerbatimEvent``), and a server's pipe is read in
batches (``lines.LineSplitter``'s linger): relaying an access line must cost the
server's throughput nothing (issue #17).

No output stops a relay (issue #16): a line is cut at ``lines.MAX_LINE`` bytes with a marker,
``\r``-separated progress output keeps only what a terminal would show (in linear
time), a line that cannot be handled goes out as plain text with one
``log.relay_error``, and a relay that fails anyway restarts in plain-text mode and
says so: if it stopped reading, the server's next write would block or break.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import IO, Any

from supervisor.logs import logsetup, messages
from supervisor.logs.lines import LineSplitter, enlarge_pipe
from supervisor.logs.sink import yield_on_wakeup

_DUMP_HEADER = re.compile(r"^(Current thread|Thread) 0x[0-9a-f]+ .*\(most recent call first\):$")
_DUMP_BODY = re.compile(r"^(  File |  <no Python frame>|  \.\.\.|$)")
TAIL_LINE_CHARS = 1000  # characters of one line kept in stderr_tail
MAX_TRACEBACK_LINES = 400
MAX_DUMP_LINES = 5000
MAX_RESTARTS = 3
# A server process's pipes are read at most this often while it writes (a full read
# excepted): the lines of ~25 ms come in one read, one wake-up of the relay and one of the
# log writer instead of one each per request; a line reaches the log that much later.
SERVER_LINGER_S = 0.025
_TB_CONTINUATION = ("During handling of the above exception", "The above exception was the direct",
                    "Traceback (most recent call last):")


# Event names for what a process wrote, by whose process it is.
_NAMES = {
    "server": {"log": "server.log", "output": "server.output", "traceback": "server.traceback"},
    "supervisor": {"log": "supervisor.log", "output": "supervisor.output",
                   "traceback": "supervisor.traceback"},
}


class StackDump:
    """Thread stacks a process printed on SIGUSR1, collected by the stderr relay."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.last_line_at = 0.0
        self._lock = threading.Lock()

    def add(self, line: str) -> None:
        with self._lock:
            if len(self.lines) < MAX_DUMP_LINES:
                self.lines.append(line[:TAIL_LINE_CHARS])
            self.last_line_at = time.monotonic()

    def take(self) -> list[str]:
        with self._lock:
            lines, self.lines = self.lines, []
        while lines and not lines[-1].strip():
            lines.pop()
        return lines


def passes_as_written(text: str, parsed: dict[str, Any]) -> bool:
    """Whether a server's JSON line can go out as written, with only ``source`` and ``pid`` added.

    It must already have everything a line needs (so stamping adds nothing else), claim
    no ``source`` or ``pid`` (those are overwritten, which splicing cannot do), end with
    its object's brace, and spell its strings plainly: a ``\\u`` or ``\\/`` escape could
    hide a secret from the redaction, which looks at the text, so such a line is
    re-encoded first as before.
    """
    return (text.endswith("}") and "source" not in parsed and "pid" not in parsed
            and "timestamp" in parsed and "level" in parsed and "event" in parsed
            and messages.has_message(parsed) and "\\u" not in text and "\\/" not in text)


def parse_line(text: str) -> dict[str, Any] | None:
    """The JSON object on a line, or None when the line is not one."""
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: a deeply nested line (issue #16)
        return None
    return value if isinstance(value, dict) else None


class StreamRelay:
    """Reads one pipe of one process in a thread and emits its lines through the log sink."""

    def __init__(self, pipe: IO[bytes], pid: int, stream: str,
                 tail: deque[str] | None = None, dump: StackDump | None = None,
                 emit: Callable[[dict[str, Any]], None] = logsetup.relay_line,
                 source: str = "server",
                 on_error: Callable[[str, dict[str, Any]], None] | None = None,
                 linger: float = 0.0) -> None:
        self.pipe = pipe
        self.linger = linger
        self.source = source
        self.pid = pid
        self.stream = stream
        self.tail = tail
        self.dump = dump
        self.emit = emit
        self._emit_one = emit
        self.on_error = on_error or _log_relay_trouble
        self.plain = False  # after a failure of our own: every line as plain text
        self._error_reported = False
        self._backlog: deque[bytes] = deque()
        self._traceback: list[str] = []
        self._in_dump = False
        self.thread = threading.Thread(target=self._run, name=f"relay-{pid}-{stream}", daemon=True)

    def start(self) -> None:
        if self.linger:
            enlarge_pipe(self.pipe)
        self.thread.start()

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)

    def _run(self) -> None:
        yield_on_wakeup()
        chunks = LineSplitter(self.pipe, linger=self.linger)
        restarts = 0
        try:
            while True:
                try:
                    self._pump(chunks)
                    return
                except (OSError, ValueError):
                    return  # the pipe was closed under us: the process is gone
                except Exception as exc:  # noqa: BLE001 - a bug of ours must not stop the reading
                    restarts += 1
                    self.plain = True
                    self._report("log.relay_restarted", exc, restarts=restarts)
                    if restarts >= MAX_RESTARTS:
                        # Keep the pipe drained so the process never blocks or breaks on it.
                        self._report("log.relay_failed", exc, restarts=restarts)
                        for _ in chunks:
                            pass
                        return
        finally:
            self.emit = self._emit_one
            self._flush_traceback()
            with contextlib.suppress(OSError):
                self.pipe.close()

    def _pump(self, chunks: Iterable[list[bytes]]) -> None:
        batching = self._emit_one is logsetup.relay_line
        for chunk in itertools.chain([list(self._backlog)], chunks):
            # Lines not yet handled when a failure restarted the relay are handled first.
            self._backlog = deque(chunk)
            if not batching:
                while self._backlog:
                    self._handle(self._backlog.popleft())
                continue
            # Everything the process wrote since the last read goes out in one go: the
            # relay must keep up with a chatty server.
            batch: list[dict[str, Any]] = []
            self.emit = batch.append
            try:
                while self._backlog:
                    self._handle(self._backlog.popleft())
            finally:
                self.emit = self._emit_one
            logsetup.relay_lines(batch)

    def _handle(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace")
        if self.plain:
            self._plain_line(text)
            return
        try:
            self._line(text)
        except Exception as exc:  # noqa: BLE001 - an app's output, however odd, must not end the relay
            if not self._error_reported:
                self._error_reported = True
                self._report("log.relay_error", exc)
            self._traceback.clear()
            self._plain_line(text)

    def _plain_line(self, text: str) -> None:
        if text.strip():
            level = "info" if self.stream == "stdout" else "warning"
            self.emit(self._stamp({"level": level, "event": _NAMES[self.source]["output"],
                                   "stream": self.stream, "message": text}))

    def _report(self, event: str, exc: BaseException, **fields: Any) -> None:
        self.on_error(event, {"pid": self.pid, "stream": self.stream, "error": repr(exc)[:500], **fields})

    def _stamp(self, event: dict[str, Any]) -> dict[str, Any]:
        if "timestamp" not in event:
            event["timestamp"] = logsetup.utc_timestamp()
        event.setdefault("level", "info")
        event.setdefault("event", _NAMES[self.source]["log"])
        messages.ensure_message(event)
        if self.source == "supervisor":
            # The supervisor's own phase runner: its events already say who they are.
            event.setdefault("source", "supervisor")
            event.setdefault("pid", self.pid)
            return event
        event["source"] = "server"
        event["pid"] = self.pid
        return event

    def _line(self, text: str) -> None:
        if self._capture_dump(text):
            return
        # A chained exception's "During handling of the above exception…" header opens the
        # next part, rather than becoming a stray server.output line between two tracebacks.
        if self._traceback or text.startswith(_TB_CONTINUATION):
            self._collect_traceback(text)
            return
        if self.tail is not None:
            self.tail.append(text[:TAIL_LINE_CHARS])
        parsed = parse_line(text)
        if parsed is not None:
            if self.source == "server" and passes_as_written(text, parsed):
                verbatim = logsetup.VerbatimEvent(parsed, text)
                verbatim["source"] = "server"
                verbatim["pid"] = self.pid
                self.emit(verbatim)
                return
            self.emit(self._stamp(parsed))
            return
        if not text.strip():
            return
        level = "info" if self.stream == "stdout" else "warning"
        self.emit(self._stamp({"level": level, "event": _NAMES[self.source]["output"], "stream": self.stream,
                               "message": text}))

    def _capture_dump(self, text: str) -> bool:
        if self.dump is None:
            return False
        if _DUMP_HEADER.match(text):
            self._in_dump = True
        elif self._in_dump and not _DUMP_BODY.match(text):
            self._in_dump = False
        if self._in_dump:
            self.dump.add(text)
        return self._in_dump

    def _collect_traceback(self, text: str) -> None:
        self._traceback.append(text)
        if self.tail is not None:
            self.tail.append(text[:TAIL_LINE_CHARS])
        is_body = text.startswith((" ", "\t")) or not text.strip() or text.startswith(_TB_CONTINUATION)
        if not is_body or len(self._traceback) >= MAX_TRACEBACK_LINES:
            self._flush_traceback()

    def _flush_traceback(self) -> None:
        if not self._traceback:
            return
        lines, self._traceback = self._traceback, []
        self.emit(self._stamp({"level": "error", "event": _NAMES[self.source]["traceback"], "stream": self.stream,
                               "message": lines[-1], "traceback": "\n".join(lines)}))


def _log_relay_trouble(event: str, fields: dict[str, Any]) -> None:
    hint = _HINTS.get(event, "")
    logsetup.get_logger().error(event, hint=hint, **fields)


_HINTS = {
    "log.relay_error": "a line of the process's output could not be handled and was passed on as plain "
                       "text; the relay goes on",
    "log.relay_restarted": "a bug in the supervisor's relay: its lines now pass as plain text; please report it",
    "log.relay_failed": "a bug in the supervisor's relay: this stream is still read (the process never "
                        "blocks on it) but discarded until the process is replaced; please report it",
}

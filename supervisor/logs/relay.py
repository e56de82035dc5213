"""Relay a server process's stdout/stderr into the supervisor's log stream, in order, as JSON.

JSON lines pass through with ``source: server`` and the process's ``pid`` stamped
over whatever they claimed (a server line cannot pose as a supervisor event).  Plain
text is wrapped; a Python traceback becomes one event instead of twenty lines; a
faulthandler stack dump (asked for by the supervisor) is kept aside for
``child.unresponsive`` instead of being printed.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import IO, Any

from supervisor.logs import logsetup, messages

_DUMP_HEADER = re.compile(r"^(Current thread|Thread) 0x[0-9a-f]+ .*\(most recent call first\):$")
_DUMP_BODY = re.compile(r"^(  File |  <no Python frame>|  \.\.\.|$)")
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
            self.lines.append(line)
            self.last_line_at = time.monotonic()

    def take(self) -> list[str]:
        with self._lock:
            lines, self.lines = self.lines, []
        while lines and not lines[-1].strip():
            lines.pop()
        return lines


def parse_line(text: str) -> dict[str, Any] | None:
    """The JSON object on a line, or None when the line is not one."""
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class StreamRelay:
    """Reads one pipe of one process in a thread and emits its lines through the log sink."""

    def __init__(self, pipe: IO[bytes], pid: int, stream: str,
                 tail: deque[str] | None = None, dump: StackDump | None = None,
                 emit: Callable[[dict[str, Any]], None] = logsetup.relay_line,
                 source: str = "server") -> None:
        self.pipe = pipe
        self.source = source
        self.pid = pid
        self.stream = stream
        self.tail = tail
        self.dump = dump
        self.emit = emit
        self._traceback: list[str] = []
        self._in_dump = False
        self.thread = threading.Thread(target=self._run, name=f"relay-{pid}-{stream}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)

    def _run(self) -> None:
        batching = self.emit is logsetup.relay_line
        try:
            for chunk in self._chunks():
                if batching:
                    # Everything the process wrote since the last read goes out as one queue
                    # item and one write: the relay must keep up with a chatty server.
                    batch: list[dict[str, Any]] = []
                    self.emit = batch.append
                    for raw in chunk:
                        self._line(raw.decode("utf-8", "replace").rstrip("\r"))
                    self.emit = logsetup.relay_line
                    logsetup.relay_lines(batch)
                else:
                    for raw in chunk:
                        self._line(raw.decode("utf-8", "replace").rstrip("\r"))
        except (OSError, ValueError):
            pass
        finally:
            if batching:
                self.emit = logsetup.relay_line
            self._flush_traceback()
            try:
                self.pipe.close()
            except OSError:
                pass

    def _chunks(self) -> Iterator[list[bytes]]:
        """Complete lines as they arrive, in groups of whatever one read returned."""
        read = getattr(self.pipe, "read1", self.pipe.read)
        pending = b""
        while True:
            data = read(65536)
            if not data:
                if pending:
                    yield [pending]
                return
            pending += data
            if b"\n" not in data:
                continue
            *lines, pending = pending.split(b"\n")
            yield lines

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
            self.tail.append(text)
        parsed = parse_line(text)
        if parsed is not None:
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
            self.tail.append(text)
        is_body = text.startswith((" ", "\t")) or not text.strip() or text.startswith(_TB_CONTINUATION)
        if not is_body:
            self._flush_traceback()

    def _flush_traceback(self) -> None:
        if not self._traceback:
            return
        lines, self._traceback = self._traceback, []
        self.emit(self._stamp({"level": "error", "event": _NAMES[self.source]["traceback"], "stream": self.stream,
                               "message": lines[-1], "traceback": "\n".join(lines)}))

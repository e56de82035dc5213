"""One stream of structured log lines for the supervisor and its server processes.

Every line goes through ``LogSink``: a bounded queue drained by one writer thread,
so a slow reader of stdout never stalls the supervisor's loop.  Supervisor events
are dropped (and counted) when the queue is full; relayed server lines wait instead,
which slows only the server that produced them, as writing to a pipe directly would.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

import structlog

from supervisor.contract import dburl
from supervisor.logs import journal, messages

EventDict = MutableMapping[str, Any]
Renderer = Callable[[EventDict], str]

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


def utc_timestamp() -> str:
    """ISO 8601 in UTC with milliseconds, the same form on every line."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def redact_value(value: Any) -> Any:
    """Redact secrets in strings, recursively through lists and dicts."""
    if isinstance(value, str):
        return dburl.redact(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value


def _redact_processor(_logger: Any, _name: str, event_dict: EventDict) -> EventDict:
    for key, value in list(event_dict.items()):
        event_dict[key] = redact_value(value)
    return event_dict


def _json_default(value: Any) -> Any:
    return str(value)


_ENCODER = json.JSONEncoder(default=_json_default, ensure_ascii=False)
_HEAD = ("timestamp", "level", "event", "message", "source", "pid")


def json_renderer(event_dict: EventDict) -> str:
    """One compact JSON object; key order: timestamp, level, event, message, source, pid, the rest."""
    head = {k: event_dict[k] for k in _HEAD if k in event_dict}
    head.update({k: v for k, v in event_dict.items() if k not in head})
    return _ENCODER.encode(head)


def console_renderer(colors: bool) -> Renderer:
    """structlog's human renderer, keeping our own timestamp and level keys."""
    dev = structlog.dev.ConsoleRenderer(colors=colors, pad_event_to=28)

    def render(event_dict: EventDict) -> str:
        event_dict = dict(event_dict)
        src = event_dict.pop("source", "")
        pid = event_dict.pop("pid", "")
        if src == "supervisor" and pid != os.getpid():
            # A child.* event: its pid is the server process it is about, not ours.
            event_dict["pid"] = pid
            pid = os.getpid()
        event_dict["src"] = f"{src}[{pid}]"
        return str(dev(None, "", event_dict))

    return render


class LogSink:
    """The single writer of stdout: a bounded queue and a daemon thread."""

    def __init__(self, stream: TextIO | None = None, maxsize: int = 10000) -> None:
        self._stream = stream
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=maxsize)
        self._dropped = 0
        self._dropped_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    def _fd(self) -> int:
        stream = self._stream or sys.stdout
        return stream.fileno()

    def _run(self) -> None:
        while True:
            line = self._queue.get()
            if line is None:
                self._queue.task_done()
                return
            batch = [line]
            # Drain what is already queued so a burst costs one write.
            while len(batch) < 512:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put_nowait(None)
                    self._queue.task_done()
                    break
                batch.append(nxt)
            self._write("".join(batch))
            for _ in batch:
                self._queue.task_done()

    def _write(self, text: str) -> None:
        data = text.encode("utf-8", "replace")
        try:
            fd = self._fd()
            while data:
                written = os.write(fd, data)
                data = data[written:]
        except (OSError, ValueError):
            # stdout is gone (reader exited): nothing sensible left to do with logs.
            pass

    def put_nowait(self, line: str) -> None:
        """Queue a supervisor line; drop and count it if the reader has fallen far behind."""
        with self._dropped_lock:
            dropped, self._dropped = self._dropped, 0
        if dropped:
            notice = LogRuntime.render(messages.ensure_message(
                {"timestamp": utc_timestamp(), "level": "warning", "event": "log.dropped",
                 "source": "supervisor", "pid": os.getpid(), "dropped": dropped,
                 "hint": "the log reader is too slow; check the log shipper or journald rate limits"}
            ))
            try:
                self._queue.put_nowait(notice + "\n")
                dropped = 0
            except queue.Full:
                pass
        try:
            self._queue.put_nowait(line + "\n")
        except queue.Full:
            dropped += 1
        if dropped:
            with self._dropped_lock:
                self._dropped += dropped

    def put(self, line: str, timeout: float | None = None) -> None:
        """Queue a relayed server line, waiting for room (back-pressure on that server only)."""
        try:
            self._queue.put(line + "\n", timeout=timeout)
        except queue.Full:
            with self._dropped_lock:
                self._dropped += 1

    def flush(self, timeout: float = 5.0) -> None:
        """Wait (bounded) until everything queued has been written."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)


class _SinkLogger:
    """The structlog 'logger' at the end of the chain: hands the rendered line to the sink."""

    def __init__(self, sink: LogSink) -> None:
        self._sink = sink

    def msg(self, message: str) -> None:
        self._sink.put_nowait(message)

    info = debug = warning = error = critical = exception = msg


class LogRuntime:
    """What the rest of the supervisor needs from logging: the sink and the renderer."""

    sink: LogSink | None = None
    render: Renderer = staticmethod(json_renderer)
    level: int = 20
    pid: int | None = None  # the phase runner logs with the supervisor's pid


def _add_common(_logger: Any, method: str, event_dict: EventDict) -> EventDict:
    event_dict.setdefault("timestamp", utc_timestamp())
    level = "warning" if method == "warn" else ("error" if method == "exception" else method)
    event_dict["level"] = event_dict.get("level", level)
    event_dict["source"] = "supervisor"
    event_dict.setdefault("pid", LogRuntime.pid or os.getpid())
    return event_dict


def _add_message(_logger: Any, _name: str, event_dict: EventDict) -> EventDict:
    messages.ensure_message(event_dict)  # type: ignore[arg-type]
    return event_dict


def journal_renderer(render: Renderer) -> Renderer:
    """``render`` behind the line's syslog priority prefix (``<3>`` for an error, …)."""

    def prefixed(event_dict: EventDict) -> str:
        return journal.prefix(event_dict.get("level")) + render(event_dict)

    return prefixed


def _final_render(_logger: Any, _name: str, event_dict: EventDict) -> str:
    return LogRuntime.render(event_dict)


def _is_journal(stream: TextIO) -> bool:
    try:
        return journal.stream_is_journal(os.environ, stream.fileno())
    except (OSError, ValueError):  # a stream without a descriptor (io.UnsupportedOperation)
        return False


def configure(log_format: str = "json", log_level: str = "info", stream: TextIO | None = None,
              pid: int | None = None) -> LogSink:
    """Configure structlog for the supervisor process; returns the sink (call ``flush`` at exit)."""
    if LogRuntime.sink is None:
        LogRuntime.sink = LogSink(stream)
    colors = log_format == "console" and (stream or sys.stdout).isatty()
    LogRuntime.render = json_renderer if log_format == "json" else console_renderer(colors)
    if _is_journal(stream or sys.stdout):
        LogRuntime.render = journal_renderer(LogRuntime.render)
    LogRuntime.level = _LEVELS.get(log_level, 20)
    if pid is not None:
        LogRuntime.pid = pid
    sink = LogRuntime.sink
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _add_common,
            _add_message,
            _redact_processor,
            _final_render,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LogRuntime.level),
        logger_factory=lambda *args: _SinkLogger(sink),
        cache_logger_on_first_use=False,
    )
    return sink


def get_logger() -> Any:
    return structlog.get_logger()


def relay_line(event_dict: EventDict, block: bool = True) -> None:
    """Emit an already-built server event (stamped by the caller) through the sink."""
    sink = LogRuntime.sink
    if sink is None:
        return
    level = _LEVELS.get(str(event_dict.get("level", "info")), 20)
    if level < LogRuntime.level:
        return
    # One pass over the rendered line instead of one per field: relaying is the hot path.
    line = dburl.redact(LogRuntime.render(event_dict))
    if block:
        sink.put(line, timeout=None)
    else:
        sink.put_nowait(line)


def relay_lines(events: Sequence[EventDict]) -> None:
    """Emit a batch of server events as one queue item (waiting for room: back-pressure)."""
    sink = LogRuntime.sink
    if sink is None or not events:
        return
    render, threshold = LogRuntime.render, LogRuntime.level
    lines = [dburl.redact(render(e)) for e in events
             if _LEVELS.get(str(e.get("level", "info")), 20) >= threshold]
    if lines:
        sink.put("\n".join(lines), timeout=None)


def flush(timeout: float = 5.0) -> None:
    if LogRuntime.sink is not None:
        LogRuntime.sink.flush(timeout)

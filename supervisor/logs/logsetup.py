"""One stream of structured log lines for the supervisor and its server processes.

Every line goes through ``sink.LogSink``: one FIFO drained by one writer thread, so
neither the supervisor's loop nor a server process ever waits for the reader of
stdout; server lines beyond a bounded buffer are dropped and counted instead, and
supervisor events have a budget of their own (see ``sink``).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from supervisor.contract import dburl
from supervisor.logs import journal, messages
from supervisor.logs.sink import LogSink

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
    import structlog.dev  # only for people at a terminal: see ``EventLogger`` for why it is not at the top

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


class VerbatimEvent(dict[str, Any]):
    """A server's JSON line as it wrote it (``text``), and its fields as parsed and stamped.

    The relay hands these on when the line needs nothing but ``source`` and ``pid``:
    with JSON output the line is then written as it came, those two spliced in
    (``splice_stamps``), instead of being re-encoded: that was most of the relay's
    work per access line (issue #17).  Anything else (console output) renders the fields.
    """

    __slots__ = ("text",)

    def __init__(self, fields: Mapping[str, Any], text: str) -> None:
        super().__init__(fields)
        self.text = text


def splice_stamps(event: VerbatimEvent) -> str:
    """The server's line with ``source`` and ``pid`` added before its closing brace, byte for byte otherwise."""
    return f'{event.text[:-1]}, "source": "{event["source"]}", "pid": {int(event["pid"])}}}'


VerbatimRenderer = Callable[[VerbatimEvent], str]


class LogRuntime:
    """What the rest of the supervisor needs from logging: the sink and the renderer."""

    sink: LogSink | None = None
    render: Renderer = staticmethod(json_renderer)
    # How a VerbatimEvent is written: spliced (JSON output), or None to render its fields.
    verbatim: VerbatimRenderer | None = staticmethod(splice_stamps)
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


def journal_verbatim(event: VerbatimEvent) -> str:
    """``splice_stamps`` behind the syslog priority prefix, as ``journal_renderer`` does for rendered lines."""
    return journal.prefix(event.get("level")) + splice_stamps(event)


def _is_journal(stream: TextIO) -> bool:
    try:
        return journal.stream_is_journal(os.environ, stream.fileno())
    except (OSError, ValueError):  # a stream without a descriptor (io.UnsupportedOperation)
        return False


def configure(log_format: str = "json", log_level: str = "info", stream: TextIO | None = None,
              pid: int | None = None, buffer_kb: int | None = None) -> LogSink:
    """Configure the supervisor process's logging (``EventLogger``); returns the sink (call ``flush`` at exit)."""
    if LogRuntime.sink is None:
        LogRuntime.sink = LogSink(stream, render_notice=lambda event: LogRuntime.render(event))
    if buffer_kb is not None:
        LogRuntime.sink.set_server_budget(buffer_kb * 1024)
    colors = log_format == "console" and (stream or sys.stdout).isatty()
    LogRuntime.render = json_renderer if log_format == "json" else console_renderer(colors)
    LogRuntime.verbatim = splice_stamps if log_format == "json" else None
    if _is_journal(stream or sys.stdout):
        LogRuntime.render = journal_renderer(LogRuntime.render)
        LogRuntime.verbatim = journal_verbatim if log_format == "json" else None
    LogRuntime.level = _LEVELS.get(log_level, 20)
    if pid is not None:
        LogRuntime.pid = pid
    return LogRuntime.sink


_CHAIN = (_add_common, _add_message, _redact_processor)


class EventLogger:
    """The supervisor's logger: ``log.info("event", key=value)``, structlog's calling convention.

    Not structlog itself: importing the ``structlog`` package (``structlog.dev``, ``rich``
    when installed, ``asyncio`` through ``structlog.stdlib``) took about 90 ms before the
    supervisor could spawn its first server process, and that is start-up time every
    deployment pays (issue #17).  The supervisor needs one fixed chain, configured once:
    stamp (``_add_common``), message, redaction, render, the sink.  The chain and the
    level are read on every call, so a logger made before ``configure`` follows it.
    """

    __slots__ = ("_context",)

    def __init__(self, context: Mapping[str, Any] | None = None) -> None:
        self._context = dict(context or {})

    def bind(self, **values: Any) -> EventLogger:
        """A logger that adds ``values`` to every event (``migrate``'s ``command=``)."""
        return EventLogger({**self._context, **values})

    def _emit(self, method: str, event: str, values: dict[str, Any]) -> None:
        if _LEVELS[method] < LogRuntime.level or LogRuntime.sink is None:
            return
        event_dict: EventDict = {**self._context, **values, "event": event}
        for processor in _CHAIN:
            event_dict = processor(None, method, event_dict)
        LogRuntime.sink.put_nowait(LogRuntime.render(event_dict))

    def debug(self, event: str, **values: Any) -> None:
        self._emit("debug", event, values)

    def info(self, event: str, **values: Any) -> None:
        self._emit("info", event, values)

    def warning(self, event: str, **values: Any) -> None:
        self._emit("warning", event, values)

    def error(self, event: str, **values: Any) -> None:
        self._emit("error", event, values)

    def critical(self, event: str, **values: Any) -> None:
        self._emit("critical", event, values)


def get_logger() -> EventLogger:
    return EventLogger()


# A relayed line of output is cut at 64 KiB (``lines.MAX_LINE``); escaping can still
# multiply it (a control character is six bytes of JSON), so the rendered line is bounded too.
MAX_RENDERED = 256 * 1024


def _bounded(line: str, event_dict: EventDict) -> str:
    if len(line) <= MAX_RENDERED:
        return line
    head = {k: event_dict[k] for k in _HEAD if k in event_dict}
    return LogRuntime.render({**head, "message": line[: MAX_RENDERED // 8] + " …[cut]",
                              "truncated_chars": len(line)})


def _relayed(event_dict: EventDict) -> str:
    """The line for a relayed event: spliced when it came verbatim and the output is JSON, else rendered.

    Redacted in one pass over the line instead of one per field: relaying is the hot path.
    """
    verbatim = LogRuntime.verbatim
    if verbatim is not None and isinstance(event_dict, VerbatimEvent):
        line = verbatim(event_dict)
    else:
        line = LogRuntime.render(event_dict)
    return _bounded(dburl.redact(line), event_dict)


def relay_line(event_dict: EventDict) -> None:
    """Emit an already-built event (stamped by the caller) through the sink, never waiting.

    A server's line is dropped (and counted) when the server budget is spent; a line
    that is a supervisor event (the phase process's) goes in with the events.
    """
    sink = LogRuntime.sink
    if sink is None:
        return
    level = _LEVELS.get(str(event_dict.get("level", "info")), 20)
    if level < LogRuntime.level:
        return
    line = _relayed(event_dict)
    if event_dict.get("source") == "server":
        sink.put_server(line, int(event_dict.get("pid") or 0))
    else:
        sink.put_event(line)


def relay_lines(events: Sequence[EventDict]) -> None:
    """Emit a batch of one server process's events; each is dropped if the server budget is spent."""
    sink = LogRuntime.sink
    if sink is None or not events:
        return
    threshold = LogRuntime.level
    lines = [_relayed(e) for e in events if _LEVELS.get(str(e.get("level", "info")), 20) >= threshold]
    if lines:
        sink.put_server_lines(lines, int(events[0].get("pid") or 0))


def flush(timeout: float = 5.0) -> None:
    if LogRuntime.sink is not None:
        LogRuntime.sink.flush(timeout)

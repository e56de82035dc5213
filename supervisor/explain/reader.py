"""Turn raw log lines (ours, wrapped by journald or docker, cut short, or someone else's) into events.

An event is the line's JSON object with two keys added: ``_ts`` (seconds since the
epoch, or None when the line carries no time) and ``_n`` (its line number).  The
reader streams: it holds one line at a time, and a line longer than ``MAX_LINE``
is read in pieces (the first piece is salvaged like any truncated line).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from supervisor.explain import fmt
from supervisor.explain.envelope import (
    JSON,
    KUBECTL,
    RAW,
    Envelopes,
    merged_origin,
)
from supervisor.explain.fields import sanitise
from supervisor.explain.times import (
    BadTime,
    parse_any,
    parse_timestamp,
    parse_when,
)

__all__ = ["BadTime", "Event", "EventReader", "ReadStats", "parse_line", "parse_timestamp", "parse_when",
           "read_lines"]

Event = dict[str, Any]

MAX_LINE = 1 << 20  # characters; a longer line is read in pieces, so one runaway line cannot exhaust memory

_decoder = json.JSONDecoder()
_PREFIX_TIME = re.compile(r"\s*(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)")
# Journald and `docker logs` cut long lines; the keys explain needs most are written first.  A number
# must be followed by a delimiter: 12 cut from 1234 is not a pid.
_SALVAGE = re.compile(r'"([a-z_]+)"\s*:\s*("(?:[^"\\]|\\.)*"'
                      r'|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?=[,}\]\s])|true|false|null)')
# Access lines are most of a busy log; this is their exact form as the supervisor writes them
# (a prefix, then the object), read without a JSON parse.  Anything else takes the general path, and so
# does a line starting with "[": kubectl's --prefix names the pod, which the general path keeps.
_ACCESS = re.compile(
    r'(?:[^{\[][^{]*)?\{"timestamp": "([^"\\]*)", "level": "([a-z]+)", "event": "http\.access", '
    r'"source": "([a-z]+)", "pid": (\d{1,9}), "logger": "uvicorn\.access", "client": "[^"\\]*", '
    r'"method": "([A-Z]{1,10})", "path": "([^"\\]*)", "http_version": "[^"\\]*", '
    r'"status": (\d{3})\}\s*$')
# A line of LOG_FORMAT=console: "2026-11-25T00:53:04.491Z [info     ] phase.started   phase=…".
_CONSOLE = re.compile(r"\[(?:debug|info|warning|error|critical)\s*\] [a-z_]+\.[a-z_.]+")
_DOTTED = re.compile(r"^[a-z_]+(?:\.[a-z_]+)+$")


@dataclass
class ReadStats:
    """What the reader saw, for the summary line and to explain an empty timeline."""

    lines: int = 0
    events: int = 0
    truncated: int = 0
    foreign_json: int = 0  # JSON objects that are not log events of ours
    other: int = 0  # lines of other programs, blank lines, garbage
    outside_window: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    sources: dict[str, int] = field(default_factory=dict)
    envelopes: dict[str, int] = field(default_factory=dict)  # events found inside each kind of envelope
    envelope_only: int = 0  # lines that only carry an envelope's fields (journal export, Docker pieces)
    shapes: dict[str, int] = field(default_factory=dict)  # lines without an event of ours, by what they looked like
    stopped: str | None = None  # why reading stopped before the end of the input, when it did


def _decode_at(line: str, start: int) -> Any:
    try:
        return _decoder.raw_decode(line, start)[0]
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return None


def _salvage(text: str) -> Event | None:
    """The scalar keys of a JSON object cut mid-way; None unless an ``event`` name survived."""
    found: Event = {}
    for key, raw in _SALVAGE.findall(text):
        if key not in found:
            try:
                found[key] = json.loads(raw)
            except ValueError:
                continue
    if not isinstance(found.get("event"), str):
        return None
    found["_truncated"] = True
    return found


def _normalise(obj: Event) -> Event:
    # Server-side stdlib records put the event name in the message (logger.warning("db.unavailable")).
    if obj.get("event") == "server.log":
        message = obj.get("message")
        if isinstance(message, str) and _DOTTED.match(message):
            obj["event"] = message
    pid = obj.get("pid")
    if isinstance(pid, str):
        obj["pid"] = int(pid) if pid.isdigit() and len(pid) < 10 else None
    sanitise(obj)
    obj.setdefault("pid", None)
    if obj.get("source") is None:
        obj["source"] = "unknown"
    return obj


def _fast_access(line: str) -> Event | None:
    match = _ACCESS.match(line)
    if match is None:
        return None
    timestamp, level, source, pid, method, path, status = match.groups()
    ts = parse_timestamp(timestamp)
    if ts is None:
        return None
    return {"timestamp": timestamp, "level": level, "event": "http.access", "source": source, "pid": int(pid),
            "method": method, "path": path, "status": int(status), "_ts": ts}


def parse_line(line: str, envelopes: Envelopes | None = None) -> tuple[str, Event | None]:
    """Classify one line: ("event", e), ("truncated", e), ("foreign", None), ("envelope", None) or ("other", None).

    "envelope" is a line that belongs to an envelope and holds no line of its own
    (a journal export field, a piece of a long Docker line).  ``envelopes`` keeps
    what such multi-line envelopes need between calls; one per input.
    """
    if '"http.access"' in line:  # most lines of a busy log, raw or after a time or host prefix
        event = _fast_access(line)
        if event is not None:
            return "event", event
    if line.startswith('{"timestamp"'):  # the supervisor's own line, as written: no envelope to open
        return _parse_text(line)
    opened = (envelopes if envelopes is not None else Envelopes()).open(line)
    if opened is None:
        return "envelope", None
    if opened.text is not None:
        kind, event = _parse_text(opened.text, opened.when)
    elif opened.ours:
        assert opened.obj is not None
        kind, event = "event", _from_object(opened.obj, opened.when)
    else:
        return "foreign", None
    if event is not None:
        if opened.origin is not None:
            event["_origin"] = opened.origin
        if opened.via != RAW:
            event["_via"] = opened.via
    return kind, event


def _parse_text(line: str, fallback: object = None) -> tuple[str, Event | None]:
    """A line holding our object, perhaps after a prefix (a time, a host, a unit), perhaps cut short."""
    if '"http.access"' in line:
        event = _fast_access(line)
        if event is not None:
            return "event", event
    start = line.find("{")
    if start < 0:
        return "other", None
    obj = _decode_at(line, start)
    if obj is None:
        # A brace in a prefix ("app{1}: {...}") is not the object; a prefix has no quotes.
        nxt = line.find("{", start + 1)
        while obj is None and 0 < nxt < 200 and '"' not in line[start:nxt]:
            start, obj = nxt, _decode_at(line, nxt)
            nxt = line.find("{", nxt + 1)
        if obj is None:
            start = line.find("{")
    kind = "event"
    if obj is None:
        obj = _salvage(line[start:])
        kind = "truncated"
        if obj is None:
            return "other", None
    if not isinstance(obj, dict) or not isinstance(obj.get("event"), str):
        return "foreign", None
    if parse_timestamp(obj.get("timestamp")) is None:
        match = _PREFIX_TIME.match(line, 0, start)
        if match:
            obj["timestamp"] = match.group(1)
    origin = merged_origin(obj)
    if origin is not None:
        obj["_origin"] = origin
    return kind, _from_object(obj, fallback)


def _from_object(obj: Event, fallback: object) -> Event:
    """Our event with its time (its own, else the envelope's ``fallback``, as written) as ``_ts``."""
    ts = parse_timestamp(obj.get("timestamp"))
    if ts is None and fallback is not None:
        ts = parse_any(fallback)
        if ts is not None:
            obj["timestamp"] = fmt.timestamp(ts)
    obj["_ts"] = ts
    return _normalise(obj)


def read_lines(stream: IO[bytes], chunk: int = 1 << 20) -> Iterator[str]:
    """Decoded lines (invalid UTF-8 replaced), at most ``MAX_LINE`` characters each.

    Reads in chunks and splits in C: per-line ``readline`` calls cost more than the
    parsing of a short line.  A longer line comes out in ``MAX_LINE`` pieces.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    # read1: at most one read underneath, so a gzip file cut short yields what came before the cut.
    read = getattr(stream, "read1", stream.read)
    rest = ""
    while True:
        data = read(chunk)
        text = rest + decoder.decode(data, final=not data)
        lines = text.split("\n")
        rest = lines.pop()
        for line in lines:
            if len(line) > MAX_LINE:
                yield from _pieces(line)
            else:
                yield line[:-1] if line.endswith("\r") else line
        if len(rest) > MAX_LINE:
            *whole, rest = _pieces(rest)
            yield from whole
        if not data:
            break
    if rest:
        yield rest[:-1] if rest.endswith("\r") else rest


def _pieces(line: str) -> list[str]:
    return [line[i:i + MAX_LINE] for i in range(0, len(line), MAX_LINE)]


class EventReader:
    """Streams events out of lines, keeping counts in ``stats`` and honouring a time window."""

    def __init__(self, since: float | None = None, until: float | None = None) -> None:
        self.since = since
        self.until = until
        self.stats = ReadStats()

    def events(self, lines: Iterable[str]) -> Iterator[Event]:
        # One loop, few attribute look-ups: this runs once per line of a million-line log.
        stats = self.stats
        since = float("-inf") if self.since is None else self.since
        until = float("inf") if self.until is None else self.until
        sources = stats.sources
        wrapped = stats.envelopes
        envelopes = Envelopes()
        last_ts: float | None = None
        first_ts, max_ts = float("inf"), float("-inf")
        number = 0
        try:
            for number, line in enumerate(lines, 1):  # noqa: B007 (number is read after the loop)
                kind, event = parse_line(line, envelopes)
                if event is None:
                    self._skipped(kind, line, envelopes)
                    continue
                if "_via" in event:
                    via = event.pop("_via")
                    wrapped[via] = wrapped.get(via, 0) + 1
                if kind == "truncated":
                    stats.truncated += 1
                ts = event["_ts"]
                if ts is None:
                    ts = event["_ts"] = last_ts  # an undated line happened no earlier than the one before
                else:
                    last_ts = ts
                if ts is not None:
                    if not since <= ts <= until:
                        stats.outside_window += 1
                        continue
                    if ts < first_ts:
                        first_ts = ts
                    if ts > max_ts:
                        max_ts = ts
                event["_n"] = number
                stats.events += 1
                source = event["source"]
                sources[source] = sources.get(source, 0) + 1
                yield event
        finally:
            stats.lines = number
            if first_ts != float("inf"):
                stats.first_ts, stats.last_ts = first_ts, max_ts

    def _skipped(self, kind: str, line: str, envelopes: Envelopes) -> None:
        """Count a line without an event of ours by what it looked like, to say so when nothing was ours."""
        stats = self.stats
        if kind == "envelope":
            stats.envelope_only += 1
            return
        via = RAW if line.startswith('{"timestamp"') else envelopes.last_via
        if kind == "foreign":
            stats.foreign_json += 1
            shape = JSON if via == RAW else via
        else:
            stats.other += 1
            shape = via if via not in (RAW, KUBECTL) else (
                "blank" if not line.strip() else "console" if _CONSOLE.search(line, 0, 200)
                else "no-entries" if line.startswith("-- No entries --") else "text")
        stats.shapes[shape] = stats.shapes.get(shape, 0) + 1

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
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from supervisor.explain.fields import sanitise

Event = dict[str, Any]

MAX_LINE = 1 << 20  # characters; a longer line is read in pieces, so one runaway line cannot exhaust memory

_decoder = json.JSONDecoder()
_PREFIX_TIME = re.compile(r"\s*(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)")
# Journald and `docker logs` cut long lines; the keys explain needs most are written first.  A number
# must be followed by a delimiter: 12 cut from 1234 is not a pid.
_SALVAGE = re.compile(r'"([a-z_]+)"\s*:\s*("(?:[^"\\]|\\.)*"'
                      r'|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?=[,}\]\s])|true|false|null)')
# Access lines are most of a busy log; this is their exact form as the supervisor writes them
# (a prefix, then the object), read without a JSON parse.  Anything else takes the general path.
_ACCESS = re.compile(
    r'[^{]*\{"timestamp": "([^"\\]*)", "level": "([a-z]+)", "event": "http\.access", '
    r'"source": "([a-z]+)", "pid": (\d{1,9}), "logger": "uvicorn\.access", "client": "[^"\\]*", '
    r'"method": "([A-Z]{1,10})", "path": "([^"\\]*)", "http_version": "[^"\\]*", '
    r'"status": (\d{3})\}\s*$')
_DOTTED = re.compile(r"^[a-z_]+(?:\.[a-z_]+)+$")
_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|d|w)", re.IGNORECASE)
_UNITS = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


class BadTime(ValueError):
    """A --since/--until value that is neither ISO 8601 nor a relative duration."""


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


_second_cache: dict[str, float | None] = {}


def parse_timestamp(text: object) -> float | None:
    """Seconds since the epoch for an ISO 8601 string (naive means UTC), or None."""
    if not isinstance(text, str) or len(text) < 10:
        return None
    # Fast path for the supervisor's own form, 2026-11-25T00:53:04.491Z: one parse per second of log.
    if len(text) == 24 and text[23] == "Z" and text[19] == ".":
        base = _second_cache.get(text[:19], -1.0)
        if base == -1.0:
            if len(_second_cache) > 4096:
                _second_cache.clear()
            base = _second_cache[text[:19]] = _parse_iso(text[:19])
        millis = text[20:23]
        if base is not None and millis.isdigit():
            return base + int(millis) * 0.001
    return _parse_iso(text)


def _parse_iso(text: str) -> float | None:
    try:
        value = datetime.fromisoformat(text.replace(",", ".", 1))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.timestamp()
    except (OverflowError, ValueError, OSError):
        return None


def parse_when(text: str, now: datetime | None = None) -> float:
    """A --since/--until value: ISO 8601 (``2026-11-25T10:00Z``) or an age (``2h``, ``1h30m``) before now."""
    stripped = text.strip().lower().removesuffix(" ago").lstrip("-").strip()
    pieces = _RELATIVE.findall(stripped)
    if pieces and _RELATIVE.sub("", stripped).strip() == "":
        seconds = sum(float(amount) * _UNITS[unit.lower()] for amount, unit in pieces)
        return ((now or datetime.now(UTC)) - timedelta(seconds=seconds)).timestamp()
    value = parse_timestamp(text.strip())
    if value is None:
        raise BadTime(f"{text!r} is neither an ISO 8601 time (2026-11-25T10:00:00Z) "
                      "nor an age such as 30m, 2h or 1d")
    return value


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


def parse_line(line: str) -> tuple[str, Event | None]:
    """Classify one line: ("event", e), ("truncated", e), ("foreign", None) or ("other", None)."""
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
    ts = parse_timestamp(obj.get("timestamp"))
    if ts is None:
        match = _PREFIX_TIME.match(line, 0, start)
        if match:
            obj["timestamp"] = match.group(1)
            ts = parse_timestamp(match.group(1))
    obj["_ts"] = ts
    return kind, _normalise(obj)


def read_lines(stream: IO[bytes], chunk: int = 1 << 20) -> Iterator[str]:
    """Decoded lines (invalid UTF-8 replaced), at most ``MAX_LINE`` characters each.

    Reads in chunks and splits in C: per-line ``readline`` calls cost more than the
    parsing of a short line.  A longer line comes out in ``MAX_LINE`` pieces.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    rest = ""
    while True:
        data = stream.read(chunk)
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
        last_ts: float | None = None
        first_ts, max_ts = float("inf"), float("-inf")
        number = 0
        try:
            for number, line in enumerate(lines, 1):  # noqa: B007 (number is read after the loop)
                kind, event = parse_line(line)
                if event is None:
                    if kind == "foreign":
                        stats.foreign_json += 1
                    else:
                        stats.other += 1
                    continue
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

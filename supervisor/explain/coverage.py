"""How much of the input was read, in words: the header's counts, and the plain answer when nothing was ours.

Issue #14: a journal fetched with ``-o json`` used to read as "1743 other JSON"
and "(no incidents)", exit 0.  A tool for 3 a.m. must never answer "nothing
happened" for a log it could not read: when no JarlPM event is found it says
what the input looked like and what to try, and the command exits 65.
"""

from __future__ import annotations

from supervisor.explain.envelope import (
    DOCKER,
    JOURNAL,
    JOURNAL_EXPORT,
    JSON,
    KUBECTL,
    PLATFORM,
)
from supervisor.explain.reader import ReadStats

# What each envelope is called where people see it.
ENVELOPE_NAMES = {JOURNAL: "journalctl -o json", JOURNAL_EXPORT: "journalctl -o export", DOCKER: "Docker json-file",
                  KUBECTL: "kubectl --prefix", PLATFORM: "a log platform's export"}
_SHAPE_WORDS = {JOURNAL: ("journal entry", "journal entries"), JOURNAL_EXPORT: ("journal entry", "journal entries"),
                DOCKER: ("Docker log entry", "Docker log entries"), PLATFORM: ("exported object", "exported objects"),
                JSON: ("JSON object", "JSON objects"), "console": ("LOG_FORMAT=console line", None),
                "text": ("line of text", "lines of text"), "blank": ("blank line", None),
                "no-entries": ("'-- No entries --' line of journalctl", "'-- No entries --' lines of journalctl")}
_ADVICE = {
    JOURNAL: "is this the supervisor's unit (`journalctl -u jarlpm -o json`), and does it run with LOG_FORMAT=json?",
    JOURNAL_EXPORT: "is this the supervisor's unit (`journalctl -u jarlpm -o export`), and does it run with "
                    "LOG_FORMAT=json?",
    DOCKER: "is this the supervisor's container, and does it run with LOG_FORMAT=json?",
    PLATFORM: "does the export hold the supervisor's lines, and does it run with LOG_FORMAT=json?",
    JSON: "is this the supervisor's log? its lines have an `event` field; if the log went through a tool that "
          "wraps each line, give explain that tool's raw output (`journalctl -o json` and `-o cat`, "
          "`docker logs`, `kubectl logs` are read as they are)",
    "console": "explain reads the JSON lines of LOG_FORMAT=json (the default); these were written with "
               "LOG_FORMAT=console, for people: run the supervisor with LOG_FORMAT=json",
    "text": "is this the supervisor's log? with LOG_FORMAT=json every line it writes is a JSON object "
            "(`journalctl -u jarlpm -o cat`, `docker logs CONTAINER`, `kubectl logs POD`)",
    "blank": "the input has only blank lines",
    "no-entries": "journalctl found no entries: check the unit (-u jarlpm), --since/--until and --boot",
}


def _many(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _count(n: int, shape: str) -> str:
    one, many = _SHAPE_WORDS.get(shape, (shape, None))
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def nothing_read(stats: ReadStats) -> str | None:
    """The plain answer when no JarlPM event was found, else None (events outside the window were found)."""
    if stats.events or stats.outside_window:
        return None
    if stats.stopped and not stats.lines:
        return f"no JarlPM event: reading stopped at once ({stats.stopped})"
    if not stats.lines:
        return ("no JarlPM event: the input is empty; check the unit, container or pod name, and the time range "
                "given to the tool that fetched the log")
    shapes = sorted(stats.shapes.items(), key=lambda kv: -kv[1])
    main = shapes[0][0] if shapes else "text"
    what = ", ".join(_count(n, shape) for shape, n in shapes[:3]) or _many(stats.lines, "line")
    none = "none of them a JarlPM event" if sum(stats.shapes.values()) > 1 else "not a JarlPM event"
    return f"no JarlPM event in {_many(stats.lines, 'line')}: {what}, {none}: {_ADVICE.get(main, '')}"


def read_summary(stats: ReadStats) -> str:
    """``1,743 lines, 1,700 events (through journalctl -o json; 43 skipped: 40 journal entries, 3 lines of text)``."""
    head = f"{_many(stats.lines, 'line')}, {_many(stats.events, 'event')}"
    parts = []
    several = len(stats.envelopes) > 1
    through = [ENVELOPE_NAMES.get(via, via) + (f" ×{n:,}" if several else "")
               for via, n in sorted(stats.envelopes.items(), key=lambda kv: -kv[1])]
    if through:
        parts.append("through " + ", ".join(through))
    skipped = sum(stats.shapes.values())
    if skipped:
        shapes = sorted(stats.shapes.items(), key=lambda kv: -kv[1])
        parts.append(f"{skipped:,} skipped, not JarlPM events: " + ", ".join(_count(n, s) for s, n in shapes[:4]))
    if stats.truncated:
        parts.append(f"{stats.truncated:,} truncated, salvaged")
    if stats.outside_window:
        parts.append(f"{stats.outside_window:,} outside --since/--until")
    if stats.stopped:
        parts.append(f"reading stopped early: {stats.stopped}")
    return head + (f" ({'; '.join(parts)})" if parts else "")

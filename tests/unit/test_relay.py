"""Specifications of ``supervisor.logs.relay``: a server's output becomes ordered, stamped JSON events."""

from __future__ import annotations

import io
import json
import time
from collections import deque
from typing import Any

from supervisor.logs.lines import MAX_LINE
from supervisor.logs.relay import TAIL_LINE_CHARS, StackDump, StreamRelay, parse_line

PID = 4242


def relay(data: bytes, stream: str = "stderr", tail: deque[str] | None = None,
          dump: StackDump | None = None) -> list[dict[str, Any]]:
    """Run a relay over ``data`` to end of file and return what it emitted."""
    events: list[dict[str, Any]] = []
    r = StreamRelay(io.BytesIO(data), PID, stream, tail=tail, dump=dump, emit=events.append)
    r.start()
    r.join(timeout=5)
    assert not r.thread.is_alive()
    return events


TRACEBACK = b"""Traceback (most recent call last):
  File "/app/server.py", line 3, in <module>
    import jarlpm.missing
  File "/app/jarlpm/__init__.py", line 1, in <module>
    raise ImportError("no module")

ImportError: no module named 'jarlpm.missing'
"""

DUMP = b"""Thread 0x00007f3a1c2b4700 (most recent call first):
  File "/usr/lib/python3.11/threading.py", line 320 in wait
  File "x.py", line 3 in f

Current thread 0x00007f3a1d9c8740 (most recent call first):
  File "/app/slow.py", line 12 in handler
  <no Python frame>
"""


class TestJsonLines:
    """JSON lines pass through, stamped source=server and the process's pid over whatever they claimed."""

    def test_passes_through_stamped(self) -> None:
        line = {"timestamp": "2024-01-01T00:00:00.000Z", "level": "warning", "event": "http.access",
                "path": "/api/epics", "status": 200, "method": "GET"}
        (event,) = relay(json.dumps(line).encode() + b"\n", stream="stdout")
        # A line without a message gets one (log platforms show it first).
        assert event == {**line, "source": "server", "pid": PID, "message": "GET /api/epics 200"}

    def test_cannot_pose_as_the_supervisor(self) -> None:
        (event,) = relay(b'{"event": "supervisor.ready", "source": "supervisor", "pid": 1}\n')
        assert (event["event"], event["source"], event["pid"]) == ("supervisor.ready", "server", PID)

    def test_missing_fields_filled_in(self) -> None:
        (event,) = relay(b'{"message": "hi"}\n')
        assert event["event"] == "server.log" and event["level"] == "info"
        assert event["timestamp"].endswith("Z")

    def test_parse_line(self) -> None:
        assert parse_line('{"a": 1}') == {"a": 1}
        assert parse_line("[1, 2]") is None
        assert parse_line("{not json") is None
        assert parse_line("plain") is None


class TestPlainText:
    """Plain text is wrapped as server.output with its stream; blank lines are dropped."""

    def test_stdout_is_info(self) -> None:
        (event,) = relay(b"hello from print()\n", stream="stdout")
        assert {k: event[k] for k in ("level", "event", "stream", "message", "source", "pid")} == {
            "level": "info", "event": "server.output", "stream": "stdout", "message": "hello from print()",
            "source": "server", "pid": PID}

    def test_stderr_is_warning(self) -> None:
        (event,) = relay(b"DeprecationWarning: x\r\n")
        assert (event["level"], event["stream"], event["message"]) == ("warning", "stderr", "DeprecationWarning: x")

    def test_order_kept_and_blank_lines_dropped(self) -> None:
        events = relay(b"one\n\n   \ntwo\n{\"event\": \"three\"}\nfour")
        assert [e["message"] for e in events] == ["one", "two", "Three", "four"]

    def test_invalid_utf8_does_not_crash(self) -> None:
        events = relay(b"bad \xff\xfe bytes\nnext\n")
        assert [e["message"] for e in events] == ["bad \ufffd\ufffd bytes", "next"]


class TestTracebacks:
    """A multi-line traceback becomes one server.traceback event carrying the full text."""

    def test_one_event(self) -> None:
        (event,) = relay(TRACEBACK)
        assert (event["event"], event["level"], event["source"], event["pid"]) == (
            "server.traceback", "error", "server", PID)
        assert event["message"] == "ImportError: no module named 'jarlpm.missing'"
        assert event["traceback"] == TRACEBACK.decode().rstrip("\n")

    def test_lines_around_it_stay_separate_and_in_order(self) -> None:
        events = relay(b"before\n" + TRACEBACK + b"after\n")
        assert [e["event"] for e in events] == ["server.output", "server.traceback", "server.output"]
        assert [events[0]["message"], events[2]["message"]] == ["before", "after"]

    def test_truncated_by_end_of_file_is_still_emitted(self) -> None:
        (event,) = relay(b'Traceback (most recent call last):\n  File "a.py", line 1, in <module>\n')
        assert event["event"] == "server.traceback"
        assert event["traceback"].endswith('line 1, in <module>')

    def test_chained_exception_keeps_its_context(self) -> None:
        chained = (TRACEBACK + b"\nDuring handling of the above exception, another exception occurred:\n\n"
                   + TRACEBACK.replace(b"ImportError: no module", b"RuntimeError: startup failed; no module"))
        events = relay(chained)
        assert [e["event"] for e in events] == ["server.traceback", "server.traceback"]
        assert events[1]["traceback"].startswith("During handling of the above exception")
        assert events[1]["message"].startswith("RuntimeError: startup failed")

    def test_in_the_stderr_tail(self) -> None:
        tail: deque[str] = deque(maxlen=30)
        relay(TRACEBACK, tail=tail)
        assert list(tail) == TRACEBACK.decode().splitlines()


class TestStackDumps:
    """faulthandler's dump goes to the StackDump for child.unresponsive, not into the log stream."""

    def test_dump_captured_not_emitted(self) -> None:
        dump = StackDump()
        events = relay(b"before\n" + DUMP + b"after\n", dump=dump)
        assert [e["message"] for e in events] == ["before", "after"]
        assert dump.take() == DUMP.decode().splitlines()
        assert dump.last_line_at > 0

    def test_take_empties_it(self) -> None:
        dump = StackDump()
        relay(DUMP, dump=dump)
        assert dump.take()
        assert dump.take() == []

    def test_dump_lines_not_in_the_tail(self) -> None:
        tail: deque[str] = deque(maxlen=30)
        relay(DUMP + b"after\n", tail=tail, dump=StackDump())
        assert list(tail) == ["after"]

    def test_without_a_dump_the_lines_are_ordinary_output(self) -> None:
        events = relay(b'Thread 0x00007f3a1c2b4700 (most recent call first):\n  File "x.py", line 3 in f\n')
        assert [e["event"] for e in events] == ["server.output", "server.output"]


class TestStderrTail:
    """The stderr tail keeps the last lines, for child.exited."""

    def test_keeps_the_last_lines(self) -> None:
        tail: deque[str] = deque(maxlen=3)
        relay(b"".join(b"line %d\n" % n for n in range(10)), tail=tail)
        assert list(tail) == ["line 7", "line 8", "line 9"]

    def test_json_lines_are_in_the_tail_too(self) -> None:
        tail: deque[str] = deque(maxlen=3)
        relay(b'{"event": "x"}\n', tail=tail)
        assert list(tail) == ['{"event": "x"}']


def relay_with_errors(data: bytes, emit: Any = None) -> tuple[list[dict[str, Any]], list[tuple[str, dict[str, Any]]]]:
    events: list[dict[str, Any]] = []
    errors: list[tuple[str, dict[str, Any]]] = []
    r = StreamRelay(io.BytesIO(data), PID, "stdout", emit=emit or events.append,
                    on_error=lambda name, fields: errors.append((name, fields)))
    r.start()
    r.join(timeout=10)
    assert not r.thread.is_alive()
    return events, errors


class TestOddOutput:
    """No output, however odd, ends the relay; every line is bounded (issue #16)."""

    def test_deeply_nested_json_passes_as_text(self) -> None:
        nested = b"[" * 20_000 + b"]" * 20_000  # far deeper than json can parse, under MAX_LINE
        events, errors = relay_with_errors(b'{"a": ' + nested + b"}\nafter\n")
        assert [e["event"] for e in events] == ["server.output", "server.output"]
        assert events[1]["message"] == "after"
        assert errors == []  # parse_line knows RecursionError: not even a relay error

    def test_a_failing_line_is_passed_on_as_text_with_one_report(self) -> None:
        calls: list[dict[str, Any]] = []

        def emit(event: dict[str, Any]) -> None:
            if event.get("event") == "boom":
                raise RuntimeError("renderer broke")
            calls.append(event)

        events, errors = relay_with_errors(b'{"event": "boom"}\n{"event": "boom"}\nstill here\n', emit=emit)
        assert [c.get("message") for c in calls] == ['{"event": "boom"}', '{"event": "boom"}', "still here"]
        assert [name for name, _ in errors] == ["log.relay_error"]
        assert errors[0][1]["pid"] == PID and "renderer broke" in errors[0][1]["error"]

    def test_a_relay_that_fails_anyway_restarts_in_plain_mode_and_says_so(self) -> None:
        seen: list[dict[str, Any]] = []

        def emit(event: dict[str, Any]) -> None:
            seen.append(event)
            if len(seen) <= 2:
                raise RuntimeError("the first line fails even as plain text")

        _, errors = relay_with_errors(b"one\ntwo\nthree\n", emit=emit)
        names = [name for name, _ in errors]
        assert names[0] == "log.relay_error" and "log.relay_restarted" in names
        assert [e["message"] for e in seen[-2:]] == ["two", "three"]

    def test_long_line_cut_with_a_marker(self) -> None:
        (head, rest, after) = relay(b"y" * (MAX_LINE * 3) + b"\nafter\n", stream="stdout")
        assert len(head["message"].encode()) < MAX_LINE + 100 and "line cut at" in head["message"]
        assert str(MAX_LINE * 2) in rest["message"]
        assert after["message"] == "after"

    def test_output_without_a_newline_is_bounded_without_waiting_for_one(self) -> None:
        events = relay(b"z" * (20 * 1024 * 1024), stream="stdout")
        assert all(len(e["message"]) < MAX_LINE + 100 for e in events) and len(events) == 2

    def test_carriage_return_progress_keeps_the_last_state_in_linear_time(self) -> None:
        progress = b"".join(b"\r%3d%%|####      | %d/1000000" % (i % 100, i) for i in range(1_000_000))
        started = time.monotonic()
        events = relay(progress + b"\r\ndone\n", stream="stdout")
        assert time.monotonic() - started < 10
        assert [e["message"] for e in events] == [" 99%|####      | 999999/1000000", "done"]

    def test_stderr_tail_lines_are_bounded(self) -> None:
        tail: deque[str] = deque(maxlen=30)
        relay(b"w" * 50_000 + b"\n", tail=tail)
        assert tail and all(len(line) <= TAIL_LINE_CHARS for line in tail)

"""Specifications of ``supervisor.logs.sink``: nobody but the writer waits for a stalled reader."""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from procs import F_SETPIPE_SZ, wait_for

from supervisor.logs.sink import LogSink


@contextmanager
def stalled_sink(server_bytes: int = 4096) -> Iterator[tuple[LogSink, int]]:
    """A sink writing to a one-page pipe nobody reads yet: (the sink, the pipe's read end)."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, F_SETPIPE_SZ, 4096)
    stream = os.fdopen(write_end, "w")
    sink = LogSink(stream, server_bytes=server_bytes)
    try:
        yield sink, read_end
    finally:
        os.close(read_end)  # the blocked writer gets EPIPE and stops before its fd is reused
        sink.close()
        stream.close()


def read_lines(fd: int, until: str, timeout: float = 5) -> list[str]:
    """Whole lines read from the pipe until the line containing ``until`` is complete."""
    data = b""
    deadline = time.monotonic() + timeout
    os.set_blocking(fd, False)
    mark = until.encode()
    while mark not in data or b"\n" not in data[data.rindex(mark):]:
        assert time.monotonic() < deadline, data[-500:]
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        data += chunk
    complete = data[:data.rindex(b"\n") + 1]
    return complete.decode().splitlines()


class TestStalledReader:
    """Producers never block; server lines over budget are dropped, events are not; the loss is reported."""

    def test_producers_never_block(self) -> None:
        with stalled_sink(8192) as (sink, _read_end):
            done = threading.Event()

            def produce() -> None:
                for i in range(5000):
                    sink.put_server(json.dumps({"event": "server.output", "i": i}), 7)
                    sink.put_event(json.dumps({"event": "child.ready", "i": i}))
                done.set()

            threading.Thread(target=produce, daemon=True).start()
            assert done.wait(5), "a producer blocked on the stalled reader"
            assert sink.total_dropped() > 0 and "supervisor" not in sink.dropped()

    def test_log_dropped_is_the_first_line_once_the_reader_resumes(self) -> None:
        with stalled_sink() as (sink, read_end):
            for i in range(2000):
                sink.put_server(json.dumps({"event": "server.output", "i": i}), 7)
            wait_for(sink.total_dropped, 5, "drops counted")
            sink.put_event(json.dumps({"event": "child.exited"}))
            lines = read_lines(read_end, '"child.exited"')
            events = [json.loads(line) for line in lines]
            notices = [e for e in events if e["event"] == "log.dropped"]
            written = [e for e in events if e["event"] == "server.output"]
            # Every line is either written or counted, and counted against its process.
            assert sum(n["dropped"] for n in notices) + len(written) == 2000
            assert all(n["by_source"]["server"] == n["dropped"] and n["by_pid"] == {"7": n["dropped"]}
                       for n in notices)
            # Reported before the event queued after the drops, not only at some later event.
            assert max(events.index(n) for n in notices) < [e["event"] for e in events].index("child.exited")

    def test_reported_without_a_further_event(self) -> None:
        """No event after the stall: the writer's timer still writes log.dropped."""
        with stalled_sink() as (sink, read_end):
            for i in range(2000):
                sink.put_server(json.dumps({"event": "server.output", "i": i}), 7)
            wait_for(sink.total_dropped, 5, "drops counted")
            assert any('"log.dropped"' in line for line in read_lines(read_end, '"log.dropped"'))

    def test_events_kept_in_order_with_server_lines(self) -> None:
        with stalled_sink(1 << 20) as (sink, read_end):
            sink.put_server('{"event": "server.traceback"}', 7)
            sink.put_event('{"event": "child.exited"}')
            lines = read_lines(read_end, "child.exited")
            assert [json.loads(x)["event"] for x in lines] == ["server.traceback", "child.exited"]

"""Specifications of the relay's hot path: a server's JSON line goes out as written, plus source and pid.

Issue #17: re-encoding every access line (parse, reorder, render) cost the supervisor a
core's worth of work per request that gunicorn never spends, and reading the pipe line by
line woke the relay, then the writer, for every request.  These tests pin what the fast
path must keep: the bytes of the server's line, the stamps, the redaction, the fallbacks.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from procs import wait_for

from supervisor.contract import dburl
from supervisor.logs import logsetup
from supervisor.logs.lines import RELAY_PIPE_BYTES, LineSplitter
from supervisor.logs.relay import StreamRelay
from supervisor.logs.sink import LogSink
from supervisor.server.serverlog import JsonLineFormatter

PID = 4242
F_GETPIPE_SZ = 1032  # fcntl.F_GETPIPE_SZ


@pytest.fixture
def output() -> Iterator[Path]:
    """The log stream goes to a file through a sink of its own; logsetup's globals are restored afterwards."""
    saved = (logsetup.LogRuntime.sink, logsetup.LogRuntime.render, logsetup.LogRuntime.verbatim,
             logsetup.LogRuntime.level)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.log"
        with open(path, "w") as stream:
            sink = LogSink(stream)
            logsetup.LogRuntime.sink = sink
            logsetup.LogRuntime.render = logsetup.json_renderer
            logsetup.LogRuntime.verbatim = logsetup.splice_stamps
            logsetup.LogRuntime.level = 20
            try:
                yield path
            finally:
                sink.flush()
                sink.close()
                (logsetup.LogRuntime.sink, logsetup.LogRuntime.render, logsetup.LogRuntime.verbatim,
                 logsetup.LogRuntime.level) = saved


def relayed(path: Path, data: bytes) -> list[str]:
    """Relay ``data`` as a server process's stdout, through the real sink; the lines written."""
    read_end, write_end = os.pipe()
    relay = StreamRelay(os.fdopen(read_end, "rb"), PID, "stdout")
    relay.start()
    os.write(write_end, data)
    os.close(write_end)
    relay.join(5)
    assert not relay.thread.is_alive()
    assert logsetup.LogRuntime.sink is not None
    logsetup.LogRuntime.sink.flush()
    return path.read_text().splitlines()


def access_line() -> str:
    """What a server process writes for one request (``serverlog`` formatting uvicorn's record)."""
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5555", "GET", "/api/epics", "1.1", 200), None)
    return JsonLineFormatter().format(record)


class TestPassThrough:
    """A complete JSON line is written byte for byte, with only source and pid added."""

    def test_access_line_is_byte_identical_apart_from_the_stamps(self, output: Path) -> None:
        line = access_line()
        (written,) = relayed(output, line.encode() + b"\n")
        assert written == line[:-1] + f', "source": "server", "pid": {PID}}}'
        assert json.loads(written) == {**json.loads(line), "source": "server", "pid": PID}

    def test_compact_line_keeps_its_own_spelling(self, output: Path) -> None:
        line = '{"timestamp":"2026-01-01T00:00:00.000Z","level":"info","event":"app.thing","message":"done","n":[1,2]}'
        (written,) = relayed(output, line.encode() + b"\n")
        assert written == line[:-1] + f', "source": "server", "pid": {PID}}}'

    def test_lines_of_one_read_stay_in_order(self, output: Path) -> None:
        lines = [access_line().replace("/api/epics", f"/api/epics/{i}") for i in range(50)]
        written = relayed(output, "".join(line + "\n" for line in lines).encode())
        assert [json.loads(w)["path"] for w in written] == [f"/api/epics/{i}" for i in range(50)]


class TestStillStampedAndRedacted:
    """Lines the fast path cannot take as they are go the full way: parsed, stamped, rendered."""

    def test_a_line_claiming_source_or_pid_is_rewritten(self, output: Path) -> None:
        line = ('{"timestamp": "2026-01-01T00:00:00.000Z", "level": "info", "event": "supervisor.ready", '
                '"message": "Serving", "source": "supervisor", "pid": 1}')
        (written,) = relayed(output, line.encode() + b"\n")
        event = json.loads(written)
        assert (event["event"], event["source"], event["pid"]) == ("supervisor.ready", "server", PID)
        assert written.count('"source"') == 1 and written.count('"pid"') == 1

    def test_a_line_without_a_message_gets_one(self, output: Path) -> None:
        line = '{"timestamp": "2026-01-01T00:00:00.000Z", "level": "info", "event": "http.access", ' \
               '"method": "GET", "path": "/x", "status": 204}'
        (written,) = relayed(output, line.encode() + b"\n")
        assert json.loads(written)["message"] == "GET /x 204"

    def test_a_malformed_line_becomes_server_output(self, output: Path) -> None:
        (written,) = relayed(output, b'{"event": "half a line", \n')
        event = json.loads(written)
        assert (event["event"], event["message"], event["source"]) == (
            "server.output", '{"event": "half a line", ', "server")

    def test_a_secret_is_masked_however_the_line_escapes_it(self, output: Path) -> None:
        dburl.register_secret("hunter2secret")
        escaped = "".join(f"\\u{ord(c):04x}" for c in "hunter2secret")
        lines = [
            '{"timestamp": "t", "level": "info", "event": "app.x", "message": "pw hunter2secret"}',
            '{"timestamp": "t", "level": "info", "event": "app.x", "message": "pw ' + escaped + '"}',
            '{"timestamp": "t", "level": "info", "event": "app.x", '
            '"message": "postgresql:\\/\\/u:hunter2secret@h\\/db"}',
        ]
        written = relayed(output, "".join(line + "\n" for line in lines).encode())
        assert len(written) == 3
        assert all("hunter2secret" not in w and escaped not in w for w in written)
        assert all("***" in json.loads(w)["message"] for w in written)

    def test_below_the_log_level_is_not_written(self, output: Path) -> None:
        logsetup.LogRuntime.level = 30
        line = '{"timestamp": "t", "level": "info", "event": "app.x", "message": "quiet"}'
        warn = '{"timestamp": "t", "level": "warning", "event": "app.x", "message": "loud"}'
        (written,) = relayed(output, f"{line}\n{warn}\n".encode())
        assert json.loads(written)["message"] == "loud"


class TestReadingInBatches:
    """While a server writes, the relay reads what piled up in one go rather than waking per line."""

    def test_lines_written_within_the_linger_come_as_one_group(self) -> None:
        read_end, write_end = os.pipe()
        with os.fdopen(read_end, "rb") as pipe:
            groups = iter(LineSplitter(pipe, linger=0.5))
            os.write(write_end, b"first\n")
            assert next(groups) == [b"first"]

            def more() -> None:  # two writes of one request each, a little apart
                os.write(write_end, b"second\n")
                time.sleep(0.05)
                os.write(write_end, b"third\n")

            writer = threading.Thread(target=more)
            writer.start()
            assert next(groups) == [b"second", b"third"]
            writer.join(5)
            os.close(write_end)
            assert list(groups) == []

    def test_a_full_read_is_followed_at_once(self) -> None:
        """A chatty server is never held up by the linger: a full buffer means more is waiting."""
        read_end, write_end = os.pipe()
        fcntl.fcntl(write_end, 1031, 1 << 20)  # F_SETPIPE_SZ
        chunk = b"x" * 63 + b"\n"
        os.write(write_end, chunk * 8192)  # 512 KiB: eight full reads, then the end of the file
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            started = time.monotonic()
            count = sum(len(group) for group in LineSplitter(pipe, linger=2.0))
        assert count == 8192
        assert time.monotonic() - started < 2.0

    def test_the_relay_enlarges_its_pipe(self) -> None:
        """Room for a burst while the relay lingers, so the server's writes do not block."""
        read_end, write_end = os.pipe()
        relay = StreamRelay(os.fdopen(read_end, "rb"), PID, "stdout", emit=lambda _event: None, linger=0.01)
        relay.start()
        try:
            size = fcntl.fcntl(write_end, F_GETPIPE_SZ)
            limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
            assert size >= min(RELAY_PIPE_BYTES, limit)
        finally:
            os.close(write_end)
            relay.join(5)
        wait_for(lambda: not relay.thread.is_alive(), 5, "relay ended")


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="Linux scheduling policy")
class TestWakeUps:
    """The threads that move log lines never preempt the server thread whose write woke them."""

    def test_relay_and_writer_run_as_batch_threads(self) -> None:
        read_end, write_end = os.pipe()
        relay = StreamRelay(os.fdopen(read_end, "rb"), PID, "stdout", emit=lambda _event: None)
        relay.start()
        with tempfile.TemporaryFile("w") as stream:
            sink = LogSink(stream)
            try:
                for thread in (relay.thread, sink._thread):
                    tid = thread.native_id
                    assert tid is not None
                    wait_for(lambda tid=tid: os.sched_getscheduler(tid) == os.SCHED_BATCH, 5,
                             f"{thread.name} running as SCHED_BATCH")
            finally:
                sink.close()
                os.close(write_end)
                relay.join(5)

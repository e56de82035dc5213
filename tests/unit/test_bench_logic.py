"""Specifications of the benchmark's pure parts: wrk's report, wake-up counting, the contender table, the rows."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

# The bench is a top-level package of the repository, not an installed one.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import contenders, proctools, report, wrk  # noqa: E402
from bench.contenders import GUNICORN, GUNICORN_PRELOAD, STANDBY, SUPERVISOR, SUPERVISORD  # noqa: E402
from bench.model import Row  # noqa: E402
from bench.scenarios import crash, instrumentation  # noqa: E402
from bench.supervisord import SupervisordUnavailable  # noqa: E402

# wrk 4.1.0's report with --latency (Debian's wrk), against a server that answered some 503s.
WRK_REPORT = """\
Running 2s test @ http://127.0.0.1:23546/api/epics
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    60.12ms   30.01ms 219.20ms   70.00%
    Req/Sec    81.31     20.00   120.00     60.00%
  Latency Distribution
     50%  452.00us
     75%  120.00ms
     90%  150.00ms
     99%    1.20s
  163 requests in 2.00s, 1.23MB read
  Non-2xx or 3xx responses: 3
  Socket errors: connect 0, read 1, write 0, timeout 2
Requests/sec:     81.31
Transfer/sec:    615.00KB
"""


class TestWrkReport:
    """wrk's text report becomes numbers."""

    def test_totals_rate_errors_and_percentiles(self) -> None:
        """Requests, duration, rate, non-2xx, socket errors (all kinds) and p50/p99 in ms."""
        result = wrk.parse(WRK_REPORT)
        assert (result.requests, result.seconds, result.req_per_s) == (163, 2.0, 81.31)
        assert (result.non_2xx, result.socket_errors, result.errors) == (3, 3, 6)
        assert result.latency_p50_ms == pytest.approx(0.452)
        assert result.latency_p99_ms == pytest.approx(1200.0)

    def test_clean_run_has_no_error_lines(self) -> None:
        """Without the Non-2xx and Socket errors lines (a clean run), both counts are 0."""
        clean = "\n".join(line for line in WRK_REPORT.splitlines() if "Non-2xx" not in line and "Socket" not in line)
        assert wrk.parse(clean).errors == 0

    def test_no_totals_is_an_error(self) -> None:
        """A report without totals (wrk failed to connect at all) raises ValueError rather than reading 0."""
        with pytest.raises(ValueError):
            wrk.parse("unable to connect to 127.0.0.1:1 Connection refused\n")

    @pytest.mark.parametrize(("text", "ms"), [("452.00us", 0.452), ("1.23ms", 1.23), ("2.01s", 2010.0),
                                              ("1.00m", 60_000.0)])
    def test_durations(self, text: str, ms: float) -> None:
        """wrk's units (us, ms, s, m) in milliseconds."""
        assert wrk.duration_ms(text) == pytest.approx(ms)


class TestWakeups:
    """Idle wake-ups are context switches summed over every thread of the process."""

    def test_sums_voluntary_and_involuntary(self) -> None:
        """Both counters of one status file are added; other lines are ignored."""
        status = "Name:\tpython\nThreads:\t2\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n"
        assert proctools.switches_in_status(status) == 127

    def test_counts_every_thread(self) -> None:
        """A second thread's sleeps show in the process's total, not only the main thread's."""
        before = proctools.context_switches(os.getpid())
        slept, release = threading.Event(), threading.Event()

        def sleeper() -> None:
            for _ in range(50):
                release.wait(0.001)
            slept.set()
            release.wait(10)

        thread = threading.Thread(target=sleeper)
        thread.start()
        try:
            assert slept.wait(10)
            after = proctools.context_switches(os.getpid())  # while the thread lives: its count is there
        finally:
            release.set()
            thread.join(10)
        assert before is not None and after is not None and after - before >= 50

    def test_gone_process(self) -> None:
        """A process that does not exist has no count (None), not zero."""
        assert proctools.context_switches(2**22 + 1) is None


def _no_supervisord() -> str:
    raise SupervisordUnavailable("supervisord baseline disabled")


class TestContenders:
    """The contender table: who can run here, and how each one is started."""

    def test_unavailable_contenders_become_notes(self) -> None:
        """supervisord that cannot be installed is left out with a note; the others are kept, in order."""
        assert contenders.standby_available()  # the supervisor reads JARLPM_STANDBY
        notes: list[str] = []
        found = contenders.available((SUPERVISOR, STANDBY, SUPERVISORD), _no_supervisord, notes)
        assert found == [SUPERVISOR, STANDBY]
        assert [note.split(" not available")[0] for note in notes] == [SUPERVISORD]

    def test_standby_sets_the_switch(self, tmp_path: Path) -> None:
        """supervisor (standby) is the supervisor with JARLPM_STANDBY=1, under its own label."""
        spec = contenders.spec(STANDBY, 20001, "postgresql://u@127.0.0.1/db", tmp_path)
        assert spec.label == STANDBY and spec.env[contenders.STANDBY_VARIABLE] == "1"
        assert contenders.STANDBY_VARIABLE not in contenders.spec(SUPERVISOR, 20001, "postgresql://x", tmp_path).env

    def test_gunicorn_command(self, tmp_path: Path) -> None:
        """gunicorn: one uvicorn_worker worker, access log on, its own control socket, --preload only there;
        its master is never counted as a server process."""
        plain = contenders.spec(GUNICORN, 20001, "postgresql://x", tmp_path)
        preload = contenders.spec(GUNICORN_PRELOAD, 20001, "postgresql://x", tmp_path)
        assert plain.master and preload.master
        argv = " ".join(plain.argv)
        assert "-k uvicorn_worker.UvicornWorker -w 1" in argv and "--access-logfile -" in argv
        assert f"--control-socket {tmp_path / 'gunicorn.ctl'}" in argv
        assert "--preload" not in plain.argv and "--preload" in preload.argv
        assert plain.env["DATABASE_URL"] == "postgresql://x"
        assert proctools.is_server_process(["/venv/bin/python", "/venv/bin/gunicorn", "server:app"])
        assert not proctools.is_server_process(["sh", "-c", "gunicorn server:app"])

    def test_a_forked_server_process_is_told_from_the_fork_server_by_its_name(self) -> None:
        """Both have the fork server's command line; only the forked process is named jarlpm-server."""
        argv = ["/venv/bin/python", "-m", "supervisor.server.forkserver", "--fd", "3"]
        assert proctools.is_server_process(argv, proctools.FORKED_SERVER_NAME)
        assert not proctools.is_server_process(argv, "jarlpm-forksrv")

    def test_supervisord_is_not_the_supervisor(self) -> None:
        """Only this project's supervisor, in either mode, counts as the supervisor."""
        assert contenders.is_supervisor(SUPERVISOR) and contenders.is_supervisor(STANDBY)
        assert not contenders.is_supervisor(SUPERVISORD)


def _crash_run(label: str, recovery: float) -> dict[str, object]:
    return {"contender": label, "refused": 0, "failed_after_kill": 0, "lost_in_flight": 0, "recovery_s": recovery}


class TestCrashRows:
    """Recovery is held to gunicorn's; the fast-replacement row is ready for the standby contender."""

    def test_recovery_against_gunicorn(self) -> None:
        """The supervisor's recovery over gunicorn's is the ratio, and ≤ 1.0 passes."""
        runs = [_crash_run(SUPERVISOR, 0.5), _crash_run(GUNICORN, 1.0), _crash_run(GUNICORN, 2.0)]
        row = next(r for r in crash.rows(runs, [SUPERVISOR, GUNICORN]) if r.figure == "time to recovery vs gunicorn")
        assert row.ratio == pytest.approx(0.5 / 1.5) and row.baseline == GUNICORN and row.passed is True
        slow = [_crash_run(SUPERVISOR, 2.0), _crash_run(GUNICORN, 1.0)]
        row = next(r for r in crash.rows(slow, [SUPERVISOR, GUNICORN]) if r.figure == "time to recovery vs gunicorn")
        assert row.passed is False

    def test_standby_row_without_standby(self) -> None:
        """Without the standby contender the row is there, about it, with no verdict."""
        runs = [_crash_run(SUPERVISOR, 0.5), _crash_run(GUNICORN_PRELOAD, 0.4)]
        rows = crash.rows(runs, [SUPERVISOR, GUNICORN_PRELOAD], standby_row=True)
        row = rows[-1]
        assert row.subject == STANDBY and row.values == {STANDBY: None, GUNICORN_PRELOAD: 0.4}
        assert row.passed is None and "not built yet" in row.note

    def test_standby_row_with_standby(self) -> None:
        """With it, the standby's recovery is held to gunicorn --preload's."""
        runs = [_crash_run(STANDBY, 0.2), _crash_run(GUNICORN_PRELOAD, 0.4)]
        row = crash.rows(runs, [STANDBY, GUNICORN_PRELOAD], standby_row=True)[-1]
        assert row.ratio == pytest.approx(0.5) and row.passed is True


class TestReportSubject:
    """The Supervisor column shows the row's subject."""

    def test_subject_in_the_supervisor_column(self) -> None:
        """A standby row names its subject there, and the baseline stays in the Baselines column."""
        row = Row("recovery", "s", {STANDBY: 0.2, GUNICORN_PRELOAD: 0.4}, ratio=0.5, baseline=GUNICORN_PRELOAD,
                  subject=STANDBY)
        cells = [cell.strip() for cell in report._row_line(row).split("|")]
        assert cells[2] == f"{STANDBY}: 0.200 s" and cells[3] == f"{GUNICORN_PRELOAD} 0.400 s"


def _pair_runs(pairs: list[tuple[float, float]]) -> list[dict[str, object]]:
    runs: list[dict[str, object]] = []
    for on, off in pairs:
        runs += [{"contender": instrumentation.ON, "pair": "pool", "req_per_s": on, "ok": on * 10, "seconds": 10.0},
                 {"contender": instrumentation.OFF, "pair": "pool", "req_per_s": off, "ok": off * 10, "seconds": 10.0}]
    return runs


def test_instrumentation_verdict_pools_every_slice() -> None:
    """Repetitions on a machine that got three times faster: the pooled rates say 2 %, as every repetition does."""
    runs = _pair_runs([(98.0, 100.0), (196.0, 200.0), (294.0, 300.0)])
    row, per_rep = instrumentation._overhead_row(runs, "pool", instrumentation.ON, instrumentation.OFF, "pool")
    assert per_rep == pytest.approx([2.0] * 3)
    assert row.values[instrumentation.ON] == pytest.approx(196.0)
    assert row.ratio == pytest.approx(0.98)
    assert row.passed is True
    assert "overhead 2.0 % over 3 repetitions" in row.note


def test_instrumentation_verdict_weighs_repetitions_by_their_slices() -> None:
    """A noisy short repetition (one slice, 20 % off) weighs one slice, not a third of the verdict."""
    runs = _pair_runs([(100.0, 100.0), (100.0, 100.0)])
    runs += [{"contender": instrumentation.ON, "pair": "pool", "req_per_s": 80.0, "ok": 80, "seconds": 1.0},
             {"contender": instrumentation.OFF, "pair": "pool", "req_per_s": 100.0, "ok": 100, "seconds": 1.0}]
    row, _ = instrumentation._overhead_row(runs, "pool", instrumentation.ON, instrumentation.OFF, "pool")
    assert row.ratio == pytest.approx(2080 / 2100)
    assert row.passed is True


def test_instrumentation_verdict_fails_a_real_overhead() -> None:
    runs = _pair_runs([(90.0, 100.0), (180.0, 200.0), (100.0, 100.0)])
    row, _ = instrumentation._overhead_row(runs, "pool", instrumentation.ON, instrumentation.OFF, "pool")
    assert row.passed is False
    assert row.ratio == pytest.approx(370 / 400)

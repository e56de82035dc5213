"""`jarlpm explain`: logs of real incidents read back as a timeline and a root cause.

The first class runs the real supervisor through real incidents (a crash loop, a
hang, a failing migration, a database that comes up late), saves its lines and
explains them.  The others read the logs captured from such runs (and one
synthetic pool exhaustion) in tests/explain_fixtures/, feed hand-written events
to the grouping, parse awkward lines, drive the command line, and fuzz it.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic_copy import add_revision, copy_alembic, head_of
from explain_fixtures import make_two_incidents
from explain_fixtures.envelopes import ENVELOPES, docker_json_file, journal_json
from pgfixtures import new_app_database
from procs import APPS, REPO, Supervisor, base_env, http_get, wait_for

from supervisor.database.pgcluster import LocalPostgres
from supervisor.explain import cli, fmt
from supervisor.explain.causality import explains
from supervisor.explain.incidents import Incident, group
from supervisor.explain.reader import (
    BadTime,
    EventReader,
    parse_line,
    parse_when,
    read_lines,
)
from supervisor.explain.verdict import decide

FIXTURES = Path(__file__).resolve().parents[1] / "explain_fixtures"
SAMPLE = {"JARLPM_APP": "sampleapp:app", "JARLPM_APP_DIR": str(APPS)}
T0 = 1_795_600_000.0  # 2026-11-25 (seconds since the epoch)


# -- helpers ----------------------------------------------------------------------------------------
def report(path: Path | str, *args: str, code: int = 0) -> dict[str, Any]:
    """``jarlpm explain PATH --json`` run in-process; the parsed document (the exit code must be ``code``)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert cli.main([str(path), "--json", *args]) == code
    doc: dict[str, Any] = json.loads(out.getvalue())
    return doc


def text_report(path: Path | str, *args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main([str(path), *args]) == 0
    return out.getvalue()


def verdict_incident(doc: dict[str, Any]) -> dict[str, Any]:
    index = doc["verdict"]["incident"]
    assert index is not None, doc["verdict"]
    incident: dict[str, Any] = doc["incidents"][index]
    return incident


def kinds(doc: dict[str, Any]) -> list[str]:
    return [i["kind"] for i in doc["incidents"]]


def signature(lines: list[str]) -> tuple[list[tuple[str, str, int | None]], list[tuple[str, str]]]:
    """What a reader of the report sees: each incident (kind, summary, supervisor) and each root cause."""
    found = incidents(lines)
    verdict = decide(found)
    return ([(i.kind, i.summary, i.supervisor) for i in found], [(c.cause, c.fix) for c in verdict.causes])


def assert_every_envelope_agrees(raw: list[str]) -> None:
    """The log gives the same incidents and root causes in every envelope as raw."""
    expected = signature(raw)
    for name, wrap in ENVELOPES.items():
        assert signature(wrap(raw)) == expected, name


def save(sup: Supervisor, path: Path) -> Path:
    path.write_text("\n".join(sup.lines) + "\n")
    return path


def line(t: float, event: str, source: str = "supervisor", pid: int | None = 100, level: str = "info",
         **fields: Any) -> str:
    """One log line as the supervisor writes it, ``t`` seconds after T0."""
    from supervisor.explain.fmt import timestamp

    return json.dumps({"timestamp": timestamp(T0 + t), "level": level, "event": event, "source": source,
                       "pid": pid, **fields})


def incidents(lines: list[str]) -> list[Incident]:
    return group(EventReader().events(lines))


def of_kind(found: list[Incident], kind: str) -> list[Incident]:
    return [i for i in found if i.kind == kind]


def start_lines(t: float = 0.0, sup: int = 100, child: int = 101) -> list[str]:
    """A clean start: the four phases, one server process ready."""
    out = []
    for n, phase in enumerate(("validate_env", "wait_for_db", "migrate", "warm_pool")):
        out.append(line(t + n * 0.1, "phase.started", pid=sup, phase=phase))
        out.append(line(t + n * 0.1 + 0.05, "phase.completed", pid=sup, phase=phase, duration_ms=50))
    out.append(line(t + 0.5, "child.spawned", pid=child, worker=0))
    out.append(line(t + 0.9, "child.ready", pid=child, worker=0, startup_ms=400))
    out.append(line(t + 0.9, "supervisor.ready", pid=sup, workers=1, pids=[child]))
    return out


def crash(t: float, child: int, sup: int = 100, was_ready: bool = False, restarts: int = 1,
          exc: str = "ModuleNotFoundError: No module named 'nope'", **exit_fields: Any) -> list[str]:
    tail = ["Traceback (most recent call last):", '  File "/srv/app/main.py", line 3, in <module>',
            "    import nope", exc]
    fields = exit_fields or {"exit_code": 1}
    return [line(t, "child.exited", pid=child, level="error", worker=0, uptime_s=0.5, was_ready=was_ready,
                 stderr_tail=tail, hint="see stderr_tail", **fields),
            line(t, "child.restarting", pid=sup, level="warning", worker=0, delay_s=0.5, restarts=restarts,
                 previous_pid=child),
            line(t + 0.5, "child.spawned", pid=child + 1, worker=0)]


# -- the real supervisor through real incidents --------------------------------------------------------
@pytest.mark.slow
class TestRealIncidents:
    """Logs of the real supervisor, explained: each verdict names the cause and the fix."""

    def test_crash_loop(self, app_db: str, tmp_path: Path) -> None:
        """An app that cannot import: exit 70, one crash-loop incident naming the missing module."""
        sup = Supervisor(base_env(app_db, JARLPM_APP="badapp:app", JARLPM_APP_DIR=str(APPS),
                                  CRASH_LOOP_LIMIT="3"))
        try:
            assert sup.wait_exit(30) == 70
        finally:
            sup.kill()
        log = save(sup, tmp_path / "crash.log")
        doc = report(log)
        assert_every_envelope_agrees(sup.lines)
        assert kinds(doc).count("crash_loop") == 1
        loop = verdict_incident(doc)
        assert loop["kind"] == "crash_loop" and loop["count"] == 3
        assert "ModuleNotFoundError" in doc["verdict"]["cause"]
        assert "not_a_real_module_jarlpm" in doc["verdict"]["cause"]
        assert "install the missing dependency" in doc["verdict"]["fix"]
        assert "badapp.py:3" in doc["verdict"]["cause"]
        # The same log through `python -m supervisor.explain` on standard input, as text.
        proc = subprocess.run([sys.executable, "-m", "supervisor.explain", "-"], input=log.read_bytes(),
                              cwd=REPO, capture_output=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        text = proc.stdout.decode()
        assert "crash loop: 3 server processes died before becoming ready" in text
        assert "exit 70, the server kept crashing" in text
        assert "Root cause: every server process died during start-up: ModuleNotFoundError" in text

    def test_hang(self, app_db: str, tmp_path: Path) -> None:
        """A blocking call in an async endpoint: the verdict names the stalled function."""
        sup = Supervisor(base_env(app_db, HEARTBEAT_TIMEOUT="2", **SAMPLE))
        try:
            sup.wait_event("supervisor.ready", timeout=30)
            with contextlib.suppress(OSError):
                http_get(sup.port, "/block?s=30", timeout=15)  # the process is killed under it
            sup.wait_event("child.unresponsive", timeout=15)
            wait_for(lambda: len(sup.find("child.ready")) >= 2, 20, "the replacement ready")
            sup.signal(signal.SIGTERM)
            assert sup.wait_exit(20) == 0
        finally:
            sup.kill()
        doc = report(save(sup, tmp_path / "hang.log"))
        assert_every_envelope_agrees(sup.lines)
        hang = verdict_incident(doc)
        assert hang["kind"] == "hang"
        assert hang["facts"]["function"] == "stalled_in_blocking_call"
        assert hang["facts"]["endpoint"] == "block"
        assert "stalled_in_blocking_call" in doc["verdict"]["cause"]
        assert "`def`" in doc["verdict"]["fix"] and "asyncio.to_thread" in doc["verdict"]["fix"]
        assert kinds(doc)[0] == "start" and kinds(doc)[-1] == "stop"

    def test_failed_migration(self, app_db: str, tmp_path: Path) -> None:
        """A revision that selects from a missing table: exit 65, the verdict names it and the error."""
        ini = copy_alembic(tmp_path)
        head = head_of(ini)
        add_revision(ini, "0099_broken", "SELECT * FROM no_such_table")
        sup = Supervisor(base_env(app_db, JARLPM_ALEMBIC_INI=str(ini), **SAMPLE))
        try:
            assert sup.wait_exit(30) == 65
        finally:
            sup.kill()
        doc = report(save(sup, tmp_path / "migrate.log"))
        assert_every_envelope_agrees(sup.lines)
        assert kinds(doc).count("start_failed") == 1  # the failure is logged twice, explained once
        assert "0099_broken" in doc["verdict"]["cause"] and "no_such_table" in doc["verdict"]["cause"]
        assert "42P01" in doc["verdict"]["cause"]
        assert doc["verdict"]["fix"].startswith("fix revision 0099_broken")
        assert f"stays at {head}" in doc["verdict"]["fix"]

    def test_database_up_late(self, own_cluster: LocalPostgres, tmp_path: Path) -> None:
        """Started while PostgreSQL is down, which then starts: one outage from first retry to recovery."""
        _, url = new_app_database(own_cluster)
        own_cluster.stop()
        sup = Supervisor(base_env(url, DB_WAIT_TIMEOUT="30", **SAMPLE))
        try:
            wait_for(lambda: len(sup.find("db.wait.retry")) >= 3, 20, "three db.wait.retry events")
            own_cluster.start()
            sup.wait_event("supervisor.ready", timeout=30)
            sup.signal(signal.SIGTERM)
            assert sup.wait_exit(20) == 0
        finally:
            sup.kill()
        doc = report(save(sup, tmp_path / "late.log"))
        assert_every_envelope_agrees(sup.lines)
        (outage,) = [i for i in doc["incidents"] if i["kind"] == "db_outage"]
        retries = len(sup.find("db.wait.retry"))
        assert outage["facts"]["signals"] == {"db.wait.retry": retries} and outage["facts"]["recovered"]
        first_retry = sup.find("db.wait.retry")[0]["timestamp"]
        completed = sup.find("phase.completed", phase="wait_for_db")[0]["timestamp"]
        assert (outage["start"], outage["end"]) == (first_retry, completed)
        assert outage["facts"]["recovered_by"] == "wait_for_db completed"
        start = next(i for i in doc["incidents"] if i["kind"] == "start")
        assert f"({retries} retries)" in start["summary"]
        assert doc["verdict"]["kind"] == "db_outage"
        assert "not reachable yet when the supervisor started" in doc["verdict"]["cause"]


@pytest.mark.slow
class TestTwoIncidents:
    """Issue #14's serving day, run for real: a lock held by a psql session, then PostgreSQL stopped."""

    def test_two_root_causes_in_every_envelope(self) -> None:
        """Two root causes, the lock contention (blocker's pid, the table) then the outage (its duration)."""
        lines = make_two_incidents.run()
        assert_two_root_causes(lines)
        assert_every_envelope_agrees(lines)
        # The same through the command line, as journalctl -o json on standard input.
        proc = subprocess.run([sys.executable, "-m", "supervisor.explain", "-"], cwd=REPO, timeout=60, check=False,
                              input="\n".join(journal_json(lines)).encode(), capture_output=True)
        assert proc.returncode == 0, proc.stderr
        assert "Verdict: 2 independent root causes" in proc.stdout.decode()


def assert_two_root_causes(lines: list[str], blocker: int | None = None) -> None:
    """The verdict of issue #14's log: lock contention naming pid and table, then the outage with its duration.

    ``blocker`` is the psql session's pid; by default, the one the raw log's pool report names.
    """
    verdict = decide(incidents(lines))
    assert [c.incident.kind for c in verdict.causes] == ["pool_exhausted", "db_outage"], verdict.causes
    lock, outage = verdict.causes
    if blocker is None:
        report_line = next(json.loads(x) for x in lines if '"db.pool.exhausted"' in x)
        blocker = report_line["database"]["blockers"][0]["pid"]
    assert f"PostgreSQL session pid {blocker} (psql" in lock.cause and "AccessExclusiveLock on epics" in lock.cause
    assert f"pg_terminate_backend({blocker})" in lock.fix
    assert outage.cause.startswith("the database was unreachable for ")
    seconds = float(outage.cause.split("unreachable for ", 1)[1].split(" s:", 1)[0])
    assert 3.0 <= seconds < 60.0  # stopped for 4 s; the first failure and the recovery are seen by requests
    assert lock.incident not in outage.explains


# -- captured logs ------------------------------------------------------------------------------------
class TestCapturedLogs:
    """The logs in tests/explain_fixtures/ (captured from real runs, one synthetic) and their verdicts."""

    def test_crash_loop(self) -> None:
        """The crash loop is one incident with the last traceback's exception."""
        doc = report(FIXTURES / "crash_loop.log")
        assert kinds(doc) == ["start_incomplete", "migration", "crash_loop", "stop"]
        assert "ModuleNotFoundError: No module named 'not_a_real_module_jarlpm'" in doc["incidents"][2]["summary"]
        assert doc["verdict"]["kind"] == "crash_loop"

    def test_hang(self) -> None:
        """The hang names the innermost app frame of the event-loop thread, not the control reader."""
        doc = report(FIXTURES / "hang.log")
        hang = verdict_incident(doc)
        assert hang["facts"]["where"] == ("stalled_in_blocking_call (sampleapp.py:42) in endpoint block")
        assert hang["facts"]["killed"] == 1 and hang["facts"]["restarts"] == 1

    def test_stopped_process_is_not_a_blocking_call(self, tmp_path: Path) -> None:
        """A child.unresponsive without stacks from a stopped process: "stopped", no blocking call blamed."""
        lines = []
        for line in (FIXTURES / "hang.log").read_text().splitlines():
            if '"child.unresponsive"' in line:
                event = json.loads(line)
                event.update(stacks=[], process_state="stopped")
                line = json.dumps(event)
            lines.append(line)
        log = tmp_path / "stopped.log"
        log.write_text("\n".join(lines) + "\n")
        doc = report(log)
        hang = verdict_incident(doc)
        assert hang["facts"]["stopped"] is True and hang["summary"].startswith("stopped")
        assert "stopped" in doc["verdict"]["cause"] and "blocking call inside" not in doc["verdict"]["cause"]

    def test_failed_migration(self) -> None:
        """A failed migration names the revision, SQLSTATE tip and the revision the database stays at."""
        doc = report(FIXTURES / "migration_failed.log")
        assert doc["verdict"]["kind"] == "start_failed"
        assert "table that does not exist" in doc["verdict"]["fix"]

    def test_config_error(self) -> None:
        """Exit 78: every variable's problem, and the misspelt name's correction."""
        doc = report(FIXTURES / "config_error.log")
        fix = doc["verdict"]["fix"]
        assert "DB_POOL_SIZE is 'lots'" in fix and "HEARTBEAT_TIMEOUT is -1" in fix
        assert "DB_POOL_SIZ → DB_POOL_SIZE" in fix

    def test_outage_while_serving_and_reload(self) -> None:
        """503s with db.unavailable are one outage, recovered by the first good API answer; a reload."""
        doc = report(FIXTURES / "db_outage_while_serving.log")
        assert kinds(doc) == ["start", "db_outage", "reload", "stop"]
        outage = doc["incidents"][1]
        assert outage["facts"]["http_503"] == 5 and outage["facts"]["signals"] == {"db.unavailable": 5}
        assert outage["facts"]["recovered_by"] == "GET /api/epics answered 200"
        assert "reloaded in" in doc["incidents"][2]["summary"] and "1 server process replaced" in doc[
            "incidents"][2]["summary"]
        assert doc["verdict"]["kind"] == "db_outage"

    def test_restarts_and_reload_failed(self) -> None:
        """Deaths after serving are one restarts incident; a reload's failed migration is one incident."""
        doc = report(FIXTURES / "restarts_and_reload_failed.log")
        assert kinds(doc) == ["start", "migration", "restarts", "reload_failed", "stop"]
        restarts = doc["incidents"][2]
        assert restarts["count"] == 2 and restarts["facts"]["causes"] == {"exit 7": 2}
        assert "0004_add_priority" in doc["incidents"][3]["summary"]
        # Two independent root causes, equally severe: the most recent first.
        causes = doc["verdict"]["root_causes"]
        assert [c["kind"] for c in causes] == ["reload_failed", "restarts"]
        assert "exit 7" in causes[1]["fix"] and "0004_add_priority" in causes[0]["fix"]

    def test_pool_lock_contention_synthetic(self) -> None:
        """Exhaustion by lock contention: the verdict names the blocking pid and how to end it."""
        doc = report(FIXTURES / "pool_lock_contention.log")
        assert doc["input"]["truncated"] == 1
        episode = verdict_incident(doc)
        assert episode["kind"] == "pool_exhausted" and episode["facts"]["diagnosis"] == "lock_contention"
        assert episode["count"] == 3  # two reports and the line cut short, one episode
        assert episode["facts"]["suppressed"] == 14 and episode["facts"]["timeouts"] == 20
        assert episode["facts"]["http_503"] == 20 and episode["facts"]["peak_waiting"] == 18
        assert "pid 48213" in doc["verdict"]["cause"] and "idle in transaction" in doc["verdict"]["cause"]
        assert "SELECT pg_terminate_backend(48213)" in doc["verdict"]["fix"]
        assert "ALTER ROLE jarlpm_app SET idle_in_transaction_session_timeout" in doc["verdict"]["fix"]
        assert "http_errors" not in kinds(doc)  # every 503 is explained by the episode

    def test_pool_fixture_is_reproducible(self) -> None:
        """The synthetic fixture is what its generator writes."""
        proc = subprocess.run([sys.executable, str(FIXTURES / "make_pool_lock_contention.py")],
                              capture_output=True, text=True, timeout=30, check=True)
        assert proc.stdout.strip() == (FIXTURES / "pool_lock_contention.log").read_text().strip()

    def test_pool_lock_contention_real(self) -> None:
        """The real pool report of a LOCK TABLE in another session: its pid, lock, and a lock_timeout."""
        doc = report(FIXTURES / "pool_lock_contention_real.log")
        assert "pid 12848 (maintenance-psql, holds AccessExclusiveLock on epics)" in doc["verdict"]["cause"]
        assert "pg_terminate_backend(12848)" in doc["verdict"]["fix"] and "lock_timeout" in doc["verdict"]["fix"]

    def test_two_incidents_real(self) -> None:
        """The captured serving day of issue #14: two root causes, in every envelope, as text and JSON."""
        lines = (FIXTURES / "two_incidents_real.log").read_text().splitlines()
        assert_two_root_causes(lines)
        for wrap in ENVELOPES.values():
            assert_two_root_causes(wrap(lines), blocker=5417)
        doc = report(FIXTURES / "two_incidents_real.log")
        assert [c["kind"] for c in doc["verdict"]["root_causes"]] == ["pool_exhausted", "db_outage"]
        assert "pid 5417 (psql, holds AccessExclusiveLock on epics)" in doc["verdict"]["cause"]
        assert doc["verdict"]["root_causes"][1]["cause"].startswith("the database was unreachable for 4.2 s")
        text = text_report(FIXTURES / "two_incidents_real.log")
        assert "Verdict: 2 independent root causes, most severe first" in text
        assert "  1. Root cause: the pool's connections waited on a lock held by PostgreSQL session pid 5417" in text
        assert "  2. Root cause: the database was unreachable for 4.2 s" in text

    def test_pool_connection_leak(self) -> None:
        """A leaking route is named with the line that took the connection."""
        doc = report(FIXTURES / "pool_connection_leak.log")
        assert verdict_incident(doc)["facts"]["diagnosis"] == "connection_leak"
        assert "GET /test/leak" in doc["verdict"]["cause"]
        assert "tests/apps/poolapp.py:30 in leak" in doc["verdict"]["fix"]
        assert "pool_leak_suspected" in kinds(doc)


# -- grouping, from hand-written events ----------------------------------------------------------------
class TestGrouping:
    """Events become few incidents: one per start, crash loop, hang, episode or outage."""

    def test_start_summary(self) -> None:
        """The start line lists each phase's duration, the retries and the migration applied."""
        lines = [line(0, "phase.started", phase="validate_env"),
                 line(0.003, "phase.completed", phase="validate_env", duration_ms=3),
                 line(0.01, "phase.started", phase="wait_for_db")]
        lines += [line(0.02 + n * 0.3, "db.wait.retry", attempt=n + 1, delay_s=0.3, error="refused",
                       remaining_s=60.0 - n) for n in range(4)]
        lines += [line(1.21, "phase.completed", phase="wait_for_db", duration_ms=1200),
                  line(1.21, "phase.started", phase="migrate"),
                  line(2.0, "migrate.applied", from_revision="0002_features", to_revision="0003_user_stories",
                       revisions=["0003_user_stories"]),
                  line(2.01, "phase.completed", phase="migrate", duration_ms=800),
                  line(2.01, "phase.started", phase="warm_pool"),
                  line(2.05, "phase.completed", phase="warm_pool", duration_ms=40),
                  line(2.3, "supervisor.ready", workers=1, pids=[101])]
        (start,) = of_kind(incidents(lines), "start")
        assert start.summary == ("started in 2.3 s: validate_env 3 ms, wait_for_db 1.2 s (4 retries), migrate "
                                 "800 ms (applied 0002_features→0003_user_stories, 1 revision), warm_pool 40 ms; "
                                 "1 worker ready")
        assert start.facts["db_wait_timeout_s"] == 60.0

    def test_crash_loop_is_one_incident(self) -> None:
        """Three deaths before readiness and the give-up are one crash_loop with count 3."""
        lines = start_lines()[:8] + [line(0.5, "child.spawned", pid=101, worker=0)]
        for n in range(3):
            lines += crash(1 + n, 101 + n, restarts=n + 1)[:2]
        lines += [line(4, "child.crash_loop", level="error", deaths=3, limit=3, last_pid=103,
                       stderr_tail=["    import nope", "ModuleNotFoundError: No module named 'nope'"]),
                  line(4.1, "supervisor.stopped", exit_code=70)]
        found = incidents(lines)
        (loop,) = of_kind(found, "crash_loop")
        assert loop.count == 3 and loop.facts["exception"] == "ModuleNotFoundError: No module named 'nope'"
        assert loop.facts["causes"] == {"exit 1": 3}
        assert [i.kind for i in found][-1] == "stop" and found[-1].facts["exit_code"] == 70

    def test_restarts_far_apart_are_separate(self) -> None:
        """Deaths after serving, more than five minutes apart, are two restarts incidents."""
        lines = start_lines()
        lines += crash(100, 101, was_ready=True, signal="SIGKILL")[:2]
        lines += crash(1000, 102, was_ready=True, signal="SIGKILL")[:2]
        found = of_kind(incidents(lines), "restarts")
        assert [i.count for i in found] == [1, 1]
        assert decide(found).cause.startswith("server processes were killed by SIGKILL")

    def test_hang_picks_the_event_loop_thread(self) -> None:
        """When the current thread is the control reader, the main thread's top frame is the stall."""
        stacks = ["Current thread 0x01 (most recent call first):",
                  '  File "/srv/supervisor/worker.py", line 54 in _read',
                  '  File "/usr/lib/python3.11/threading.py", line 982 in run', "",
                  "Thread 0x02 (most recent call first):",
                  '  File "/usr/lib/python3.11/socket.py", line 705 in readinto',
                  '  File "/srv/app/reports.py", line 42 in render_pdf',
                  '  File "/srv/app/reports.py", line 17 in export',
                  '  File "/srv/.venv/lib/python3.11/site-packages/fastapi/routing.py", line 381 in run']
        lines = start_lines() + [line(10, "child.unresponsive", pid=101, level="error", worker=0, stalled_s=31.0,
                                      heartbeat_timeout_s=30.0, stacks=stacks)]
        (hang,) = of_kind(incidents(lines), "hang")
        assert hang.facts["function"] == "readinto" and hang.facts["endpoint"] == "export"
        assert hang.facts["where"] == ("readinto (socket.py:705), called from render_pdf (reports.py:42) "
                                       "in endpoint export")

    def test_duplicate_failure_is_ignored(self) -> None:
        """phase.failed logged again as phase "supervise" with the same error is the same failure."""
        failed = {"exit_code": 65, "error": "migration x failed: boom", "hint": "fix x", "revision": "x"}
        lines = [line(0, "phase.started", phase="migrate"),
                 line(1, "phase.failed", level="error", phase="migrate", duration_ms=1000, **failed),
                 line(1, "phase.failed", level="error", phase="supervise", **failed),
                 line(1.1, "supervisor.stopped", exit_code=65)]
        assert [i.kind for i in incidents(lines)] == ["start_failed", "stop"]

    def test_outage_recovers_on_a_database_request(self) -> None:
        """The liveness check succeeding is no recovery; an API request answering is."""
        lines = start_lines() + [
            line(10, "server.log", source="server", pid=101, level="warning", message="db.unavailable",
                 path="/api/epics", error="connection refused"),
            line(10, "http.access", source="server", pid=101, method="GET", path="/api/epics", status=503),
            line(12, "http.access", source="server", pid=101, method="GET", path="/api/health", status=200),
            line(14, "http.access", source="server", pid=101, method="GET", path="/api/epics", status=200),
        ]
        (outage,) = of_kind(incidents(lines), "db_outage")
        assert (outage.start, outage.end) == (T0 + 10, T0 + 14)
        assert outage.facts["http_503"] == 1 and outage.facts["recovered"]

    def test_flapping_outage_is_one_incident(self) -> None:
        """A failure within ten seconds of a recovery reopens the same outage."""
        lines = [line(0, "db.wait.retry", attempt=1, delay_s=0.1, error="refused"),
                 line(1, "phase.completed", phase="wait_for_db", duration_ms=1000),
                 line(5, "server.log", source="server", pid=101, message="db.unavailable", error="refused"),
                 line(6, "db.pool.warmed", source="server", pid=101)]
        (outage,) = of_kind(incidents(lines), "db_outage")
        assert outage.facts["flaps"] == 1 and "flapping ×2" in outage.summary

    def test_503s_during_a_pool_episode_belong_to_it(self) -> None:
        """503s next to a pool report count in its episode; a 500 elsewhere is an http_errors incident."""
        lines = [line(0, "db.pool.exhausted", source="server", pid=101, level="error", pool_size=5,
                      max_overflow=10, checked_out=15, waiting=4, timeout_s=30, diagnosis="slow_queries",
                      holders=[{"method": "GET", "route": "/api/report", "count": 15, "longest_hold_s": 31}]),
                 line(1, "http.access", source="server", pid=101, method="GET", path="/api/report", status=503),
                 line(500, "http.access", source="server", pid=101, method="POST", path="/api/epics", status=500)]
        found = incidents(lines)
        (episode,) = of_kind(found, "pool_exhausted")
        (errors,) = of_kind(found, "http_errors")
        assert episode.facts["http_503"] == 1 and errors.facts["by"] == {"500 POST /api/epics": 1}

    def test_cut_report_joins_its_episode(self) -> None:
        """A db.pool.exhausted line cut before its diagnosis counts in the episode under way."""
        full = line(0, "db.pool.exhausted", source="server", pid=101, level="error", checked_out=15, waiting=2,
                    diagnosis="lock_contention", database={"blockers": [{"pid": 77, "blocking": 15}]})
        cut = line(30, "db.pool.exhausted", source="server", pid=101, level="error", checked_out=15, waiting=9,
                   holders=[{"route": "/x", "count": 15}], diagnosis="lock_contention")
        cut = cut[: cut.index('"holders"') + 20]
        (episode,) = of_kind(incidents([full, cut]), "pool_exhausted")
        assert episode.count == 2 and episode.facts["peak_waiting"] == 9
        assert episode.facts["blocker_pids"] == [77]

    def test_interleaved_supervisors(self) -> None:
        """Two supervisors' lines interleaved: each child's events go to the supervisor that owns it."""
        a = start_lines(0, sup=100, child=101)
        b = start_lines(0.2, sup=200, child=201)
        a += crash(5, 101, sup=100, was_ready=True, exc="RuntimeError: a")
        b += crash(5.1, 201, sup=200, was_ready=True, exc="RuntimeError: b")
        b += crash(5.2, 202, sup=200, was_ready=True, restarts=2, exc="RuntimeError: b")
        mixed = [x for pair in zip(a, b, strict=False) for x in pair] + b[len(a):] + a[len(b):]
        found = of_kind(incidents(mixed), "restarts")
        by_supervisor = {i.supervisor: (i.count, i.facts["exception"]) for i in found}
        assert by_supervisor == {100: (1, "RuntimeError: a"), 200: (2, "RuntimeError: b")}
        assert len(of_kind(incidents(mixed), "start")) == 2

    def test_reload_incidents(self) -> None:
        """A reload that replaces the processes and one whose migration fails are one incident each."""
        lines = start_lines() + [
            line(10, "supervisor.reloading", workers=1), line(10, "phase.started", phase="migrate"),
            line(10.1, "migrate.up_to_date", revision="0003"), line(10.1, "phase.completed", phase="migrate",
                                                                   duration_ms=100),
            line(10.2, "child.spawned", pid=150, worker=0), line(11, "child.ready", pid=150, worker=0),
            line(11, "supervisor.reloaded", pids=[150]),
            line(20, "supervisor.reloading", workers=1), line(20, "phase.started", phase="migrate"),
            line(20.5, "phase.failed", level="error", phase="migrate", exit_code=65, error="migration 0004 failed",
                 hint="fix 0004", revision="0004"),
            line(20.5, "supervisor.reload_failed", level="error", reason="migrate", error="migration 0004 failed",
                 exit_code=65, hint="fix 0004"),
        ]
        found = incidents(lines)
        assert [i.kind for i in found] == ["start", "reload", "reload_failed"]
        assert found[1].summary.startswith("reloaded in 1.0 s: migrate 100 ms (up to date at 0003)")
        assert "migration 0004 failed" in found[2].summary


class TestVerdict:
    """The root cause across incidents, and a fix with the variable, pid or route to change."""

    def test_outage_explains_pool_trouble(self) -> None:
        """An outage overlapping pool exhaustion is the root cause; the episode is its consequence."""
        lines = start_lines() + [
            line(10, "server.log", source="server", pid=101, message="db.unavailable", error="refused"),
            line(11, "db.pool.exhausted", source="server", pid=101, checked_out=15, waiting=3,
                 diagnosis="undersized_pool", pool_size=5, max_overflow=10),
            line(60, "http.access", source="server", pid=101, method="GET", path="/api/epics", status=200)]
        verdict = decide(incidents(lines))
        assert verdict.incident is not None and verdict.incident.kind == "db_outage"
        assert [i.kind for i in verdict.explains] == ["pool_exhausted"]

    def test_two_independent_incidents(self) -> None:
        """A lock contention that cleared 3 s before an outage began is not its effect: two root causes."""
        blocker = {"pid": 4242, "application": "psql", "locks": ["AccessExclusiveLock on epics"]}
        lines = start_lines() + [
            line(10, "db.pool.saturated", source="server", pid=101, level="warning", checked_out=2, waiting=4),
            line(11, "db.pool.exhausted", source="server", pid=101, level="error", checked_out=2, waiting=4,
                 pool_size=2, max_overflow=0, diagnosis="lock_contention", database={"blockers": [blocker]}),
            line(12, "http.access", source="server", pid=101, method="GET", path="/api/epics", status=200),
            line(15, "server.log", source="server", pid=101, message="db.unavailable", error="refused"),
            line(15, "http.access", source="server", pid=101, method="GET", path="/api/epics", status=503),
            line(19, "http.access", source="server", pid=101, method="GET", path="/api/epics", status=200)]
        verdict = decide(incidents(lines))
        assert [c.incident.kind for c in verdict.causes] == ["pool_exhausted", "db_outage"]
        lock, outage = verdict.causes
        assert "pid 4242" in lock.cause and "AccessExclusiveLock on epics" in lock.cause
        assert "pg_terminate_backend(4242)" in lock.fix and [i.kind for i in lock.explains] == ["pool_saturated"]
        assert outage.cause.startswith("the database was unreachable for 4.0 s") and outage.explains == []
        assert verdict.cause == lock.cause  # the most severe first, also at the top for scripts

    def test_outage_explains_only_what_it_can_cause(self) -> None:
        """During an outage, a crash loop on a missing module is still its own root cause."""
        lines = start_lines() + [line(10, "server.log", source="server", pid=101, message="db.unavailable",
                                      error="refused")]
        lines += crash(11, 101, was_ready=True)[:2] + [
            line(30, "http.access", source="server", pid=102, method="GET", path="/api/epics", status=200)]
        kinds_found = [c.incident.kind for c in decide(incidents(lines)).causes]
        assert kinds_found == ["restarts", "db_outage"]  # equally severe: the most recent first
        lines = [x.replace("ModuleNotFoundError: No module named 'nope'", "psycopg2.OperationalError: refused")
                 for x in lines]
        verdict = decide(incidents(lines))
        assert [c.incident.kind for c in verdict.causes] == ["db_outage"]
        assert [i.kind for i in verdict.explains] == ["restarts"]

    def test_explanations_need_time_and_the_same_supervisor(self) -> None:
        """An exhaustion after the outage has ended is not its effect; one supervisor's crash loop is not another's."""
        outage = Incident("db_outage", T0, T0 + 4, facts={"recovered": True})
        later = Incident("pool_exhausted", T0 + 10, T0 + 11, facts={"diagnosis": "undersized_pool"})
        during = Incident("pool_exhausted", T0 + 1, T0 + 2, facts={"diagnosis": "undersized_pool"})
        assert not explains(outage, later) and explains(outage, during)
        assert not explains(later, outage)
        loop = Incident("crash_loop", T0, T0 + 3, supervisor=1, origin="api-a")
        assert explains(loop, Incident("start_incomplete", T0, T0 + 3, supervisor=1, origin="api-a"))
        assert not explains(loop, Incident("start_incomplete", T0, T0 + 3, supervisor=1, origin="api-b"))

    def test_replicas_are_labelled(self) -> None:
        """Incidents of supervisors in different pods show the pod and the pid; the header counts both."""
        a = [f"[pod/api-a/jarlpm] {x}" for x in crash(5, 7, sup=1, was_ready=True, exc="RuntimeError: a")]
        b = [f"[pod/api-b/jarlpm] {x}" for x in crash(6, 7, sup=1, was_ready=True, exc="RuntimeError: b")]
        reader = EventReader()
        found = group(reader.events(a + b))
        from supervisor.explain import render

        text = render.text(reader.stats, found, decide(found), {})
        assert "2 supervisors (api-a pid 1, api-b pid 1)" in text.splitlines()[0]
        assert "[api-a 1] 1 server process died after serving" in text
        assert "[api-b 1] 1 server process died after serving" in text

    def test_undersized_pool_names_the_new_size(self) -> None:
        """Peak demand 22 with 10 overflow: raise DB_POOL_SIZE from 5 to 12."""
        lines = [line(0, "db.pool.exhausted", source="server", pid=101, checked_out=15, waiting=7,
                      diagnosis="undersized_pool", pool_size=5, max_overflow=10, timeout_s=30)]
        assert "raise DB_POOL_SIZE from 5 to 12" in decide(incidents(lines)).fix

    def test_clean_run(self) -> None:
        """A start and a requested stop: no incident to fix."""
        lines = start_lines() + [line(5, "supervisor.stopping", signal="SIGTERM", graceful=True),
                                 line(6, "supervisor.stopped", exit_code=0)]
        verdict = decide(incidents(lines))
        assert verdict.cause == "no incident: 1 clean start" and verdict.fix == "nothing to fix"


# -- reading awkward lines -----------------------------------------------------------------------------
class TestReader:
    """Lines through journald or docker, cut short, of other programs, or of the wrong types."""

    def test_prefixes(self) -> None:
        """journald and `docker logs -t` prefixes are skipped; a JSON object without a time takes theirs."""
        body = json.dumps({"level": "info", "event": "supervisor.ready", "source": "supervisor", "pid": 7})
        kind, event = parse_line(f"2026-11-25T10:00:00.123456789Z {body}")
        assert kind == "event" and event is not None and event["timestamp"].startswith("2026-11-25T10:00:00.1")
        kind, event = parse_line(f"Nov 25 10:00:00 web-1 jarlpm[7]: {line(0, 'child.ready', pid=8)}")
        assert event is not None and event["event"] == "child.ready" and event["_ts"] == T0

    def test_truncated_line_is_salvaged(self) -> None:
        """The scalar fields before the cut survive; the event counts as truncated."""
        whole = line(0, "phase.failed", phase="migrate", exit_code=65, error="x" * 50)
        kind, event = parse_line(whole[: whole.index('"error"') + 20])
        assert kind == "truncated" and event is not None
        assert (event["event"], event["phase"], event["exit_code"]) == ("phase.failed", "migrate", 65)

    def test_other_lines(self) -> None:
        """Plain text is 'other'; JSON that is not a log event of ours is 'foreign'."""
        assert parse_line("kernel: eth0 link up")[0] == "other"
        assert parse_line('{"msg": "hello", "ts": 1}')[0] == "foreign"
        assert parse_line("[1, 2, 3]")[0] == "other"

    def test_server_log_messages_are_event_names(self) -> None:
        """A stdlib record logged as ``db.unavailable`` reads as that event."""
        _, event = parse_line(line(0, "server.log", source="server", message="db.pool.timeout", path="/x"))
        assert event is not None and event["event"] == "db.pool.timeout"

    def test_wrong_types_are_dropped(self) -> None:
        """A field of the wrong type is treated as missing, never trusted."""
        _, event = parse_line(line(0, "child.unresponsive", pid=None, stacks=5, stalled_s=float("nan"),
                                   pids="x", worker=True).replace('"pid": null', '"pid": "12"'))
        assert event is not None and event["pid"] == 12
        assert not {"stacks", "stalled_s", "pids", "worker"} & set(event)

    def test_fast_access_path_matches_json(self) -> None:
        """Access lines read without a JSON parse give the same fields as the general path."""
        raw = line(0, "http.access", source="server", pid=5, logger="uvicorn.access", client="1.2.3.4:5",
                   method="GET", path="/api/epics", http_version="1.1", status=503)
        _, fast = parse_line(raw)
        _, slow = parse_line(raw[:-1] + ', "extra": 1}')  # not the exact form: the general path
        full = json.loads(raw)
        assert fast is not None and slow is not None
        for key in ("timestamp", "level", "event", "source", "pid", "method", "path", "status"):
            assert fast[key] == full[key] == slow[key]

    def test_when(self) -> None:
        """--since/--until take ISO 8601 (UTC when no offset) or an age before now."""
        from datetime import UTC, datetime

        now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
        assert parse_when("2h", now) == now.timestamp() - 7200
        assert parse_when("1h30m", now) == now.timestamp() - 5400
        assert parse_when("2026-11-25T10:00:00", now) == parse_when("2026-11-25T10:00:00Z", now)
        with pytest.raises(BadTime):
            parse_when("yesterday-ish", now)

    def test_window(self) -> None:
        """Events outside --since/--until are counted and left out."""
        reader = EventReader(since=T0 + 1, until=T0 + 2)
        events = list(reader.events([line(t, "child.ready", pid=1) for t in (0, 1, 1.5, 2, 3)]))
        assert [e["_ts"] - T0 for e in events] == [1, 1.5, 2]
        assert reader.stats.outside_window == 2

    def test_long_lines_and_bad_bytes(self) -> None:
        """Invalid UTF-8 is replaced; a line longer than MAX_LINE comes in pieces; CRLF is stripped."""
        from supervisor.explain import reader as reader_module

        data = b"ok\r\n\xff\xfe bad\n" + b"x" * (reader_module.MAX_LINE + 10) + b"\nlast"
        lines = list(read_lines(io.BytesIO(data), chunk=4096))
        assert lines[0] == "ok" and lines[1] == "\ufffd\ufffd bad"
        assert [len(x) for x in lines[2:4]] == [reader_module.MAX_LINE, 10] and lines[4] == "last"


# -- envelopes -------------------------------------------------------------------------------------------
class TestEnvelopes:
    """Every envelope people fetch logs in is opened down to our line, line by line and mixed."""

    @pytest.mark.parametrize("envelope", sorted(ENVELOPES))
    @pytest.mark.parametrize("fixture", ["two_incidents_real.log", "pool_lock_contention.log", "crash_loop.log",
                                         "migration_failed.log", "db_outage_while_serving.log", "hang.log"])
    def test_same_report_in_every_envelope(self, fixture: str, envelope: str) -> None:
        """A captured log gives the same incidents and root causes raw and in ``envelope``."""
        raw = (FIXTURES / fixture).read_text().splitlines()
        reader = EventReader()
        wrapped = ENVELOPES[envelope](raw)
        found = group(reader.events(wrapped))
        assert reader.stats.events == len(raw) and reader.stats.other == reader.stats.foreign_json == 0
        verdict = decide(found)
        assert ([(i.kind, i.summary, i.supervisor) for i in found],
                [(c.cause, c.fix) for c in verdict.causes]) == signature(raw)

    @pytest.mark.parametrize("names", [
        ("raw", "journal_export", "docker_json_file", "docker_timestamps", "platform_object"),  # no replica named
        ("journal_json", "journal_json_seq_priority", "platform_message"),  # the host web-1
        ("kubectl_prefix", "kubectl_prefix_timestamps", "platform_log_kubernetes", "platform_msg",
         "platform_itself")])  # the pod
    def test_mixed_envelopes(self, names: tuple[str, ...]) -> None:
        """One log whose lines come in different envelopes naming the same replica reads as the raw log does."""
        raw = (FIXTURES / "two_incidents_real.log").read_text().splitlines()
        mixed = [x for n, line in enumerate(raw) for x in ENVELOPES[names[n % len(names)]]([line])]
        assert signature(mixed) == signature(raw)

    def test_journal_time_and_bytes(self) -> None:
        """An object without a time takes __REALTIME_TIMESTAMP; a MESSAGE as an array of bytes is decoded."""
        body = json.dumps({"level": "info", "event": "supervisor.ready", "source": "supervisor", "pid": 7})
        entry = {"__REALTIME_TIMESTAMP": str(int(T0 * 1e6)), "MESSAGE": list(body.encode()), "_HOSTNAME": "db-2"}
        kind, event = parse_line(json.dumps(entry))
        assert kind == "event" and event is not None
        assert (event["event"], event["_ts"], event["_origin"]) == ("supervisor.ready", T0, "db-2")
        assert event["timestamp"] == fmt.timestamp(T0)

    def test_envelope_inside_an_envelope(self) -> None:
        """A platform's export of Docker's json-file lines is opened twice, and the platform names the pod."""
        raw = (FIXTURES / "crash_loop.log").read_text().splitlines()
        nested = [json.dumps({"@timestamp": "2026-11-25T00:00:00Z", "kubernetes": {"pod_name": "api-0"}, "message": x})
                  for x in docker_json_file(raw)]
        assert signature(nested) == signature(raw)
        assert {i.origin for i in incidents(nested) if i.supervisor is not None} == {"api-0"}

    def test_syslog_priority_prefix(self) -> None:
        """``<3>`` before our line is stripped, in a journal MESSAGE or on a raw line."""
        raw = line(0, "child.ready", pid=8)
        for wrapped in (f"<3>{raw}", json.dumps({"MESSAGE": f"<3>{raw}", "PRIORITY": "3"})):
            kind, event = parse_line(wrapped)
            assert kind == "event" and event is not None and event["event"] == "child.ready"

    def test_docker_pieces_are_joined(self) -> None:
        """A line Docker split into 16 KiB pieces is one event; the pieces count as envelope lines."""
        raw = line(0, "child.exited", pid=8, level="error", stderr_tail=["x" * 50_000], exit_code=1)
        reader = EventReader()
        events = list(reader.events(docker_json_file([raw])))
        assert [e["event"] for e in events] == ["child.exited"] and events[0]["stderr_tail"] == ["x" * 50_000]
        assert reader.stats.envelope_only == 3 and reader.stats.envelopes == {"docker": 1}

    def test_replicas_with_the_same_pid_stay_apart(self) -> None:
        """Two pods whose supervisors are both PID 1 are two supervisors, each with its own incidents."""
        a = [f"[pod/api-a/jarlpm] {x}" for x in start_lines(0, sup=1, child=7)
             + crash(5, 7, sup=1, was_ready=True, exc="RuntimeError: a")]
        b = [f"[pod/api-b/jarlpm] {x}" for x in start_lines(0.1, sup=1, child=7)
             + crash(5.1, 7, sup=1, was_ready=True, exc="RuntimeError: b")]
        found = incidents([x for pair in zip(a, b, strict=True) for x in pair])
        restarts = {(i.origin, i.supervisor): i.facts["exception"] for i in of_kind(found, "restarts")}
        assert restarts == {("api-a", 1): "RuntimeError: a", ("api-b", 1): "RuntimeError: b"}
        assert len(of_kind(found, "start")) == 2

    def test_other_programs_in_an_envelope(self) -> None:
        """Journal entries of other units count as journal lines, not as our events."""
        reader = EventReader()
        lines = [json.dumps({"MESSAGE": "Started Session 4 of user root.", "_HOSTNAME": "h"}),
                 json.dumps({"MESSAGE": '{"level": "info", "msg": "other json"}', "_HOSTNAME": "h"}),
                 json.dumps({"log": "plain text\n", "stream": "stderr", "time": "2026-11-25T00:00:00Z"})]
        assert list(reader.events(lines)) == []
        assert reader.stats.shapes == {"journal": 2, "docker": 1}


# -- honest about what it could not read ------------------------------------------------------------
class TestUnreadable:
    """No JarlPM event is never "no incidents" with exit 0: exit 65 and what the input looked like."""

    def run(self, path: Path, *args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main([str(path), *args])
        return code, out.getvalue(), err.getvalue()

    def test_foreign_json(self, tmp_path: Path) -> None:
        """1,743 JSON objects of another program: exit 65, counted, and what to check."""
        log = tmp_path / "other.log"
        log.write_text("".join(json.dumps({"ts": n, "msg": "GET /", "level": "info"}) + "\n" for n in range(1743)))
        code, out, err = self.run(log)
        assert code == 65
        assert "no JarlPM event in 1,743 lines: 1,743 JSON objects, none of them a JarlPM event" in out
        assert "(no incidents)" not in out and err == ""  # said once, in the report

    def test_journal_of_another_unit(self, tmp_path: Path) -> None:
        """journalctl -o json of a unit that is not the supervisor: names the envelope and the unit to check."""
        log = tmp_path / "journal.json"
        log.write_text("\n".join(json.dumps({"__REALTIME_TIMESTAMP": "1764000000000000", "MESSAGE": f"tick {n}",
                                             "_SYSTEMD_UNIT": "cron.service"}) for n in range(5)))
        code, out, err = self.run(log, "--json")
        doc = json.loads(out)
        assert code == 65 and doc["input"]["skipped"] == {"journal": 5}
        assert err.startswith("jarlpm explain: no JarlPM event in 5 lines")  # a person piping into jq sees it
        assert "5 journal entries, none of them a JarlPM event" in doc["verdict"]["cause"]
        assert "journalctl -u jarlpm" in doc["input"]["unread"]

    def test_console_format(self, tmp_path: Path) -> None:
        """Lines of LOG_FORMAT=console are recognised, and the answer says to log JSON."""
        log = tmp_path / "console.log"
        log.write_text("2026-11-25T00:53:04.491Z [info     ] phase.started     phase=validate_env src=supervisor[1]\n")
        code, out, _ = self.run(log)
        assert code == 65 and "LOG_FORMAT=console line" in out and "run the supervisor with LOG_FORMAT=json" in out

    def test_journalctl_found_nothing(self, tmp_path: Path) -> None:
        """journalctl's '-- No entries --': exit 65, and the unit and time range to check."""
        log = tmp_path / "none.log"
        log.write_text("-- No entries --\n")
        code, out, _ = self.run(log)
        assert code == 65 and "journalctl found no entries: check the unit (-u jarlpm)" in out

    def test_empty_input(self, tmp_path: Path) -> None:
        """An empty file: exit 65, the input is empty."""
        log = tmp_path / "empty.log"
        log.write_text("")
        code, out, _ = self.run(log)
        assert code == 65 and "the input is empty" in out

    def test_window_with_events_is_not_unreadable(self) -> None:
        """Events found but all outside --since/--until: exit 0, the window is the reason."""
        doc = report(FIXTURES / "hang.log", "--since", "2030-01-01")
        assert doc["incidents"] == [] and doc["input"]["outside_window"] == 23

    def test_gzip_cut_short(self, tmp_path: Path) -> None:
        """A gzip file cut mid-way: what was read is explained, and the header says reading stopped early."""
        packed = gzip.compress((FIXTURES / "hang.log").read_bytes() * 200)
        log = tmp_path / "cut.log.gz"
        log.write_bytes(packed[: len(packed) * 2 // 3])
        code, out, _ = self.run(log)
        assert code == 0 and "reading stopped early: the compressed stream ends mid-way" in out.splitlines()[0]
        assert "hang: event loop" in out

    def test_compressed_otherwise(self, tmp_path: Path) -> None:
        """A zstd file or a journal file: exit 66 and the command to run instead."""
        log = tmp_path / "x.zst"
        log.write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 20)
        code, _, err = self.run(log)
        assert code == 66 and "zstd -dc FILE | jarlpm explain" in err

    def test_header_says_how_much_was_read(self) -> None:
        """Part of the input read: the header names the envelope and what was skipped."""
        raw = (FIXTURES / "hang.log").read_text().splitlines()
        lines = journal_json(raw) + [json.dumps({"MESSAGE": "Started Session 4.", "_HOSTNAME": "h"}), "plain"]
        reader = EventReader()
        found = group(reader.events(lines))
        from supervisor.explain import render

        header = render.text(reader.stats, found, decide(found), {}).splitlines()[0]
        assert header.startswith("jarlpm explain: 25 lines, 23 events (through journalctl -o json; 2 skipped, "
                                 "not JarlPM events: 1 journal entry, 1 line of text);")


# -- the command line ------------------------------------------------------------------------------------
class TestCommandLine:
    """Exit codes, input forms and the JSON document."""

    def test_missing_file_is_66(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A file that cannot be read exits 66 (EX_NOINPUT) and says why."""
        assert cli.main(["/nonexistent/jarlpm.log"]) == 66
        assert "cannot read /nonexistent/jarlpm.log" in capsys.readouterr().err

    def test_bad_time_is_64(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An unreadable --since, or --since after --until, is a usage error (64)."""
        assert cli.main([str(FIXTURES / "hang.log"), "--since", "soonish"]) == 64
        assert "neither an ISO 8601 time" in capsys.readouterr().err
        assert cli.main([str(FIXTURES / "hang.log"), "--since", "2026-11-26", "--until", "2026-11-25"]) == 64

    def test_help(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--help describes the command and exits 0."""
        assert cli.main(["--help"]) == 0
        assert "timeline of incidents" in capsys.readouterr().out

    def test_gzip_and_window(self, tmp_path: Path) -> None:
        """A .gz log is read; --until before the hang leaves only the start."""
        packed = tmp_path / "hang.log.gz"
        packed.write_bytes(gzip.compress((FIXTURES / "hang.log").read_bytes()))
        assert "hang" in kinds(report(packed))
        early = report(packed, "--until", "2026-11-25T00:53:10Z")
        assert kinds(early) == ["start"] and early["input"]["outside_window"] > 0

    def test_json_document(self) -> None:
        """--json has the input counts, every incident with its facts and examples, and the verdict."""
        doc = report(FIXTURES / "crash_loop.log")
        assert set(doc) == {"input", "incidents", "omitted", "verdict"}
        assert doc["input"]["lines"] == doc["input"]["events"] == 27
        assert doc["input"]["supervisors"] == [10477]
        loop = verdict_incident(doc)
        assert set(loop) >= {"kind", "severity", "start", "end", "duration_s", "count", "summary", "facts",
                             "examples"}
        assert 0 < len(loop["examples"]) <= 3
        assert set(doc["verdict"]) == {"cause", "fix", "incident", "kind", "explains", "evidence", "next",
                                       "root_causes", "notes"}
        (root,) = doc["verdict"]["root_causes"]
        assert {k: root[k] for k in ("cause", "fix", "incident", "kind")} == {
            k: doc["verdict"][k] for k in ("cause", "fix", "incident", "kind")}
        assert root["evidence"][0].startswith("2026-11-25T00:53:05.075Z → 00:53:07.270Z (lines ")

    def test_text_report(self) -> None:
        """The text report: a header, one line per incident, the verdict."""
        text = text_report(FIXTURES / "migration_failed.log")
        lines = text.splitlines()
        assert lines[0].startswith("jarlpm explain: 13 lines, 13 events;")
        assert lines[2] == "Timeline" and lines[3].startswith("  2026-11-25T00:54:00.726Z  ERROR  start failed")
        assert "  Root cause: migration 0004_broken failed" in text

    def test_plugs_into_jarlpm(self) -> None:
        """add_parser adds `explain` to a parent parser with run as its handler."""
        import argparse

        parser = argparse.ArgumentParser(prog="jarlpm")
        cli.add_parser(parser.add_subparsers(dest="command"))
        args = parser.parse_args(["explain", "x.log", "--since", "30m", "--json"])
        assert args.handler is cli.run and args.file == "x.log" and args.json
        assert isinstance(args.since, float)


# -- fuzzing ------------------------------------------------------------------------------------------
_ODD_VALUES: list[Any] = [None, 0, -1, 2**70, 1.5, "", "x", "2026-13-45T99:99:99Z", "0001-01-01T00:00:00", [],
                          [1, "a", None], {}, {"pid": "x"}, True, [[[[[1]]]]], {"blockers": [{"pid": [1]}]},
                          ["Current thread 0x1 (most recent call first):", '  File "a.py", line 2 in f']]
_EVENT_NAMES = ["child.exited", "phase.failed", "db.pool.exhausted", "child.unresponsive", "supervisor.stopped",
                "child.crash_loop", "db.wait.retry", "http.access", "supervisor.ready", "child.restarting",
                "supervisor.reload_failed", "migrate.applied", "phase.started", "supervisor.reloading"]


def _mutate(rng: random.Random, text: str) -> str:
    roll = rng.random()
    if roll < 0.15:
        return text[: rng.randrange(len(text) + 1)]
    if roll < 0.2:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(120))).decode("utf-8", "replace")
    if roll < 0.22:
        return '{"event": "x", "a": ' + "[" * rng.randrange(1, 50000)
    try:
        obj = json.loads(text)
    except ValueError:
        return text
    for _ in range(rng.randrange(1, 4)):
        key = rng.choice([*obj, "event", "pid", "source", "timestamp"])
        obj[key] = rng.choice([*_ODD_VALUES, rng.choice(_EVENT_NAMES)])
    text = rng.choice(["", "host jarlpm[1]: ", "2026-11-25T00:00:00Z "]) + json.dumps(obj)
    if rng.random() < 0.3:  # and in an envelope, itself perhaps cut short
        wrapped = rng.choice(list(ENVELOPES.values()))([text])
        text = rng.choice(wrapped)
        if rng.random() < 0.2:
            text = text[: rng.randrange(len(text) + 1)]
    return text


class TestFuzz:
    """Malformed input never crashes explain."""

    def test_mutated_logs(self) -> None:
        """Real lines cut, mixed with random bytes and given odd field values: always a report."""
        corpus = [x for p in sorted(FIXTURES.glob("*.log")) for x in p.read_text().splitlines()]
        rng = random.Random(20261125)
        for _ in range(250):
            sample = [_mutate(rng, rng.choice(corpus)) for _ in range(rng.randrange(1, 120))]
            reader = EventReader()
            found = group(reader.events(sample))
            verdict = decide(found)
            from supervisor.explain import render

            assert render.text(reader.stats, found, verdict, {}).startswith("jarlpm explain:")
            json.loads(render.as_json(reader.stats, found, verdict, {}))

    def test_random_bytes_file(self, tmp_path: Path) -> None:
        """A file of random bytes gives exit 65 (no JarlPM event), an empty timeline and says so."""
        noise = tmp_path / "noise.bin"
        noise.write_bytes(random.Random(1).randbytes(200_000))
        doc = report(noise, code=65)
        assert doc["incidents"] == [] and doc["verdict"]["incident"] is None
        assert doc["verdict"]["cause"].startswith("no JarlPM event in ")


# -- the benchmark ------------------------------------------------------------------------------------
class TestBenchSmoke:
    """bench/explain_bench.py runs end to end on a small log."""

    def test_ten_thousand_lines(self) -> None:
        """10,000 generated lines: a rate and a peak RSS are reported."""
        proc = subprocess.run([sys.executable, str(REPO / "bench" / "explain_bench.py"), "--lines", "10000",
                               "--json"], cwd=REPO, capture_output=True, text=True, timeout=90, check=False)
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        assert result["lines"] == 10000
        assert result["lines_per_s"] > 0 and result["peak_rss_mib"] > 0

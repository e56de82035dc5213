"""The pool diagnosis as pure logic: holder kinds, the diagnosis and its hint, rate limits, budgets, formatting."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from jarlpm.pool import dbview, report
from jarlpm.pool.budget import ConnectionBudget, ThreadBudget, connection_budget
from jarlpm.pool.context import RequestContext, route_template
from jarlpm.pool.diagnosis import (
    Facts,
    classify,
    diagnose,
    is_capacity_error,
    long_threshold,
    server_message,
)
from jarlpm.pool.model import (
    DbLock,
    DbSession,
    DbSettings,
    DbView,
    HolderView,
    PoolNumbers,
    TrackerSnapshot,
    Trigger,
    WaiterView,
)
from jarlpm.pool.options import PoolOptions
from jarlpm.pool.ratelimit import RateLimiter, SaturationWatch, saturation_wait
from jarlpm.pool.tracker import PoolTracker
from sqlalchemy import make_url

from supervisor.contract import sqltext as statements
from supervisor.contract.config import ConfigError, Problem, load_settings

LONG = 1.0
TIMEOUT = Trigger("timeout", "QueuePool limit of size 2 overflow 0 reached")
REFUSED = Trigger("refused", "FATAL:  remaining connection slots are reserved for roles with the SUPERUSER attribute")


def holder(route: str | None = "/api/epics", held: float = 0.2, pid: int | None = None,
           finished: float | None = None, where: str | None = None) -> HolderView:
    return HolderView(method="GET" if route else None, route=route, request_id="r1", held_s=held,
                      request_finished_s=finished, backend_pid=pid, where=where)


def session(pid: int, state: str | None = "active", query_age: float = 0.1, xact_age: float = 0.1,
            blocked_by: tuple[int, ...] = (), app: str = "jarlpm-server:100", statement: str | None = "SELECT ?",
            user: str | None = "jarlpm_app") -> DbSession:
    return DbSession(pid=pid, application=app, user=user, state=state, xact_age_s=xact_age,
                     query_age_s=query_age, state_age_s=query_age, blocked_by=blocked_by,
                     statement=statement if state is not None else None)


def facts(holders: Sequence[HolderView], sessions: Sequence[DbSession] = (), locks: Sequence[DbLock] = (),
          trigger: Trigger = TIMEOUT, pool_size: int = 2, max_overflow: int = 0, waiting: int = 3,
          peak: int = 5, workers: int = 1, max_connections: int = 100, in_use: int | None = None,
          reachable: bool = True) -> Facts:
    settings = DbSettings(max_connections, 3)
    if reachable:
        db = DbView(settings=settings, in_use=len(sessions) if in_use is None else in_use,
                    sessions=tuple(sessions), locks=tuple(locks))
    else:
        db = DbView(settings=settings, error="too many clients")
    pool = PoolNumbers(pool_size, max_overflow, 2.0, len(holders), waiting, peak, workers)
    budget = connection_budget(workers, pool.capacity, settings, db.in_use, db.sessions)
    return Facts(pool=pool, holders=tuple(holders), db=db, budget=budget, trigger=trigger)


class TestClassify:
    """Each checked-out connection gets one kind, the most specific that applies."""

    def test_waiting_for_a_lock_wins(self) -> None:
        """A session blocked by another is a lock wait, even if its request already finished."""
        assert classify(holder(finished=1.0), session(1, blocked_by=(9,)), LONG) == "lock_wait"

    def test_finished_request_is_a_leak(self) -> None:
        """A connection still out after its request ended is leaked."""
        assert classify(holder(finished=0.5), session(1, state="idle in transaction", xact_age=9), LONG) == "leaked"

    def test_held_long_outside_a_request_is_a_leak(self) -> None:
        """Held long by no request at all (a background job) counts as leaked; briefly does not."""
        assert classify(holder(route=None, held=5), None, LONG) == "leaked"
        assert classify(holder(route=None, held=0.1), None, LONG) == "short"

    def test_idle_in_transaction_is_a_long_transaction(self) -> None:
        """Held long while idle in a transaction."""
        idle = session(1, state="idle in transaction", query_age=3, xact_age=3)
        assert classify(holder(held=3), idle, LONG) == "long_transaction"

    def test_long_active_statement_is_slow(self) -> None:
        """Running one statement for longer than the threshold."""
        assert classify(holder(held=3), session(1, query_age=3, xact_age=3), LONG) == "slow_statement"

    def test_many_short_statements_in_one_long_transaction(self) -> None:
        """Active on a short statement, but inside a transaction open for long."""
        assert classify(holder(held=3), session(1, query_age=0.1, xact_age=3), LONG) == "long_transaction"

    def test_short(self) -> None:
        """Everything brief is short."""
        assert classify(holder(held=0.3), session(1, query_age=0.3, xact_age=0.3), LONG) == "short"

    def test_without_the_database_only_hold_time_counts(self) -> None:
        """No session (view unavailable, or a hidden one): long holds are long transactions."""
        assert classify(holder(held=3), None, LONG) == "long_transaction"
        assert classify(holder(held=3), session(1, state=None), LONG) == "long_transaction"
        assert classify(holder(held=0.2), None, LONG) == "short"


class TestDiagnose:
    """The most specific diagnosis that fits wins; the others that apply go in ``also``."""

    def test_lock_contention_beats_a_leak(self) -> None:
        """Two blocked and two leaked connections: lock_contention, connection_leak in also."""
        holders = [holder(pid=1), holder(pid=2), holder(pid=3, finished=1), holder(pid=4, finished=1)]
        sessions = [session(1, blocked_by=(9,)), session(2, blocked_by=(9,)),
                    session(3, state="idle"), session(4, state="idle")]
        result = diagnose(facts(holders, sessions))
        assert result.diagnosis == "lock_contention"
        assert result.also == ("connection_leak",)

    def test_a_minority_kind_is_only_mentioned(self) -> None:
        """One slow statement among four short ones: undersized_pool, with slow_queries in also."""
        holders = [holder(pid=i) for i in range(1, 6)]
        sessions = [session(1, query_age=4)] + [session(i) for i in range(2, 6)]
        result = diagnose(facts(holders, sessions, pool_size=5, peak=12))
        assert result.diagnosis == "undersized_pool"
        assert result.also == ("slow_queries",)

    def test_refused_for_want_of_slots_is_database_at_capacity(self) -> None:
        """PostgreSQL refusing the pool a connection: database_at_capacity, with the limits in the hint."""
        result = diagnose(facts([holder(pid=1), holder(pid=2)], trigger=REFUSED, reachable=False))
        assert result.diagnosis == "database_at_capacity"
        assert "max_connections=100 (3 reserved for superusers)" in result.hint
        assert "this process holds 2 and may open 2" in result.hint
        assert "SELECT application_name" in result.hint

    def test_no_slot_left_in_the_view_is_database_at_capacity(self) -> None:
        """The database's own count at its limit names the busiest applications."""
        sessions = [session(i, app="batch-job") for i in range(10, 17)] + [session(1), session(2)]
        result = diagnose(facts([holder(pid=1), holder(pid=2)], sessions, max_connections=12))
        assert result.diagnosis == "database_at_capacity"
        assert "9 connections in use against max_connections=12" in result.hint
        assert "batch-job 7" in result.hint

    def test_role_connection_limit(self) -> None:
        """A role's CONNECTION LIMIT gets its own advice."""
        trigger = Trigger("refused", 'FATAL:  too many connections for role "jarlpm_app"')
        result = diagnose(facts([holder(pid=1)], trigger=trigger, reachable=False))
        assert result.diagnosis == "database_at_capacity" and "CONNECTION LIMIT" in result.hint

    def test_a_budget_that_does_not_fit_is_mentioned(self) -> None:
        """WORKERS × pool larger than PostgreSQL's free slots: database_at_capacity in also."""
        result = diagnose(facts([holder(pid=1)], [session(1)], pool_size=20, max_overflow=10, workers=4,
                                max_connections=100))
        assert result.diagnosis == "undersized_pool"
        assert "database_at_capacity" in result.also

    def test_leak_hint_names_route_and_line(self) -> None:
        """The leak hint says which route took the connections and where."""
        holders = [holder("/test/leak", held=8, pid=1, finished=7, where="app.py:30 in leak")] * 2
        result = diagnose(facts(holders))
        assert result.diagnosis == "connection_leak"
        assert "2 taken by GET /test/leak at app.py:30 in leak" in result.hint
        assert "DB_LEAK_THRESHOLD" not in result.hint

    def test_leak_hint_without_a_stack_says_how_to_get_one(self) -> None:
        """With DB_LEAK_THRESHOLD off there is no stack; the hint says how to turn it on."""
        result = diagnose(facts([holder("/test/leak", held=8, finished=7)]))
        assert "DB_LEAK_THRESHOLD=10" in result.hint

    def test_lock_hint_names_the_blocker(self) -> None:
        """Pid, application, the lock it holds, and the command to end it."""
        holders = [holder(pid=1), holder(pid=2)]
        sessions = [session(1, blocked_by=(9,), query_age=2.5), session(2, blocked_by=(9,)),
                    session(9, state=None, app="psql", user="postgres")]
        locks = [DbLock(9, "AccessExclusiveLock", "epics", True), DbLock(1, "AccessShareLock", "epics", False, 2.5)]
        hint = diagnose(facts(holders, sessions, locks)).hint
        assert "held by pid 9 (psql, user postgres), which holds AccessExclusiveLock on epics" in hint
        assert "waiting up to 2.5s" in hint and "pg_terminate_backend(9)" in hint

    def test_lock_held_by_one_of_our_own_requests(self) -> None:
        """When the blocker is this process's connection, the hint names its route."""
        holders = [holder(pid=1), holder("/api/epics/{epic_id}", held=9, pid=9)]
        sessions = [session(1, blocked_by=(9,)), session(9, state="idle in transaction", xact_age=9)]
        hint = diagnose(facts(holders, sessions)).hint
        assert "it is this process's own GET /api/epics/{epic_id}" in hint
        assert "that session is 'idle in transaction', its transaction open 9.0s" in hint

    def test_long_transactions_hint(self) -> None:
        """Names the route, the pid and its transaction's age; suggests an idle-in-transaction timeout."""
        holders = [holder("/test/idle_tx", held=3, pid=1), holder("/test/idle_tx", held=2, pid=2)]
        sessions = [session(1, state="idle in transaction", xact_age=3), session(2, state="idle in transaction")]
        result = diagnose(facts(holders, sessions))
        assert result.diagnosis == "long_transactions"
        assert "2 by GET /test/idle_tx (pid 1 idle in transaction with its transaction open 3.0s" in result.hint
        assert "DB_IDLE_IN_TRANSACTION_TIMEOUT=5" in result.hint

    def test_slow_queries_hint(self) -> None:
        """Names the longest statement, its pid and a statement timeout."""
        holders = [holder("/test/query", held=3, pid=1), holder("/test/query", held=3, pid=2)]
        sessions = [session(1, query_age=3, statement="SELECT pg_sleep(?)"), session(2, query_age=2)]
        result = diagnose(facts(holders, sessions))
        assert result.diagnosis == "slow_queries"
        assert "pid 1, has run 3.0s: 'SELECT pg_sleep(?)'" in result.hint
        assert "DB_STATEMENT_TIMEOUT=5" in result.hint

    def test_undersized_hint_gives_the_size_that_would_have_sufficed(self) -> None:
        """Peak demand minus the overflow is the pool size to set, checked against the budget."""
        sessions = [session(1), session(2)]
        result = diagnose(facts([holder(pid=1), holder(pid=2)], sessions, pool_size=2, max_overflow=3, peak=14))
        assert result.diagnosis == "undersized_pool"
        assert "14 wanted one at once" in result.hint
        assert "DB_POOL_SIZE=11 (with DB_MAX_OVERFLOW=3) would have sufficed" in result.hint
        assert "WORKERS=1 × 14 = 14 fits" in result.hint

    def test_undersized_hint_warns_when_the_bigger_pool_does_not_fit(self) -> None:
        """A pool PostgreSQL cannot serve is not advice: the hint says so and suggests PgBouncer."""
        result = diagnose(facts([holder(pid=1)], [session(1)], peak=40, workers=4, max_connections=100))
        assert "4 × 40 = 160 exceeds" in result.hint and "PgBouncer" in result.hint


class TestCapacityErrors:
    """Which connect failures mean the database is out of connection slots."""

    def test_server_message(self) -> None:
        """The hint quotes PostgreSQL's words, not libpq's address prefix."""
        error = 'connection to server at "db", port 5432 failed: FATAL:  sorry, too many clients already'
        assert server_message(error) == "sorry, too many clients already"
        assert server_message("connection refused") == "connection refused"

    @pytest.mark.parametrize("message", [
        "FATAL:  sorry, too many clients already",
        "FATAL:  remaining connection slots are reserved for non-replication superuser connections",
        'FATAL:  too many connections for role "app"',
        'FATAL:  too many connections for database "jarlpm"',
    ])
    def test_capacity(self, message: str) -> None:
        """PostgreSQL's SQLSTATE 53300 messages are capacity errors."""
        assert is_capacity_error(message)

    def test_other_failures(self) -> None:
        """A refused TCP connection or a bad password is not."""
        assert not is_capacity_error("connection refused")
        assert not is_capacity_error('password authentication failed for user "app"')


class TestThresholds:
    """How long is long, and when a queue is worth a warning."""

    def test_long_threshold(self) -> None:
        """A quarter of the pool timeout, between 1 and 5 seconds."""
        assert (long_threshold(2), long_threshold(12), long_threshold(30)) == (1.0, 3.0, 5.0)

    def test_saturation_wait(self) -> None:
        """A second, or half a shorter pool timeout, so the warning comes before the 503."""
        assert (saturation_wait(30), saturation_wait(1)) == (1.0, 0.5)


class TestRateLimiter:
    """One full report per interval; the rest are counted into the next."""

    def test_counts_suppressed_reports(self) -> None:
        """The first passes, the next two are held back, the one after the interval carries the count."""
        limiter = RateLimiter(60)
        assert limiter.hit(100.0) == 0
        assert limiter.hit(110.0) is None and limiter.hit(159.0) is None
        assert limiter.hit(160.0) == 2
        assert limiter.hit(161.0) is None


class TestSaturationWatch:
    """Warns once per queueing episode, before any timeout."""

    def test_warns_once_per_episode(self) -> None:
        """Not before the wait threshold, once at it, not again while the queue lasts."""
        watch = SaturationWatch(wait_s=1.0, interval_s=60)
        assert not watch.update(0.0, checked_out=2, capacity=2, waiting=3, longest_wait_s=0.5)
        assert watch.update(0.5, 2, 2, 3, 1.0)
        assert not watch.update(1.0, 2, 2, 5, 1.5)

    def test_rearms_after_the_queue_empties_but_not_within_the_interval(self) -> None:
        """A new episode warns again only an interval after the last warning."""
        watch = SaturationWatch(wait_s=1.0, interval_s=60)
        assert watch.update(0.0, 2, 2, 1, 1.0)
        assert not watch.update(1.0, 2, 2, 0, 0.0)
        assert not watch.update(30.0, 2, 2, 1, 1.0)
        assert not watch.update(31.0, 2, 2, 0, 0.0)
        assert watch.update(70.0, 2, 2, 1, 1.0)

    def test_not_below_capacity(self) -> None:
        """Waiting while connections are free is a slow connect, not a full pool."""
        assert not SaturationWatch(1.0, 60).update(0.0, checked_out=1, capacity=2, waiting=1, longest_wait_s=5)


class TestStatements:
    """Statement text without the values psycopg2 put into it."""

    @pytest.mark.parametrize(("query", "expected"), [
        ("SELECT pg_sleep(0.4)", "SELECT pg_sleep(?)"),
        ("INSERT INTO epics (title, n) VALUES ('it''s secret', 42)", "INSERT INTO epics (title, n) VALUES (?, ...)"),
        ("SELECT * FROM t_1 WHERE name='x' AND e = E'a\\'b' AND d = $$x$$ AND id = $1",
         "SELECT * FROM t_1 WHERE name=? AND e = ? AND d = ? AND id = $1"),
        ("SELECT 'cut by track_activity_query_si", "SELECT ?"),
        ("SELECT\n   1", "SELECT ?"),
    ])
    def test_literals_replaced(self, query: str, expected: str) -> None:
        """Strings, numbers and value lists become ``?``; identifiers and placeholders stay."""
        assert statements.normalise(query) == expected

    def test_length_and_hidden(self) -> None:
        """Long statements are cut with an ellipsis; hidden ones stay None."""
        cut = statements.normalise("SELECT " + "a, " * 200) or ""
        assert len(cut) <= statements.MAX_LENGTH and cut.endswith("…")
        assert statements.normalise(None) is None


class TestBudget:
    """Connections the deployment may open against what PostgreSQL leaves it."""

    def test_available_and_fits(self) -> None:
        """max_connections − reserved − other clients; the app's own sessions do not count against it."""
        budget = ConnectionBudget(workers=4, per_process=15, max_connections=100, reserved=3, in_use=30,
                                  app_in_use=20)
        assert (budget.needed, budget.other_clients, budget.available, budget.fits) == (60, 10, 87, True)
        assert not budget.full

    def test_full(self) -> None:
        """In use at max_connections − reserved: no slot for the app's role."""
        assert ConnectionBudget(1, 5, max_connections=12, reserved=3, in_use=9, app_in_use=2).full

    def test_unknown_without_the_database(self) -> None:
        """Without a view of the database (limits known from start-up, usage not), fit is unknown, not assumed."""
        assert ConnectionBudget(1, 5).fits is None and not ConnectionBudget(1, 5).full
        known_limits = ConnectionBudget(1, 5, max_connections=12, reserved=3)
        assert (known_limits.available, known_limits.fits) == (None, None)

    def test_counts_only_this_databases_server_sessions_as_the_apps(self) -> None:
        """jarlpm-server sessions of this database are the app's; probes and others are other clients."""
        sessions = [session(1), session(2, app="jarlpm-ready:3"), session(3, app="psql"),
                    DbSession(4, "jarlpm-server:9", same_database=False)]
        budget = connection_budget(1, 5, DbSettings(100, 3), 4, sessions)
        assert (budget.app_in_use, budget.other_clients) == (1, 3)

    def test_thread_budget(self) -> None:
        """40 threads against 15 connections exceeds, and the hint says by how much."""
        budget = ThreadBudget(threads=40, pool_size=5, max_overflow=10)
        assert budget.exceeds and not ThreadBudget(10, 5, 10).exceeds
        assert "25 requests wait" in budget.hint(30) and "DB_MAX_OVERFLOW to 35" in budget.hint(30)


class TestRouteTemplate:
    """The route template of a request, with the prefixes of included routers."""

    def test_effective_route_context(self) -> None:
        """FastAPI's effective route context knows the full template."""
        scope = {"fastapi": {"effective_route_context": SimpleNamespace(path_format="/api/epics/{epic_id}")}}
        assert route_template(scope) == "/api/epics/{epic_id}"

    def test_prefix_rebuilt_from_the_path(self) -> None:
        """A route knowing only its own part gets the request path's leading segments."""
        scope = {"path": "/api/epics/7", "route": SimpleNamespace(path="/epics/{epic_id}")}
        assert route_template(scope) == "/api/epics/{epic_id}"
        assert route_template({"path": "/api/epics", "route": SimpleNamespace(path="")}) == "/api/epics"

    def test_no_route(self) -> None:
        """Before routing (or a 404) there is no template; the context falls back to the path."""
        scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/nowhere", "headers": []}
        assert route_template(scope) is None
        assert RequestContext(scope).route == "/nowhere"

    def test_request_id(self) -> None:
        """X-Request-ID when sent (capped), else pid and sequence."""
        sent = RequestContext({"headers": [(b"x-request-id", b"abc-123")]})
        assert sent.request_id == "abc-123"
        assert RequestContext({"headers": []}).request_id.count("-") == 1


def _checkout_event(tracker: PoolTracker, record: object, pid: int) -> None:
    """Stands for SQLAlchemy's event dispatch, the frame ``checked_out`` skips."""
    tracker.checked_out(record, pid)


class TestTracker:
    """The checkout bookkeeping the pool events do."""

    def test_checkout_checkin_and_overdue(self) -> None:
        """Holders come and go by record; an overdue one is reported once."""
        tracker = PoolTracker(capture_stacks=True)
        record_a, record_b = object(), object()
        _checkout_event(tracker, record_a, 11)
        _checkout_event(tracker, record_b, 12)
        tracker.checked_in(record_b)
        assert [h.backend_pid for h in tracker.snapshot().holders] == [11]
        assert len(tracker.overdue(0.0)) == 1 and tracker.overdue(0.0) == []
        where = tracker.snapshot().holders[0].where
        assert where is not None and "test_pool_diagnosis.py" in where  # this test's own line
        tracker.checked_in(record_a)
        tracker.checked_in(record_a)  # a second checkin (a failed checkout) is harmless
        assert tracker.snapshot().holders == ()

    def test_waits_and_peak_demand(self) -> None:
        """Waiters count toward the peak demand, which a report resets."""
        tracker = PoolTracker()
        tracker.checked_out(object(), None)
        tokens = [tracker.wait_started() for _ in range(3)]
        assert tracker.counts()[:2] == (1, 3)
        for token in tokens:
            tracker.wait_ended(token)
        assert tracker.snapshot(reset_peak=True).peak_demand == 4
        assert tracker.snapshot().peak_demand == 1


class TestReport:
    """Event fields as a person reads them."""

    def test_holders_grouped_by_route(self) -> None:
        """Biggest group first, with count, longest hold, kinds and the most common line."""
        holders = [holder("/a", 1.0, 1, where="x.py:1 in a"), holder("/b", 5.0, 2), holder("/b", 2.0, 3)]
        groups = report.group_holders(holders, {0: "short", 1: "slow_statement", 2: "slow_statement"})
        assert [(g["route"], g["count"], g["longest_hold_s"]) for g in groups] == [("/b", 2, 5.0), ("/a", 1, 1.0)]
        assert groups[0]["kinds"] == {"slow_statement": 2} and groups[1]["where"] == "x.py:1 in a"

    def test_hidden_blocker(self) -> None:
        """Another role's blocker: pid, application and locks, with a note on what is hidden and why."""
        db = DbView(settings=DbSettings(100, 3), in_use=2,
                    sessions=(session(1, blocked_by=(9,)), session(9, state=None, app="psql")),
                    locks=(DbLock(9, "AccessExclusiveLock", "epics", True),))
        fields = report.database_fields(db, [holder(pid=1)])
        (blocker,) = fields["blockers"]
        assert (blocker["pid"], blocker["application"]) == (9, "psql")
        assert blocker["locks"] == ["AccessExclusiveLock on epics"]
        assert "pg_read_all_stats" in blocker["note"]
        assert fields["blocked"][0]["holder"] == "GET /api/epics"

    def test_saturated_names_the_thread_pool_when_larger(self) -> None:
        """The early warning says how many wait, for how long, and that threads outnumber connections."""
        snapshot = TrackerSnapshot(holders=(holder(held=0.3),), waiters=(WaiterView("GET", "/a", 1.2),),
                                   peak_demand=3)
        pool = PoolNumbers(2, 0, 2.0, checked_out=2, waiting=1)
        fields = report.saturated_fields(pool, snapshot, 1.2, threads=40)
        assert fields["threads"] == 40 and fields["waiting_routes"] == {"GET /a": 1}
        assert "1 request is queueing for one (longest 1.2s)" in fields["hint"]
        assert "up to 40 sync requests run at once" in fields["hint"]
        assert "threads" not in report.saturated_fields(pool, snapshot, 1.2, threads=None)

    def test_unreachable_database(self) -> None:
        """An unreachable database still shows the limits known from start-up, and the error."""
        fields = report.database_fields(DbView(settings=DbSettings(12, 3), error="too many clients"), [])
        assert fields == {"reachable": False, "max_connections": 12, "reserved_connections": 3,
                          "error": "too many clients"}


def problems_of(env: dict[str, str]) -> list[Problem]:
    """The problems the supervisor's ``load_settings`` finds in ``env``."""
    with pytest.raises(ConfigError) as info:
        load_settings(env, is_file=lambda _path: True)
    return info.value.problems


class TestOptions:
    """What the instrumentation reads from the environment."""

    def test_defaults_follow_the_environment_kind(self) -> None:
        """DB_LEAK_THRESHOLD is off in production and 30 s in development; the switch is on by default."""
        assert PoolOptions.from_env({}).leak_threshold_s == 0.0
        assert PoolOptions.from_env({"JARLPM_ENV": "development"}).leak_threshold_s == 30.0
        assert PoolOptions.from_env({"DB_LEAK_THRESHOLD": "5", "WORKERS": "3"}).workers == 3
        assert PoolOptions.from_env({}).enabled
        assert not PoolOptions.from_env({"JARLPM_POOL_INSTRUMENTATION": "0"}).enabled

    def test_malformed_values_are_refused_in_the_supervisors_words(self) -> None:
        """No silent fallback: every bad value is named, as ``jarlpm run`` would name it."""
        with pytest.raises(ConfigError) as info:
            PoolOptions.from_env({"DB_LEAK_THRESHOLD": "soon", "WORKERS": "0"})
        supervisors = problems_of({"DATABASE_URL": "postgresql://u@h/db", "DB_LEAK_THRESHOLD": "soon", "WORKERS": "0"})
        assert info.value.problems == supervisors
        assert [str(p) for p in supervisors] == [
            "DB_LEAK_THRESHOLD is 'soon', which is not a number; expected a number of seconds from 0 to 86400",
            "WORKERS is 0, out of range; expected a whole number from 1 to 64",
        ]

    def test_diagnostics_connect_through_the_direct_url(self) -> None:
        """DATABASE_DIRECT_URL (PgBouncer bypass) wins; timeouts and a name are added, options kept."""
        options = PoolOptions.from_env({"DATABASE_DIRECT_URL": "postgres://u:p@db:5432/app?options=-c%20search_path%3Dx"})
        assert options.direct_url is not None
        direct = make_url(options.direct_url)
        assert (direct.drivername, direct.host, direct.database) == ("postgresql+psycopg2", "db", "app")
        assert direct.query["options"] == "-c search_path=x"
        kwargs = dbview.connect_kwargs({"host": "db", "options": "-c search_path=x"})
        assert kwargs["connect_timeout"] == 2 and kwargs["application_name"].startswith("jarlpm-diagnostics:")
        assert kwargs["options"].startswith("-c search_path=x -c statement_timeout=1000")


class TestDiagnosisNamesAgree:
    """The backend emits, and ``jarlpm explain`` reads, the same diagnosis names (supervisor.contract.diagnoses)."""

    def test_backend_diagnoses_in_the_contracts_order(self) -> None:
        """The backend ranks the diagnoses in the contract's order of specificity, and has a hint for each."""
        from jarlpm.pool.facts import DIAGNOSES, KIND_DIAGNOSIS
        from jarlpm.pool.hints import HINTS

        from supervisor.contract import diagnoses

        assert DIAGNOSES == diagnoses.BY_SPECIFICITY
        assert set(HINTS) == set(diagnoses.BY_SPECIFICITY)
        assert set(KIND_DIAGNOSIS.values()) <= set(diagnoses.BY_SPECIFICITY)

    def test_explain_has_a_specific_fix_for_every_diagnosis(self) -> None:
        """Every diagnosis the backend may emit gets its own cause in explain, not the generic one."""
        from supervisor.contract import diagnoses
        from supervisor.explain.fixes import pool_fix

        generic, _ = pool_fix("not_a_diagnosis", {"pool_size": 5, "max_overflow": 10})
        for name in diagnoses.BY_SPECIFICITY:
            cause, fix = pool_fix(name, {"pool_size": 5, "max_overflow": 10})
            assert cause and fix and cause != generic.replace("not_a_diagnosis", name), name

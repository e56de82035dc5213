"""Writes pool_lock_contention.log: a synthetic but realistic exhaustion by lock contention.

The start-up lines are shaped after a real run; the ``db.pool.*`` lines follow the
fields of backend/jarlpm/pool/report.py (DESIGN.md's db.pool.exhausted): a psql
session of the app's own role left a transaction open after an UPDATE, every
request for that epic queues behind its row lock, the pool runs dry for two
minutes, the last report is cut mid-line (as journald does to long lines), then
the session is terminated and requests succeed again.

    python tests/explain_fixtures/make_pool_lock_contention.py > tests/explain_fixtures/pool_lock_contention.log
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

SUP, SRV, BLOCKER = 20417, 20433, 48213
T0 = datetime(2026, 11, 25, 9, 14, 2, 118000, tzinfo=UTC)
ROUTE = "/api/epics/{epic_id}"
STATEMENT = "UPDATE epics SET title='Q4 roadmap' WHERE epics.id = 1"
lines: list[tuple[float, str]] = []


def ev(at: float, level: str, event: str, source: str, pid: int, **fields: Any) -> None:
    ts = (T0 + timedelta(seconds=at)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    head = {"timestamp": ts, "level": level, "event": event, "source": source, "pid": pid}
    lines.append((at, json.dumps({**head, **fields})))


def sup(at: float, level: str, event: str, **fields: Any) -> None:
    ev(at, level, event, "supervisor", SUP, **fields)


def access(at: float, path: str, status: int, port: int, method: str = "GET") -> None:
    ev(at, "info", "http.access", "server", SRV, logger="uvicorn.access", client=f"10.0.3.7:{port}",
       method=method, path=path, http_version="1.1", status=status)


def start() -> None:
    sup(0, "info", "phase.started", phase="validate_env")
    sup(0.005, "info", "phase.completed", phase="validate_env", duration_ms=5)
    ev(0.016, "info", "child.spawned", "supervisor", SRV, worker=0)
    for at, phase, ms in ((0.016, "wait_for_db", 32), (0.048, "migrate", 84), (0.132, "warm_pool", 158)):
        sup(at, "info", "phase.started", phase=phase)
        if phase == "migrate":
            sup(at + 0.083, "info", "migrate.up_to_date", revision="0003_user_stories", locked=False)
        if phase == "warm_pool":
            sup(at + 0.157, "info", "db.pool.budget", max_connections=100, reserved=3, in_use=2, needed=15,
                available=95, fits=True, workers=1, pool_size=5, max_overflow=10)
        sup(at + ms / 1000, "info", "phase.completed", phase=phase, duration_ms=ms)
    for at, message in ((3.101, f"Started server process [{SRV}]"), (3.102, "Waiting for application startup."),
                        (3.262, "Application startup complete.")):
        ev(at, "info", "server.uvicorn", "server", SRV, logger="uvicorn.error", message=message)
    ev(3.251, "info", "server.log", "server", SRV, logger="jarlpm.db", message="db.pool.warmed", opened=5,
       wanted=5, duration_ms=141)
    ev(3.263, "info", "child.ready", "supervisor", SRV, worker=0, startup_ms=3247)
    sup(3.264, "info", "supervisor.ready", workers=1, pids=[SRV], listen="0.0.0.0:8001", startup_ms=3252)


def holders(count: int, longest: float) -> list[dict[str, Any]]:
    return [{"method": "PATCH", "route": ROUTE, "count": count, "longest_hold_s": longest,
             "kinds": {"lock_wait": count}, "backend_pids": [51001 + i for i in range(5)],
             "request_ids": [f"{SRV}-{40 + i}" for i in range(5)]}]


def database(waiting_s: float, xact_age_s: float) -> dict[str, Any]:
    blocked = [{"pid": 51001 + i, "application": f"jarlpm-server:{SRV}", "waiting_s": round(waiting_s - i, 1),
                "blocked_by": [BLOCKER], "lock": "ShareLock on transaction 7841",
                "statement": "UPDATE epics SET stage='ready' WHERE epics.id = 1",
                "holder": f"PATCH {ROUTE}"} for i in range(5)]
    return {"reachable": True, "max_connections": 100, "reserved_connections": 3, "in_use": 19,
            "app_sessions": {"active": 15}, "by_application": {"jarlpm-server": 15, "psql": 1},
            "idle_in_transaction": [{"pid": BLOCKER, "application": "psql", "transaction_age_s": xact_age_s,
                                     "idle_s": xact_age_s - 3.2, "statement": STATEMENT}],
            "longest_statements": [], "blocked": blocked,
            "blockers": [{"pid": BLOCKER, "blocking": 15, "locks": ["RowExclusiveLock on epics"],
                          "application": "psql", "user": "jarlpm_app", "state": "idle in transaction",
                          "transaction_age_s": xact_age_s, "statement": STATEMENT}],
            "query_ms": 23}


def hint(xact_age_s: float, waiting_s: float) -> str:
    return (f"15 of 15 checked-out connections wait for a lock held by pid {BLOCKER} (psql, user jarlpm_app), "
            f"which holds RowExclusiveLock on epics (waiting up to {waiting_s:.1f}s); that session is "
            f"'idle in transaction', its transaction open {xact_age_s:.1f}s, statement {STATEMENT!r}. End or "
            f"finish that transaction: SELECT pg_terminate_backend({BLOCKER}) as its owner or a superuser, or "
            "have it commit; give maintenance sessions a lock_timeout (SET lock_timeout = '5s') so they fail "
            "instead of stalling every request")


def exhausted(at: float, waiting: int, xact_age_s: float, suppressed: int) -> None:
    ev(at, "error", "db.pool.exhausted", "server", SRV, logger="jarlpm.pool",
       message=f"db.pool.exhausted: lock_contention (15/15 checked out, {waiting} waiting)", pool_size=5,
       max_overflow=10, checked_out=15, waiting=waiting, timeout_s=30.0, holders=holders(15, 30.4),
       waiting_routes={f"PATCH {ROUTE}": waiting}, peak_demand=15 + waiting, database=database(30.4, xact_age_s),
       budget={"workers": 1, "per_process": 15, "needed": 15, "max_connections": 100, "reserved": 3,
               "in_use": 19, "app_in_use": 15, "other_clients": 1, "available": 81, "fits": True},
       diagnosis="lock_contention", also=["undersized_pool"], hint=hint(xact_age_s, 30.4),
       trigger={"kind": "timeout", "error": "QueuePool limit of size 5 overflow 10 reached, connection "
                "timed out, timeout 30.00", "request": f"PATCH {ROUTE}"},
       suppressed=suppressed, report_interval_s=60.0)


def incident() -> None:
    for i in range(40):
        access(5 + i * 0.25, "/api/epics" if i % 3 else "/api/epics/1/features", 200, 50100 + i)
    # 09:14:20: someone runs BEGIN; UPDATE epics ... in psql and goes for lunch.
    for i in range(15):
        access(21 + i * 0.4, "/api/epics/1", 200, 50300 + i, method="PATCH")
    ev(29.5, "warning", "db.pool.saturated", "server", SRV, logger="jarlpm.pool",
       message="db.pool.saturated: 15/15 checked out, 2 waiting", pool_size=5, max_overflow=10, checked_out=15,
       waiting=2, timeout_s=30.0, longest_wait_s=1.1, holders=holders(15, 8.4)[:1],
       waiting_routes={f"PATCH {ROUTE}": 2},
       hint="all 15 connections of this process's pool are checked out and 2 requests are queueing for one")
    for k, (at, waiting, suppressed) in enumerate(((59.6, 7, 0), (119.7, 13, 14))):
        for j in range(waiting):
            ev(at - 0.2 + j * 0.01, "warning", "server.log", "server", SRV, logger="jarlpm.api",
               message="db.pool.timeout", path="/api/epics/1", error="QueuePool limit of size 5 overflow 10 "
               "reached, connection timed out, timeout 30.00")
            access(at - 0.2 + j * 0.01 + 0.001, "/api/epics/1", 503, 50400 + 20 * k + j, method="PATCH")
        exhausted(at, waiting, 39.3 + at, suppressed)
    cut = json.dumps({"timestamp": "2026-11-25T09:17:01.912Z", "level": "error", "event": "db.pool.exhausted",
                      "source": "server", "pid": SRV, "logger": "jarlpm.pool", "pool_size": 5, "max_overflow": 10,
                      "checked_out": 15, "waiting": 18, "timeout_s": 30.0, "holders": holders(15, 30.5)})
    lines.append((179.794, cut[:420]))  # journald cut the line: the diagnosis is lost, the numbers survive
    # 09:17:10: a DBA runs SELECT pg_terminate_backend(48213); the queue drains.
    for i in range(10):
        access(188 + i * 0.3, "/api/epics/1", 200, 50600 + i, method="PATCH")


def stop() -> None:
    sup(200.5, "info", "supervisor.stopping", signal="SIGTERM", graceful=True, drain_delay_s=0.0,
        graceful_timeout_s=30.0)
    ev(200.6, "info", "server.uvicorn", "server", SRV, logger="uvicorn.error", message="Shutting down")
    ev(201.2, "info", "child.exited", "supervisor", SRV, worker=0, exit_code=0, uptime_s=201.18, was_ready=True,
       stderr_tail=[], hint="stopped by the supervisor")
    sup(201.3, "info", "supervisor.stopped", exit_code=0)


if __name__ == "__main__":
    start()
    incident()
    stop()
    print("\n".join(line for _, line in sorted(lines, key=lambda item: item[0])))

"""``/api/health`` (is the process alive) and ``/api/health/ready`` (may it take traffic).

Both answer anonymous clients (load balancers, probes, anyone on the network), so
they say only "ready" or "not ready" and why in generic words: never the database's
host, port or user, a revision id or a file path.  The detail goes to the log
(``db.not_ready``, once per change), where operators read it with ``jarlpm status``.
"""

from __future__ import annotations

import logging
import threading

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import QueuePool

from jarlpm.api.deps import RuntimeDep
from jarlpm.db import bounded_transaction, describe_db_error
from jarlpm.schema_state import MigrationsUnreadable, SchemaState, schema_state, script_revisions
from jarlpm.schemas import HealthOut, NotReadyOut, ReadyOut
from jarlpm.settings import Settings

router = APIRouter(prefix="/health", tags=["health"])

SERVICE = "jarlpm"
log = logging.getLogger("jarlpm.api")

# The only reasons an anonymous client is told.
STOPPING = "stopping"
NO_DATABASE = "no database configured"
DATABASE_UNAVAILABLE = "database unavailable"
MIGRATIONS_UNAVAILABLE = "migrations unavailable"
SCHEMA_NOT_AT_HEAD = "schema not at the code's head"
NOT_CHECKED = "schema not checked yet"


class _LastDetail:
    """The detail last logged, so that a probe every few seconds logs a change once, not each time."""

    lock = threading.Lock()
    value: str | None = None


@router.get("", response_model=HealthOut)
async def health() -> dict[str, str]:
    """Liveness, answered without the database: a database outage must never restart the server.

    ``async`` so that it needs no worker thread either: stuck requests holding
    every thread do not make the process look dead.
    """
    return {"status": "healthy", "service": SERVICE}


@router.get("/ready", responses={200: {"model": ReadyOut}, 503: {"model": NotReadyOut}})
async def ready(runtime: RuntimeDep) -> JSONResponse:
    """Readiness: 200 only while not stopping, the database answers and its schema is usable."""
    if runtime.stopping.is_set():
        return _not_ready(STOPPING)
    if runtime.engine is None:
        return _not_ready(NO_DATABASE, runtime.unavailable_reason)
    timeout = runtime.settings.ready_timeout_s
    outcome: SchemaState | tuple[str, str] | None = (DATABASE_UNAVAILABLE,
                                                     f"database did not answer within {timeout:g}s")
    pool_busy = False
    if _pool_busy(runtime.engine, runtime.settings):
        # Every connection is serving a request: the replica serves, so it is ready, with
        # the schema as last seen (a probe would only queue behind the requests).
        outcome, pool_busy = runtime.last_schema, True
    else:
        # The probe runs in a thread the deadline may abandon: a database that
        # accepted the TCP connection and then hung must not hang the probe too.
        with anyio.move_on_after(timeout):
            outcome = await anyio.to_thread.run_sync(_probe, runtime.engine, runtime.settings,
                                                     abandon_on_cancel=True)
    if outcome is None:
        return _not_ready(NOT_CHECKED, "the pool is busy and the schema was never checked")
    if isinstance(outcome, tuple):
        return _not_ready(*outcome)
    if outcome.reason is not None:
        return _not_ready(SCHEMA_NOT_AT_HEAD, outcome.reason)
    runtime.last_schema = outcome
    _LastDetail.value = None
    body = {"status": "ready", "service": SERVICE, "schema": "at_head" if outcome.at_head else "ahead"}
    if pool_busy:
        body["pool"] = "busy"  # the schema as last checked
    return JSONResponse(body)


def _pool_busy(engine: Engine, settings: Settings) -> bool:
    """Every connection of the request pool is checked out and it may open no more."""
    pool = engine.pool
    if not isinstance(pool, QueuePool):
        return False
    return pool.checkedin() == 0 and pool.overflow() >= settings.max_overflow


def _probe(engine: Engine, settings: Settings) -> SchemaState | tuple[str, str]:
    """Compare the database with the code's migrations over a pooled connection.

    Through the request pool, as serving does: a separate connection for the probe
    failed with "remaining connection slots are reserved" once the pools had taken
    PostgreSQL's free slots, and a load balancer dropped a replica that served fine
    (issue #16).  A (generic reason, detail) pair says why the check was impossible.
    """
    try:
        revisions = script_revisions(settings.alembic_ini)
    except (FileNotFoundError, MigrationsUnreadable) as exc:
        return MIGRATIONS_UNAVAILABLE, f"cannot read migrations: {exc}"
    try:
        with engine.connect() as connection:
            with bounded_transaction(connection, settings.ready_timeout_s):
                return schema_state(connection, revisions)
    except DBAPIError as exc:
        return DATABASE_UNAVAILABLE, describe_db_error(exc)


def _not_ready(reason: str, detail: str | None = None) -> JSONResponse:
    """503 with a generic ``reason``; the ``detail`` (host, revision, path…) only in the log."""
    if detail is not None:
        with _LastDetail.lock:
            changed, _LastDetail.value = _LastDetail.value != detail, detail
        if changed:
            log.warning("db.not_ready", extra={"reason": reason, "detail": detail})
    return JSONResponse({"status": "unavailable", "service": SERVICE, "reason": reason}, status_code=503)

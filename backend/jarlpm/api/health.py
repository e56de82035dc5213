"""``/api/health`` (is the process alive) and ``/api/health/ready`` (may it take traffic)."""

from __future__ import annotations

import anyio
from alembic.util import CommandError
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from jarlpm.api.deps import RuntimeDep
from jarlpm.db import bounded_transaction, describe_db_error
from jarlpm.schema_state import SchemaState, schema_state, script_revisions
from jarlpm.schemas import HealthOut, NotReadyOut, ReadyOut
from jarlpm.settings import Settings

router = APIRouter(prefix="/health", tags=["health"])

SERVICE = "jarlpm"


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
        return _not_ready("stopping")
    if runtime.probe is None:
        return _not_ready(runtime.unavailable_reason or "no database")
    timeout = runtime.settings.ready_timeout_s
    outcome: SchemaState | str = f"database did not answer within {timeout:g}s"
    # The probe runs in a thread the deadline may abandon: a database that
    # accepted the TCP connection and then hung must not hang the probe too.
    with anyio.move_on_after(timeout):
        outcome = await anyio.to_thread.run_sync(_probe, runtime.probe, runtime.settings, abandon_on_cancel=True)
    if isinstance(outcome, str):
        return _not_ready(outcome)
    if outcome.reason is not None:
        return _not_ready(outcome.reason)
    body = {
        "status": "ready",
        "service": SERVICE,
        "revision": ",".join(sorted(outcome.current)),
        "schema": "at_head" if outcome.at_head else "ahead",
    }
    return JSONResponse(body)


def _probe(probe: Engine, settings: Settings) -> SchemaState | str:
    """Compare the database with the code's migrations; a string says why that was impossible."""
    try:
        revisions = script_revisions(settings.alembic_ini)
    except (FileNotFoundError, CommandError) as exc:
        return f"cannot read migrations: {exc}"
    try:
        with probe.connect() as connection:
            with bounded_transaction(connection, settings.ready_timeout_s):
                return schema_state(connection, revisions)
    except DBAPIError as exc:
        return f"database unavailable: {describe_db_error(exc)}"


def _not_ready(reason: str) -> JSONResponse:
    return JSONResponse({"status": "unavailable", "service": SERVICE, "reason": reason}, status_code=503)

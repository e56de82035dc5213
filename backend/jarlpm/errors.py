"""Errors with a status code, and handlers turning them (and database failures) into responses."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm.exc import StaleDataError

from jarlpm import pool
from jarlpm.db import describe_db_error
from jarlpm.stages import StageTransitionError

log = logging.getLogger("jarlpm.api")

# Seconds a client should wait before retrying: a database restart or failover
# usually completes within a few seconds; a pool wait clears sooner.
RETRY_AFTER_UNAVAILABLE_S = 5
RETRY_AFTER_POOL_S = 2


class NotFound(LookupError):
    """A resource named in the path does not exist (404)."""

    def __init__(self, kind: str, ident: int) -> None:
        super().__init__(f"{kind} {ident} not found")


class Conflict(RuntimeError):
    """The request is valid but clashes with the resource's state, e.g. a locked epic (409)."""


class PreconditionFailed(RuntimeError):
    """``If-Match`` names a version the resource no longer has (412); carries the current ETag."""

    def __init__(self, message: str, etag: str) -> None:
        super().__init__(message)
        self.etag = etag


class DatabaseUnavailable(RuntimeError):
    """The request needs a database the app cannot reach or does not have (503)."""


def _detail(status: int, detail: str, retry_after: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _unavailable(request: Request, error: str) -> JSONResponse:
    log.warning("db.unavailable", extra={"path": request.url.path, "error": error})
    return _detail(503, "database unavailable, retry later", RETRY_AFTER_UNAVAILABLE_S)


class EchoJSONResponse(JSONResponse):
    """A JSON response that may echo a client's input: a lone surrogate in it becomes ``?``, not a 500."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            # Only on this rare path: the 422 echoes the text it refuses, and a
            # lone surrogate (valid in a JSON escape, not in UTF-8) cannot be encoded.
            rendered = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
            return rendered.encode("utf-8", "replace")


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 with pydantic's errors (FastAPI's shape), each naming the field (``loc``) and the rule."""
    assert isinstance(exc, RequestValidationError)
    return EchoJSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)


async def not_found(request: Request, exc: Exception) -> JSONResponse:
    """404 with the resource kind and id."""
    return _detail(404, str(exc))


async def conflict(request: Request, exc: Exception) -> JSONResponse:
    """409 with the rule that was broken."""
    return _detail(409, str(exc))


async def precondition_failed(request: Request, exc: Exception) -> JSONResponse:
    """412 with the current ETag: the client edits a version someone else has changed meanwhile."""
    assert isinstance(exc, PreconditionFailed)
    return JSONResponse({"detail": str(exc)}, status_code=412, headers={"ETag": exc.etag})


async def stale_data(request: Request, exc: Exception) -> JSONResponse:
    """412 (with If-Match) or 409: the row changed between its read and the conditional UPDATE/DELETE."""
    detail = "the resource changed while this request was applying its change; reload and retry"
    return _detail(412 if "if-match" in request.headers else 409, detail)


async def integrity_error(request: Request, exc: Exception) -> JSONResponse:
    """409: a constraint caught a race the checks could not (e.g. a parent deleted meanwhile)."""
    error = describe_db_error(exc)
    log.info("db.integrity_error", extra={"path": request.url.path, "error": error})
    return _detail(409, "the change conflicts with the current data; reload and retry")


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 + Retry-After: no database configured."""
    return _unavailable(request, str(exc))


async def operational_error(request: Request, exc: Exception) -> JSONResponse:
    """503 + Retry-After: connection refused or lost, server shutting down, statement timeout.

    PostgreSQL refusing a connection for want of slots is the pool running dry
    too: the pool monitor reports it with a diagnosis.
    """
    error = describe_db_error(exc)
    pool.report_connect_refused(_engine(request), error)
    return _unavailable(request, error)


async def dbapi_error(request: Request, exc: Exception) -> JSONResponse:
    """503 + Retry-After when the driver lost the connection; any other driver error is a 500."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return _unavailable(request, describe_db_error(exc))
    raise exc


async def pool_timeout(request: Request, exc: Exception) -> JSONResponse:
    """503 + Retry-After: every pooled connection stayed busy for DB_POOL_TIMEOUT seconds.

    The pool monitor then logs ``db.pool.exhausted`` (who holds the connections,
    what the database sees, what to change) from its own thread, at most once
    per interval; this handler only hands it the moment.
    """
    log.warning("db.pool.timeout", extra={"event": "db.pool.timeout", "path": request.url.path, "error": str(exc)})
    pool.report_pool_timeout(_engine(request), str(exc))
    return _detail(503, "server busy: no database connection free, retry later", RETRY_AFTER_POOL_S)


def _engine(request: Request) -> Engine | None:
    return getattr(getattr(request.app.state, "runtime", None), "engine", None)


def install_handlers(app: FastAPI) -> None:
    """Register the handlers; Starlette picks the most specific class in the exception's MRO."""
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(NotFound, not_found)
    app.add_exception_handler(Conflict, conflict)
    app.add_exception_handler(StageTransitionError, conflict)
    app.add_exception_handler(PreconditionFailed, precondition_failed)
    app.add_exception_handler(StaleDataError, stale_data)
    app.add_exception_handler(DatabaseUnavailable, database_unavailable)
    app.add_exception_handler(sa_exc.IntegrityError, integrity_error)
    app.add_exception_handler(sa_exc.OperationalError, operational_error)
    app.add_exception_handler(sa_exc.DBAPIError, dbapi_error)
    app.add_exception_handler(sa_exc.TimeoutError, pool_timeout)

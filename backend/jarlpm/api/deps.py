"""Request dependencies: the app's runtime, one session per request, pagination, path ids."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, TypeVar, cast

from fastapi import Depends, Path, Query, Request
from sqlalchemy import Select, func, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from jarlpm.errors import DatabaseUnavailable, NotFound
from jarlpm.models import Base
from jarlpm.runtime import Runtime

M = TypeVar("M", bound=Base)

# Ids are BIGINT: a larger number would reach PostgreSQL as an out-of-range
# error (a 500); refusing it here makes it a 422 like any other bad input.
Id = Annotated[int, Path(ge=1, le=2**63 - 1)]


def get_runtime(request: Request) -> Runtime:
    """The runtime the lifespan created; missing only when the app runs without its lifespan."""
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise DatabaseUnavailable("application not started (lifespan did not run)")
    return cast(Runtime, runtime)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    """Yield one session for the request and close it on every path, errors included.

    Closing returns the connection to the pool (rolling back anything not
    committed); a connection kept past the response is exactly the leak that
    exhausts a pool.
    """
    if runtime.sessions is None:
        raise DatabaseUnavailable(runtime.unavailable_reason or "no database")
    session = runtime.sessions()
    try:
        yield session
    finally:
        close_session(session)


def close_session(session: Session) -> None:
    """Close ``session``; a connection the database dropped is discarded, not raised.

    Closing rolls back, and on a connection PostgreSQL dropped (a restart, a
    failover) the rollback fails with "server closed the connection
    unexpectedly".  That is the outage the request already answered (503 with
    Retry-After, and ``db.unavailable``), not an error of the app: raised here,
    after the response, uvicorn would log it as "Exception in ASGI application"
    with a traceback.  Invalidating hands the pool a slot to reconnect.
    """
    try:
        session.close()
    except DBAPIError as exc:
        if not (exc.connection_invalidated or isinstance(exc, OperationalError)):
            raise
        session.invalidate()


SessionDep = Annotated[Session, Depends(get_session)]


@dataclass(frozen=True)
class PageParams:
    """Which slice of a list to return."""

    limit: int
    offset: int


def page_params(
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> PageParams:
    """Read ``limit`` (1-200, default 50) and ``offset`` from the query string."""
    return PageParams(limit=limit, offset=offset)


PageDep = Annotated[PageParams, Depends(page_params)]


def fetch_page(session: Session, statement: Select[M], page: PageParams) -> tuple[list[M], int]:
    """Return one page of ``statement``'s rows, in id order, and the total row count."""
    total = session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
    rows = session.scalars(statement.limit(page.limit).offset(page.offset)).all()
    return list(rows), int(total or 0)


def get_or_404(session: Session, model: type[M], ident: int, kind: str) -> M:
    """Load ``model`` by primary key or raise NotFound naming ``kind``."""
    instance = session.get(model, ident)
    if instance is None:
        raise NotFound(kind, ident)
    return instance

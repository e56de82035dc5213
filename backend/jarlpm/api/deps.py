"""Request dependencies: the app's runtime, one session per request, pagination and sorting, path ids."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, cast

from fastapi import Depends, Path, Query, Request
from sqlalchemy import Select, UnaryExpression, func, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from jarlpm.errors import DatabaseUnavailable, NotFound
from jarlpm.models import Base, Epic, Feature, UserStory
from jarlpm.runtime import Runtime

M = TypeVar("M", bound=Base)

# Offset pagination reads and skips every row before the page: the cap keeps a
# page cheap (and a client walking further should filter or sort instead).
MAX_OFFSET = 10_000
MAX_LIMIT = 200

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


class SortKey(enum.StrEnum):
    """List order: a field, ascending, or descending with a leading ``-``; ties broken by id."""

    CREATED = "created_at"
    CREATED_DESC = "-created_at"
    UPDATED = "updated_at"
    UPDATED_DESC = "-updated_at"
    TITLE = "title"
    TITLE_DESC = "-title"


@dataclass(frozen=True)
class PageParams:
    """Which slice of a list to return."""

    limit: int
    offset: int
    sort: SortKey = SortKey.CREATED


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    sort: Annotated[SortKey, Query(description="Order of the list (default: oldest first).")] = SortKey.CREATED,
) -> PageParams:
    """Read ``limit`` (1-200, default 50), ``offset`` (0-10000) and ``sort`` from the query string."""
    return PageParams(limit=limit, offset=offset, sort=sort)


PageDep = Annotated[PageParams, Depends(page_params)]


Listed = type[Epic] | type[Feature] | type[UserStory]


def order_by(model: Listed, key: SortKey) -> tuple[UnaryExpression[Any], ...]:
    """The ORDER BY of ``key``: creation order is id order (the primary key's index); id breaks ties."""
    descending = key.value.startswith("-")
    field = key.value.lstrip("-")
    if field == "created_at":
        return (model.id.desc() if descending else model.id.asc(),)
    column = model.updated_at if field == "updated_at" else model.title
    if descending:
        return (column.desc(), model.id.desc())
    return (column.asc(), model.id.asc())


def fetch_page(session: Session, model: Listed, statement: Select[M], page: PageParams) -> tuple[list[M], int]:
    """Return one page of ``statement``'s rows (of ``model``), in ``page.sort`` order, and the total."""
    total = session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
    ordered = statement.order_by(*order_by(model, page.sort))
    rows = session.scalars(ordered.limit(page.limit).offset(page.offset)).all()
    return list(rows), int(total or 0)


def get_or_404(session: Session, model: type[M], ident: int, kind: str, *, for_update: bool = False) -> M:
    """Load ``model`` by primary key or raise NotFound naming ``kind``.

    ``for_update`` locks the row until the transaction ends, so that the checks
    a change makes (If-Match, the stage rule) hold when it is written: two
    concurrent changes with the same If-Match cannot both win.
    """
    instance = session.get(model, ident, with_for_update=for_update)
    if instance is None:
        raise NotFound(kind, ident)
    return instance

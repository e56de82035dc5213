"""The migration connections this process has open, so that their statements can be cancelled.

When the phase process learns that the supervisor died (``system.parentdeath``), its
main thread may be blocked in a long DDL statement holding table locks.  Exiting
alone is not enough: PostgreSQL would run that statement to its end before noticing
the client is gone, keeping the locks all that time.  A cancel request (libpq's
``PQcancel``, safe from another thread) ends it now, and its transaction rolls back.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any

import psycopg2
import sqlalchemy as sa

_open: weakref.WeakSet[Any] = weakref.WeakSet()


def track(engine: sa.Engine) -> sa.Engine:
    """Remember every DBAPI connection ``engine`` opens; returns the engine."""
    sa.event.listen(engine, "connect", lambda dbapi_conn, _record: _open.add(dbapi_conn))
    return engine


def cancel_all() -> int:
    """Ask PostgreSQL to cancel whatever each open tracked connection is running; how many were asked."""
    asked = 0
    for conn in list(_open):
        if getattr(conn, "closed", 1):
            continue
        with contextlib.suppress(psycopg2.Error):
            conn.cancel()
            asked += 1
    return asked

"""The connection budget on a real PostgreSQL: the supervisor's start-up figure and a server's agree.

The supervisor's ``warm_pool`` phase (``probe.read_budget``, logged as ``db.pool.budget``)
and a server process's pool report (``dbview.query_view`` + ``connection_budget``, the
``budget`` of ``db.pool.exhausted``) look at the same database through the app's role,
which is not a superuser and so sees other roles' sessions only in part.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg2
from jarlpm.pool import dbview
from jarlpm.pool.budget import connection_budget
from pgfixtures import ExternalPostgres  # type: ignore[import-not-found]
from procs import wait_for

from supervisor.contract import dburl
from supervisor.database import probe
from supervisor.database.pgcluster import LocalPostgres


@contextlib.contextmanager
def sessions(url: str, *applications: str) -> Iterator[list[Any]]:
    """Open one idle session per application name; close them all on exit."""
    opened: list[Any] = []
    try:
        for application in applications:
            opened.append(psycopg2.connect(dburl.libpq_dsn(url), application_name=application, connect_timeout=10))
        yield opened
    finally:
        for conn in opened:
            conn.close()


def server_side(url: str, workers: int, per_process: int) -> dict[str, Any]:
    """The budget a server process's pool report would carry, read the way it reads it."""
    view = dbview.query_view(dbview.connect_kwargs(psycopg2.extensions.parse_dsn(dburl.libpq_dsn(url))))
    return connection_budget(workers, per_process, view.settings, view.in_use, view.sessions).as_fields()


class TestBudgetsAgree:
    """Both sides count the same sessions with the same arithmetic."""

    def test_supervisor_and_server_give_the_same_figures(
        self, pg_server: LocalPostgres | ExternalPostgres, app_db: str
    ) -> None:
        """Other roles' sessions count against the budget on both sides; JarlPM's servers' do not.

        The supervisor measures with its warm-up connections open (and excluded), then
        closes them before any server starts; a server measures later, through its own
        diagnostics connection (excluded too).  Same database, same sessions: same figures.
        """
        other_role = pg_server.url("postgres")  # a superuser: another role, whose rows the app's role sees in part
        with sessions(other_role, "someone-else"), sessions(app_db, "jarlpm-server:101", "jarlpm-server:102", "psql"):
            with sessions(app_db, "jarlpm-supervisor", "jarlpm-supervisor") as ours:
                supervisor_side = probe.read_budget(ours[0], workers=2, per_process=15,
                                                    exclude_pids=[c.get_backend_pid() for c in ours])
            expected = supervisor_side.as_fields()
            # A closed session leaves pg_stat_activity a moment later.
            wait_for(lambda: server_side(app_db, 2, 15) == expected, 10, f"the server's budget to be {expected}")
        assert supervisor_side.app_in_use == 2
        assert supervisor_side.other_clients is not None and supervisor_side.other_clients >= 2
        assert supervisor_side.max_connections is not None and supervisor_side.reserved is not None
        assert supervisor_side.available == (supervisor_side.max_connections - supervisor_side.reserved
                                             - supervisor_side.other_clients)

"""The connection budget, defined once: the deployment's pools against the slots PostgreSQL leaves free.

The supervisor's ``warm_pool`` phase (``db.pool.budget``) and a server process's pool
report (``db.pool.exhausted``'s ``budget``) both count with this class and this
query filter, so they give the same figures for the same database.  Pure: the
callers read the numbers (the SQL below is text; nothing here connects).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Every server process names its connections ``jarlpm-server:<pid>`` (application_name).
APP_PREFIX = "jarlpm-server"

# The sessions that take a connection slot, as ``pg_stat_activity a`` shows them to the
# app's role, which is typically not a superuser: other roles' rows show a NULL
# backend_type (and no query), so NULL counts as a client when it has a database.
CLIENT_SESSIONS_SQL = "a.datname IS NOT NULL AND (a.backend_type = 'client backend' OR a.backend_type IS NULL)"


def is_app_session(application: str, same_database: bool) -> bool:
    """A JarlPM server process's connection to this database (counted in ``needed``, not against it)."""
    return same_database and application.startswith(APP_PREFIX + ":")


@dataclass(frozen=True)
class ConnectionBudget:
    """``WORKERS × (DB_POOL_SIZE + DB_MAX_OVERFLOW)`` against the slots other clients leave free.

    ``in_use`` counts client sessions of every role (the caller's own probe excluded);
    ``app_in_use`` those of JarlPM's server processes, which ``needed`` already
    covers; the rest are ``other_clients`` (migrations, psql, other services, other
    roles).  Slots reserved for superusers are not available to the app's role.
    Unknown numbers (no view of the database) are None.
    """

    workers: int
    per_process: int
    max_connections: int | None = None
    reserved: int | None = None
    in_use: int | None = None
    app_in_use: int | None = None

    @property
    def needed(self) -> int:
        return self.workers * self.per_process

    @property
    def other_clients(self) -> int | None:
        if self.in_use is None or self.app_in_use is None:
            return None
        return max(0, self.in_use - self.app_in_use)

    @property
    def available(self) -> int | None:
        """Slots this app's role may use: max_connections − reserved − other clients (None if unknown)."""
        if self.max_connections is None or self.reserved is None or self.other_clients is None:
            return None
        return self.max_connections - self.reserved - self.other_clients

    @property
    def fits(self) -> bool | None:
        available = self.available
        return None if available is None else self.needed <= available

    @property
    def full(self) -> bool:
        """No slot left for a role without superuser rights right now."""
        if self.max_connections is None or self.reserved is None or self.in_use is None:
            return False
        return self.in_use >= self.max_connections - self.reserved

    def as_fields(self) -> dict[str, Any]:
        return {"workers": self.workers, "per_process": self.per_process, "needed": self.needed,
                "max_connections": self.max_connections, "reserved": self.reserved,
                "in_use": self.in_use, "app_in_use": self.app_in_use,
                "other_clients": self.other_clients, "available": self.available, "fits": self.fits}


def from_sessions(workers: int, per_process: int, max_connections: int | None, reserved: int | None,
                  in_use: int | None, sessions: Iterable[tuple[str, bool]]) -> ConnectionBudget:
    """The budget from what the database showed: ``in_use`` client sessions (None when it could
    not be asked), and those sessions as ``(application_name, same_database)`` pairs."""
    return ConnectionBudget(
        workers=workers, per_process=per_process, max_connections=max_connections, reserved=reserved,
        in_use=in_use,
        app_in_use=None if in_use is None else sum(1 for app, same in sessions if is_app_session(app, same)),
    )

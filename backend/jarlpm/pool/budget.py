"""Connection arithmetic: the deployment's pools against PostgreSQL's slots, and threads against the pool.

Pure functions of numbers, so the exhaustion event and the start-up warning
say the same thing and the unit tests can check every branch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from jarlpm.pool.model import DbSession, DbSettings

APP_PREFIX = "jarlpm-server"


def program_name(application: str) -> str:
    """``jarlpm-server:123`` counts as ``jarlpm-server``: connection slots per program, not per process."""
    name = application.split(":", 1)[0] if application.startswith("jarlpm-") else application
    return name or "(no application_name)"


@dataclass(frozen=True)
class ConnectionBudget:
    """``WORKERS × (DB_POOL_SIZE + DB_MAX_OVERFLOW)`` against the slots other clients leave free.

    ``other_clients`` are sessions not named ``jarlpm-server:*`` (migrations,
    probes, psql, other services); slots reserved for superusers are not
    available to the app's role.  Unknown numbers (no view of the database) are None.
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


def connection_budget(workers: int, per_process: int, settings: DbSettings | None,
                      in_use: int | None, sessions: Iterable[DbSession]) -> ConnectionBudget:
    """The budget from what the database showed (settings may come from an earlier connection)."""
    app = sum(1 for s in sessions if s.same_database and s.application.startswith(APP_PREFIX + ":"))
    return ConnectionBudget(
        workers=workers,
        per_process=per_process,
        max_connections=settings.max_connections if settings else None,
        reserved=settings.reserved if settings else None,
        in_use=in_use,
        app_in_use=app if in_use is not None else None,
    )


@dataclass(frozen=True)
class ThreadBudget:
    """How many sync endpoints may run at once (the request thread pool) against the pool's connections."""

    threads: int
    pool_size: int
    max_overflow: int

    @property
    def capacity(self) -> int:
        return self.pool_size + self.max_overflow

    @property
    def exceeds(self) -> bool:
        return self.threads > self.capacity

    def hint(self, timeout_s: float) -> str:
        queued = self.threads - self.capacity
        return (
            f"up to {self.threads} sync endpoints run at once (the request thread pool) but this process's "
            f"pool serves {self.capacity} (DB_POOL_SIZE={self.pool_size} + DB_MAX_OVERFLOW={self.max_overflow}): "
            f"in a burst {queued} requests wait for a connection and get 503 after DB_POOL_TIMEOUT="
            f"{timeout_s:g}s; raise DB_MAX_OVERFLOW to {self.threads - self.pool_size} if PostgreSQL has "
            f"the slots (check db.pool.budget), or accept the queueing"
        )

"""Connection arithmetic: the deployment's pools against PostgreSQL's slots, and threads against the pool.

Pure functions of numbers.  The connection budget itself is the contract's
(``supervisor.contract.budget``), so the exhaustion event and the supervisor's
start-up ``db.pool.budget`` say the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from jarlpm.pool.model import DbSession, DbSettings
from supervisor.contract import budget
from supervisor.contract.budget import APP_PREFIX, ConnectionBudget

__all__ = ["APP_PREFIX", "ConnectionBudget", "ThreadBudget", "connection_budget", "program_name"]


def program_name(application: str) -> str:
    """``jarlpm-server:123`` counts as ``jarlpm-server``: connection slots per program, not per process."""
    name = application.split(":", 1)[0] if application.startswith("jarlpm-") else application
    return name or "(no application_name)"


def connection_budget(workers: int, per_process: int, settings: DbSettings | None,
                      in_use: int | None, sessions: Iterable[DbSession]) -> ConnectionBudget:
    """The budget from what the database showed (settings may come from an earlier connection).

    Counted by the contract's one definition, as the supervisor's ``db.pool.budget`` is.
    """
    return budget.from_sessions(
        workers, per_process,
        settings.max_connections if settings else None, settings.reserved if settings else None,
        in_use, ((s.application, s.same_database) for s in sessions),
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

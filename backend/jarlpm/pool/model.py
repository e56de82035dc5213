"""The facts a pool report is made of: plain frozen data, shared by the effects and the pure diagnosis."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PoolNumbers:
    """This process's pool: its limits and, at the moment of the report, its use."""

    pool_size: int
    max_overflow: int
    timeout_s: float
    checked_out: int
    waiting: int
    peak_demand: int = 0  # most requests that wanted a connection at once since the last report
    workers: int = 1

    @property
    def capacity(self) -> int:
        return self.pool_size + self.max_overflow


@dataclass(frozen=True)
class HolderView:
    """A checked-out connection frozen for a report; ages in seconds."""

    method: str | None
    route: str | None
    request_id: str | None
    held_s: float
    request_finished_s: float | None = None  # seconds since its request ended; None while it runs
    backend_pid: int | None = None
    where: str | None = None
    stack: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``GET /api/epics`` or ``(outside a request)``."""
        if self.route is None:
            return "(outside a request)"
        return f"{self.method} {self.route}" if self.method else self.route


@dataclass(frozen=True)
class WaiterView:
    """A request waiting for a connection."""

    method: str | None
    route: str | None
    waited_s: float


@dataclass(frozen=True)
class TrackerSnapshot:
    """Holders and waiters at one instant, and the most connections wanted at once lately."""

    holders: tuple[HolderView, ...]
    waiters: tuple[WaiterView, ...]
    peak_demand: int


@dataclass(frozen=True)
class DbSession:
    """One row of ``pg_stat_activity``; another role's session shows only pid, user and application."""

    pid: int
    application: str
    user: str | None = None
    same_database: bool = True
    state: str | None = None  # None: hidden from this role
    xact_age_s: float | None = None
    query_age_s: float | None = None
    state_age_s: float | None = None
    wait_event_type: str | None = None
    wait_event: str | None = None
    blocked_by: tuple[int, ...] = ()
    statement: str | None = None  # normalised; None when hidden or empty

    @property
    def visible(self) -> bool:
        return self.state is not None


@dataclass(frozen=True)
class DbLock:
    """A relation lock from ``pg_locks`` (visible to every role)."""

    pid: int
    mode: str
    relation: str
    granted: bool
    waiting_s: float | None = None


@dataclass(frozen=True)
class DbSettings:
    """The connection limits, read once from the pool's first connection and kept for later."""

    max_connections: int
    reserved: int


@dataclass(frozen=True)
class DbView:
    """What PostgreSQL saw, through a connection outside the pool; ``error`` when it could not be asked."""

    settings: DbSettings | None = None
    in_use: int | None = None
    sessions: tuple[DbSession, ...] = ()
    locks: tuple[DbLock, ...] = ()
    error: str | None = None
    duration_ms: int | None = None

    @property
    def reachable(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Trigger:
    """What asked for the report: a pool timeout, or PostgreSQL refusing a new connection."""

    kind: str  # "timeout" or "refused"
    error: str = ""
    method: str | None = None
    route: str | None = None


@dataclass(frozen=True)
class Diagnosis:
    """The most specific cause, the other causes that fit, a hint, and the evidence behind them."""

    diagnosis: str
    also: tuple[str, ...]
    hint: str
    kinds: dict[int, str] = field(default_factory=dict)  # holder index -> kind, for grouping

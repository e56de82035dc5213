"""The ordered phases, the plans that list them (once), and the runner that times and logs them.

A phase is a small object with a ``name`` and ``run(ctx)``.  The runner logs
``phase.started``/``phase.completed``/``phase.failed`` exactly once each and records
a frozen result; phases raise ``SupervisorError`` (exit code + hint) and never exit.

``validate_env`` runs in the supervisor itself (``supervision.service``), before the
socket is bound, and logs the same three events; so does ``embedded_db`` (the
supervisor owns the PostgreSQL it starts).  The database phases run in the phase
process, by *plan* (``PLANS``): ``start`` at start-up, ``reload`` on SIGHUP, ``check``
and ``rehearse`` for ``jarlpm check``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from supervisor.contract import dburl
from supervisor.contract.config import Settings
from supervisor.contract.exitcodes import ExitCode, StopRequested, SupervisorError
from supervisor.system.backoff import backoff_delay
from supervisor.system.notify import Notifier
from supervisor.system.signals import SignalQueue

if TYPE_CHECKING:
    from supervisor.contract.budget import ConnectionBudget


@dataclass
class PhaseContext:
    """What phases share: settings, signals, the log, systemd, and what earlier phases found."""

    settings: Settings
    signals: SignalQueue
    log: Any
    notifier: Notifier
    facts: dict[str, Any] = field(default_factory=dict)
    on_stop: list[Callable[[], None]] = field(default_factory=list)


@dataclass(frozen=True)
class PhaseResult:
    name: str
    ok: bool
    duration_ms: int
    exit_code: int | None = None


class Phase(Protocol):
    name: str

    def budget(self, settings: Settings) -> float:
        """Seconds this phase may take, to extend systemd's start timeout."""
        ...

    def run(self, ctx: PhaseContext) -> None: ...


class EmbeddedDatabasePhase:
    """Development mode without DATABASE_URL: start a throwaway PostgreSQL under .jarlpm/."""

    name = "embedded_db"

    def budget(self, settings: Settings) -> float:
        return 120

    def run(self, ctx: PhaseContext) -> None:
        from supervisor.database import embedded

        database = embedded.start(ctx.log)
        ctx.on_stop.append(database.stop)
        ctx.settings = ctx.settings.with_database(database.url)
        dburl.register_url_secrets(database.url)
        ctx.facts["embedded_database"] = dburl.describe(database.url)
        ctx.facts["embedded_postmaster_pid"] = database.postmaster_pid()
        ctx.facts["embedded_guard_pid"] = database.guard.pid if database.guard else None


class WaitForDatabasePhase:
    """A real query with the app's credentials, retried with backoff until DB_WAIT_TIMEOUT."""

    name = "wait_for_db"

    def budget(self, settings: Settings) -> float:
        return settings.db_wait_timeout + 10

    def run(self, ctx: PhaseContext) -> None:
        from supervisor.database import probe

        assert ctx.settings.database_url is not None
        urls = [ctx.settings.database_url]
        if ctx.settings.database_direct_url and ctx.settings.database_direct_url != urls[0]:
            urls.append(ctx.settings.database_direct_url)
        attempts = 0
        for url in urls:
            attempts += probe.wait_for_database(url, ctx.settings.db_wait_timeout, ctx.signals, ctx.log)
        ctx.facts["db_attempts"] = attempts


class MigratePhase:
    """Refuse several heads; bring the schema to head once across replicas (see ``migrator``).

    A restart of a release already verified is recognised first without Alembic
    (``quickcheck``).  ``reset`` is true in the start-up plan only: DB_RESET_ON_STARTUP
    means once per start of the supervisor, and a reload's run (a fresh process that
    remembers nothing) must not drop the data again.
    """

    name = "migrate"

    def __init__(self, reset: bool) -> None:
        self.reset = reset

    def budget(self, settings: Settings) -> float:
        return settings.migration_lock_timeout + 600

    def run(self, ctx: PhaseContext) -> None:
        from supervisor.migrations import quickcheck

        if not self.reset:
            ctx.settings = replace(ctx.settings, db_reset_on_startup=False)
        verified = quickcheck.verified_restart(ctx.settings)
        if verified is not None:  # a restart of a release already verified: Alembic not needed
            ctx.log.info("migrate.up_to_date", revision=verified.revision, locked=False,
                         drift_check="cached", drift_check_ms=verified.ms)
            ctx.facts["head"] = verified.revision
            ctx.facts["applied"] = []
            return
        from supervisor.migrations import migrator

        result = migrator.migrate_to_head(ctx.settings, ctx.signals, ctx.log)
        ctx.facts["head"] = result.head
        ctx.facts["applied"] = result.applied


class CheckMigrationsPhase:
    """``jarlpm check``'s migrate phase: read-only (see ``migrations.preflight``); ``rehearse`` rolls back."""

    name = "migrate"

    def __init__(self, rehearse: bool) -> None:
        self.rehearse = rehearse

    def budget(self, settings: Settings) -> float:
        return 600

    def run(self, ctx: PhaseContext) -> None:
        from supervisor.migrations import preflight

        pending = preflight.inspect(ctx.settings, ctx.log, self.rehearse)
        ctx.facts["pending"] = [p.revision for p in pending]


class WarmPoolPhase:
    """Open and close this process's pool worth of connections; check the connection budget."""

    name = "warm_pool"

    def budget(self, settings: Settings) -> float:
        return 60 + settings.db_wait_timeout  # a database at capacity is waited for

    def run(self, ctx: PhaseContext) -> None:
        s = ctx.settings
        deadline = time.monotonic() + s.db_wait_timeout
        attempt = 0
        while True:
            attempt += 1
            budget = self._open_pool(ctx, retry_until=deadline, attempt=attempt)
            if budget is not None:
                break
        fields = budget.as_fields()
        fields.update(pool_size=s.db_pool_size, max_overflow=s.db_max_overflow)
        if budget.fits:
            ctx.log.info("db.pool.budget", **fields)
        else:
            ctx.log.warning(
                "db.pool.budget", **fields,
                hint=(f"WORKERS × (DB_POOL_SIZE + DB_MAX_OVERFLOW) = {budget.needed} may exceed the "
                      f"{budget.available} connections PostgreSQL has left (max_connections "
                      f"{budget.max_connections} − reserved {budget.reserved} − {budget.other_clients} "
                      "other clients); with several replicas multiply again: lower the pool, use PgBouncer, "
                      "or raise max_connections"),
            )
        ctx.facts["budget"] = fields

    def _open_pool(self, ctx: PhaseContext, retry_until: float, attempt: int) -> ConnectionBudget | None:
        """Open the pool's worth of connections and read the budget; None: at capacity, retry.

        A database at capacity frees slots as other clients finish, so it is retried
        until DB_WAIT_TIMEOUT, then fails with its own exit code and hint (not 69).
        """
        import psycopg2

        from supervisor.database import errors, probe

        s = ctx.settings
        assert s.database_url is not None
        conns = []
        try:
            for _ in range(s.db_pool_size):
                conns.append(probe.connect(s.database_url, timeout=10))
            return probe.read_budget(conns[0], s.workers, s.db_pool_size + s.db_max_overflow,
                                     exclude_pids=[conn.get_backend_pid() for conn in conns])
        except psycopg2.Error as exc:
            diagnosis = errors.classify_exception(exc)
            message = dburl.redact(errors.first_line(str(exc)))
            opened = len(conns)
        finally:
            for conn in conns:
                conn.close()
        remaining = retry_until - time.monotonic()
        if diagnosis is errors.AT_CAPACITY and remaining > 0:
            delay = min(remaining, backoff_delay(attempt, 0.2, 2.0))
            ctx.log.info("db.wait.retry", attempt=attempt, delay_s=round(delay, 3), error=message,
                         remaining_s=round(remaining, 1), reason=diagnosis.kind, opened=opened)
            if ctx.signals.sleep(delay):
                raise StopRequested(ctx.signals.name(ctx.signals.stop_signal or 15))
            return None
        if diagnosis is errors.AT_CAPACITY:
            raise SupervisorError(
                f"database at capacity within DB_WAIT_TIMEOUT={s.db_wait_timeout:g}s: could open only "
                f"{opened} of the pool's {s.db_pool_size} connections: {message}",
                diagnosis.exit_code, diagnosis.hint, opened=opened, reason=diagnosis.kind, attempts=attempt)
        code = diagnosis.exit_code if not diagnosis.retryable else ExitCode.UNAVAILABLE
        raise SupervisorError(f"could not open the pool's connections: {message}", code, diagnosis.hint,
                              opened=opened, reason=diagnosis.kind)


# The database phases of each plan, in order: the one list of them.  ``jarlpm check``
# runs the same phases as a start, with a migrate phase that changes nothing.
PLANS: dict[str, Callable[[], list[Phase]]] = {
    "start": lambda: [WaitForDatabasePhase(), MigratePhase(reset=True), WarmPoolPhase()],
    "reload": lambda: [MigratePhase(reset=False)],
    "check": lambda: [WaitForDatabasePhase(), CheckMigrationsPhase(rehearse=False), WarmPoolPhase()],
    "rehearse": lambda: [WaitForDatabasePhase(), CheckMigrationsPhase(rehearse=True), WarmPoolPhase()],
}


def plan(name: str) -> list[Phase]:
    """The phases of plan ``name`` (a key of ``PLANS``), ready to run."""
    return PLANS[name]()


class PhaseRunner:
    """Runs phases in order, logging each exactly once; stops at the first failure."""

    def __init__(self, ctx: PhaseContext) -> None:
        self.ctx = ctx
        self.results: list[PhaseResult] = []
        self.current: str | None = None

    def run_all(self, phases: Sequence[Phase]) -> None:
        for phase in phases:
            self.run(phase)

    def run(self, phase: Phase) -> None:
        ctx = self.ctx
        if ctx.signals.stop_pending():
            raise StopRequested(ctx.signals.name(ctx.signals.stop_signal or 15))
        self.current = phase.name
        ctx.notifier.extend_timeout(phase.budget(ctx.settings))
        ctx.notifier.status(f"phase {phase.name}")
        ctx.log.info("phase.started", phase=phase.name)
        started = time.monotonic()
        try:
            phase.run(ctx)
        except SupervisorError as exc:
            self.record_failure(phase.name, started, exc)
            raise
        except StopRequested:
            ctx.log.info("phase.interrupted", phase=phase.name,
                         duration_ms=round((time.monotonic() - started) * 1000))
            raise
        duration = round((time.monotonic() - started) * 1000)
        self.results.append(PhaseResult(phase.name, True, duration))
        ctx.log.info("phase.completed", phase=phase.name, duration_ms=duration)
        self.current = None

    def record_failure(self, name: str, started: float, exc: SupervisorError) -> None:
        duration = round((time.monotonic() - started) * 1000)
        self.results.append(PhaseResult(name, False, duration, int(exc.exit_code)))
        self.ctx.log.error("phase.failed", phase=name, exit_code=int(exc.exit_code),
                           error=exc.message, hint=exc.hint, duration_ms=duration, **exc.fields)
        exc.logged = True
        self.current = None

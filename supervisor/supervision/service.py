"""``jarlpm run`` and ``jarlpm check``: the ordered steps from environment to a supervised server.

``run`` is: configure logging, install signal handling, validate the environment,
bind the socket and prespawn the server processes (imports overlap the phases),
run the phases, supervise, stop whatever the phases started, report the exit code.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
import traceback
from typing import TYPE_CHECKING, Any

# Only light modules here: the server processes are spawned right after validation, and
# SQLAlchemy, Alembic and psycopg2 are imported (by the phases) while they import the app.
from supervisor.contract import config, dburl
from supervisor.contract.exitcodes import ExitCode, StopRequested, SupervisorError
from supervisor.logs import logsetup
from supervisor.supervision import listener
from supervisor.supervision.arbiter import Arbiter
from supervisor.supervision.status import StatusServer, socket_path
from supervisor.system import reaper
from supervisor.system.notify import Notifier
from supervisor.system.signals import STOP_SIGNALS, SignalQueue

if TYPE_CHECKING:
    from supervisor.phases import PhaseContext


def _validate(log: Any, notifier: Notifier, signals: SignalQueue) -> config.Settings:
    """The validate_env phase: every variable at once; one event with every problem (exit 78)."""
    log.info("phase.started", phase="validate_env")
    started = time.monotonic()
    try:
        settings = config.load_settings(os.environ)
    except config.ConfigError as exc:
        _log_validation_failure(log, [p.as_dict() for p in exc.problems],
                                round((time.monotonic() - started) * 1000), list(exc.unknown))
        error = SupervisorError(str(exc), ExitCode.CONFIG, "fix the configuration")
        error.logged = True
        raise error from None
    for warning in settings.warnings:
        hint = (f"did you mean {warning['suggestion']}?" if warning["suggestion"]
                else "no JarlPM setting has this name; remove it or fix the spelling")
        log.warning("config.unknown_variable", variable=warning["variable"],
                    suggestion=warning["suggestion"] or None, hint=hint)
    logsetup.configure(settings.log_format, settings.log_level, buffer_kb=settings.log_buffer_kb)
    return settings


def _log_validation_failure(log: Any, problems: list[dict[str, str]], duration_ms: int,
                            unknown: list[dict[str, str]]) -> None:
    """The single event for an invalid configuration (exit 78), typos included."""
    names = ", ".join(p["variable"] for p in problems)
    extra = {"unknown_variables": unknown} if unknown else {}
    log.error(
        "phase.failed", phase="validate_env", exit_code=int(ExitCode.CONFIG),
        error=f"invalid configuration: {len(problems)} problem(s) with {names}",
        problems=problems, duration_ms=duration_ms, **extra,
        hint="fix the variables listed in problems (see the README's environment table); nothing "
             "else was touched",
    )


def _finish_validation(log: Any, started: float) -> None:
    log.info("phase.completed", phase="validate_env",
             duration_ms=round((time.monotonic() - started) * 1000))


def _stopped(log: Any, code: ExitCode) -> int:
    log.info("supervisor.stopped", exit_code=int(code))
    logsetup.flush()
    return int(code)


def _fail(log: Any, exc: SupervisorError, phase: str | None) -> None:
    """Log a failure raised outside the phase runner (which logs its own)."""
    if exc.logged:
        return
    log.error("phase.failed", phase=phase or "supervise", exit_code=int(exc.exit_code),
              error=exc.message, hint=exc.hint, **exc.fields)


def run(check_only: bool = False) -> int:
    """The supervisor's whole life; returns the process exit code."""
    fmt, level = config.log_settings_only(os.environ)
    logsetup.configure(fmt, level)
    log = logsetup.get_logger()
    signals = SignalQueue()
    signals.install()
    reaper.become_subreaper()
    notifier = Notifier()
    arbiter: Arbiter | None = None
    ctx: PhaseContext | None = None
    status: StatusServer | None = None
    code = ExitCode.SOFTWARE
    phase = "validate_env"
    try:
        started = time.monotonic()
        notifier.extend_timeout(30)
        settings = _validate(log, notifier, signals)
        sock = None if check_only else listener.bind(settings.host, settings.port)
        _finish_validation(log, started)
        phase = "supervise"
        if sock is not None:
            status = _status_server(log)
            arbiter = Arbiter(settings, signals, log, notifier, sock, _server_env(settings),
                              status=status, protected_pids=lambda: _protected(ctx))
            if not settings.embedded_database:
                # Imports overlap the phases; the processes wait for "go" before opening pools.
                arbiter.prespawn()
        from supervisor.phases import (
            EmbeddedDatabasePhase,
            PhaseContext,
            PhaseRunner,
            startup_phases,
        )

        ctx = PhaseContext(settings=settings, signals=signals, log=log, notifier=notifier)
        runner = PhaseRunner(ctx)
        if arbiter is None:
            with notifier.keepalive():
                runner.run_all(startup_phases(settings))
            log.info("check.passed", phases=[r.name for r in runner.results],
                     duration_ms=round((time.monotonic() - started) * 1000))
            code = ExitCode.OK
        else:
            if settings.embedded_database:
                runner.run(EmbeddedDatabasePhase())
            env = _server_env(ctx.settings)
            with notifier.keepalive():
                _run_database_phases(DATABASE_PHASES, ctx.settings, env, signals, notifier, arbiter)
            arbiter.settings = ctx.settings
            arbiter.env = env
            arbiter.reload_phases = ["migrate"]
            code = arbiter.run()
    except StopRequested as stop:
        log.info("supervisor.stopping", signal=stop.signame, graceful=True, during="phases")
        code = ExitCode.OK
    except SupervisorError as exc:
        _fail(log, exc, phase)
        code = exc.exit_code
    except Exception as exc:  # the one broad guard: log, stop children, exit 70
        log.critical("supervisor.crashed", error=dburl.redact(repr(exc)),
                     traceback=dburl.redact(traceback.format_exc()),
                     hint="this is a bug in the supervisor: please report it with this event")
        code = ExitCode.SOFTWARE
    finally:
        if arbiter is not None and arbiter.exit_code is None:
            arbiter.abort()
        if ctx is not None:
            for stop_hook in reversed(ctx.on_stop):
                with contextlib.suppress(Exception):
                    stop_hook()
        if status is not None:
            status.close()
        if arbiter is not None:
            arbiter.clear_descendants()
        signals.restore()
    return _stopped(log, code)


DATABASE_PHASES = ["wait_for_db", "migrate", "warm_pool"]


def _run_database_phases(names: list[str], settings: config.Settings, env: dict[str, str],
                         signals: SignalQueue, notifier: Notifier, arbiter: Arbiter) -> None:
    """Run the phases in a phase process (see ``phase_process`` for why), forwarding stop signals to it.

    ``jarlpm status`` is answered meanwhile (state ``starting`` and the phase), since a
    wait for the database or for another replica's migration can last minutes.
    """
    from supervisor.supervision.phase_process import PhaseChild

    notifier.extend_timeout(settings.db_wait_timeout + settings.migration_lock_timeout + 660)
    child = arbiter.phase_child = PhaseChild(names, env)
    try:
        while True:
            fds = [signals.fileno] + ([arbiter.status.fileno()] if arbiter.status is not None else [])
            with contextlib.suppress(InterruptedError):
                select.select(fds, [], [], 0.2)
            for sig in signals.drain():
                if sig in STOP_SIGNALS:
                    child.request_stop(signal.SIGKILL if sig == signal.SIGQUIT else signal.SIGTERM)
            arbiter.serve_status()
            pid, status = os.waitpid(child.pid, os.WNOHANG)
            if pid:
                break
    finally:
        arbiter.phase_child = None
    outcome = child.outcome(status)
    if outcome.kind == "interrupted" or signals.stop_pending():
        raise StopRequested(signals.name(signals.stop_signal or signal.SIGTERM))
    if outcome.kind == "failed":
        try:
            code = ExitCode(outcome.exit_code)
        except ValueError:
            code = ExitCode.SOFTWARE
        error = SupervisorError(outcome.error, code, outcome.hint)
        error.logged = child.failure is not None  # the child logged its phase.failed
        raise error


def _status_server(log: Any) -> StatusServer | None:
    try:
        return StatusServer(socket_path())
    except OSError as exc:
        log.warning("status.unavailable", path=str(socket_path()), error=exc.strerror,
                    hint="set JARLPM_STATE_DIR (or systemd's RuntimeDirectory=) to a writable directory "
                         "for `jarlpm status`")
        return None


def _protected(ctx: PhaseContext | None) -> set[int]:
    """PIDs the descendant sweep must spare until their own stop hook runs (embedded PostgreSQL)."""
    if ctx is None:
        return set()
    pids = (ctx.facts.get("embedded_postmaster_pid"), ctx.facts.get("embedded_guard_pid"))
    return {int(pid) for pid in pids if pid}


def _server_env(settings: config.Settings) -> dict[str, str]:
    """The server processes' environment: the validated settings, embedded URL included."""
    env = dict(os.environ)
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
        env.pop("DATABASE_URL_FILE", None)
    env["DB_LEAK_THRESHOLD"] = f"{settings.db_leak_threshold:g}"
    # Resolved once from the supervisor's working directory: the phase and server
    # processes find the same migrations wherever they run.
    env["JARLPM_ALEMBIC_INI"] = settings.alembic_ini
    return env

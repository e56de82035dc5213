"""``jarlpm run`` and ``jarlpm check``: the ordered steps from environment to a supervised server.

``run`` is: configure logging, install signal handling, validate the environment,
bind the socket and prespawn the server processes (imports overlap the phases),
start the embedded database in development mode, then hand over to the arbiter's
loop (the database phases in a phase process, then supervision), stop whatever the
phases started, report the exit code.  ``check`` is the same without socket or
server processes, with a read-only plan.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import sys
import time
import traceback
from typing import TYPE_CHECKING, Any

# Only light modules here: the server processes are spawned right after validation, and
# SQLAlchemy, Alembic and psycopg2 are imported (by the phases) while they import the app.
from supervisor.contract import config, conventions, dburl
from supervisor.contract.exitcodes import ExitCode, StopRequested, SupervisorError
from supervisor.logs import logsetup
from supervisor.supervision import earlyfork, handover, listener, metrics, stopping
from supervisor.supervision.arbiter import Arbiter
from supervisor.supervision.status import StatusServer, socket_path
from supervisor.system import cgroups, reaper
from supervisor.system.notify import Notifier
from supervisor.system.signals import SignalQueue

if TYPE_CHECKING:
    from supervisor.phases import PhaseContext


def _validate(log: Any, command_format: str | None = None) -> config.Settings:
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
    logsetup.configure(command_format or settings.log_format, settings.log_level, buffer_kb=settings.log_buffer_kb)
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
    duration = time.monotonic() - started
    metrics.RECORDER.phase("validate_env", duration)
    log.info("phase.completed", phase="validate_env", duration_ms=round(duration * 1000))


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


def run(check: str | None = None, early: earlyfork.EarlyForkServer | None = None) -> int:
    """The supervisor's whole life; returns the process exit code.

    ``check`` (``"check"`` or ``"rehearse"``) is ``jarlpm check``: the same phases in
    the same phase process, under the same loop, with a read-only migrate phase and
    no socket nor server process.  ``early`` is the fork server ``main`` started before
    anything else (``earlyfork``): the prespawn configures it, or it is discarded.
    """
    fmt, level = config.log_settings_only(os.environ)
    # `jarlpm check` is run by people too: human lines on a terminal unless LOG_FORMAT says.
    command_format = conventions.command_log_format(os.environ, sys.stdout.isatty()) if check else None
    logsetup.configure(command_format or fmt, level)
    log = logsetup.get_logger()
    signals = SignalQueue()
    signals.install()
    reaper.become_subreaper()
    notifier = Notifier()
    arbiter: Arbiter | None = None
    ctx: PhaseContext | None = None
    status: StatusServer | None = None
    endpoint: metrics.MetricsEndpoint | None = None
    run_cgroup: cgroups.RunCgroup | None = None
    code = ExitCode.SOFTWARE
    phase = "validate_env"
    try:
        started = time.monotonic()
        notifier.extend_timeout(30)
        settings = _validate(log, command_format)
        sock, settings = (None, settings) if check else _listen(log, settings)
        status = None if check else _status_server(log)
        _finish_validation(log, started)
        phase = "supervise"
        if sock is not None and settings.metrics_port is not None:
            endpoint = _metrics_endpoint(log, settings.metrics_host, settings.metrics_port)
        run_cgroup = None if check else _own_cgroup(log, settings)
        arbiter = Arbiter(settings, signals, log, notifier, sock, _server_env(settings),
                          status=status, protected_pids=lambda: _protected(ctx), cgroup=run_cgroup)
        if sock is not None and not settings.embedded_database:
            if arbiter.forking.enabled:
                arbiter.forking.early, early = early, None  # the prespawn configures it
            # Imports overlap the phases; the processes wait for "go" before opening pools.
            arbiter.prespawn()
        earlyfork.discard(early)  # not wanted after all: the validated settings turned forking off
        early = None
        if settings.embedded_database:
            ctx = _embedded_database(settings, signals, log, notifier)
            arbiter.completed_phases.append("embedded_db")
            arbiter.settings = ctx.settings
            arbiter.env = _server_env(ctx.settings)
        code = arbiter.run(check or "start")
        if arbiter.state == "checked":  # not a stop requested during the check
            log.info("check.passed", phases=arbiter.completed_phases,
                     duration_ms=round((time.monotonic() - started) * 1000))
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
        earlyfork.discard(early)
        if arbiter is not None:
            earlyfork.discard(arbiter.forking.early)
        if arbiter is not None and arbiter.exit_code is None:
            stopping.abort(arbiter)
        if ctx is not None:
            for stop_hook in reversed(ctx.on_stop):
                with contextlib.suppress(Exception):
                    stop_hook()
        if status is not None:
            status.close()
        if arbiter is not None:
            stopping.clear_descendants(arbiter)
        if run_cgroup is not None:
            _close_cgroup(log, run_cgroup)
        if endpoint is not None:
            endpoint.close()
        signals.restore()
    return _stopped(log, code)


def _embedded_database(settings: config.Settings, signals: SignalQueue, log: Any,
                       notifier: Notifier) -> PhaseContext:
    """Development mode without DATABASE_URL: the supervisor itself owns a PostgreSQL (a phase)."""
    from supervisor.phases import EmbeddedDatabasePhase, PhaseContext, PhaseRunner

    ctx = PhaseContext(settings=settings, signals=signals, log=log, notifier=notifier)
    runner = PhaseRunner(ctx)
    with notifier.keepalive():
        runner.run(EmbeddedDatabasePhase())
    metrics.RECORDER.phase(runner.results[-1].name, runner.results[-1].duration_ms / 1000)
    return ctx


def _listen(log: Any, settings: config.Settings) -> tuple[socket.socket, config.Settings]:
    """The socket systemd handed over (socket activation), else HOST:PORT bound here.

    With a handed-over socket the settings are made to name where we really listen,
    which may differ from HOST:PORT, so every later event says the truth.
    """
    sock = listener.activated(os.environ)
    if sock is None:
        return listener.bind(settings.host, settings.port), settings
    address = listener.describe(sock)
    log.info("supervisor.socket_activated", listen=f"{address[0]}:{address[1]}" if address else
             str(sock.getsockname()), configured=f"{settings.host}:{settings.port}")
    if address is not None:
        settings = dataclasses.replace(settings, host=address[0], port=address[1])
    return sock, settings


def _metrics_endpoint(log: Any, host: str, port: int) -> metrics.MetricsEndpoint | None:
    """Serve /metrics from now on (phases and crash loops included); never fatal."""
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        endpoint = metrics.MetricsEndpoint(host, port)
    except OSError as exc:
        log.warning("supervisor.metrics_unavailable", listen=listen, error=exc.strerror or str(exc),
                    hint="another process holds METRICS_PORT (find it with `ss -ltnp`), or METRICS_HOST "
                         "is not an address of this machine; choose another")
        return None
    log.info("supervisor.metrics_serving", listen=listen)
    return endpoint


def _status_server(log: Any) -> StatusServer | None:
    try:
        return StatusServer(socket_path())
    except OSError as exc:
        log.warning("status.unavailable", path=str(socket_path()), error=exc.strerror,
                    hint="set JARLPM_STATE_DIR (or systemd's RuntimeDirectory=) to a writable directory "
                         "for `jarlpm status`")
        return None


def _own_cgroup(log: Any, settings: config.Settings) -> cgroups.RunCgroup | None:
    """This run's cgroup directory (JARLPM_CGROUP=auto, where ours is writable), else None and why."""
    if settings.jarlpm_cgroup == "off":
        return None
    try:
        run_cgroup, stale = cgroups.RunCgroup.create()
    except cgroups.Unavailable as why:
        log.info("supervisor.cgroup_unavailable", reason=str(why),
                 hint="helpers are still found by their JARLPM_PROCESS_TAG, but one that clears its "
                      "environment and daemonises can escape; see docs/deployment.md for the setups "
                      "that give a cgroup (systemd Delegate=yes) or JARLPM_CGROUP=off to silence this")
        return None
    log.info("supervisor.cgroup", path=str(run_cgroup.path), stale_removed=stale)
    return run_cgroup


def _close_cgroup(log: Any, run_cgroup: cgroups.RunCgroup) -> None:
    """Kill whatever is left in this run's cgroups and remove them: nothing outlives the run."""
    killed = run_cgroup.close()
    if killed:
        log.warning("supervisor.orphans_killed", pids=killed, via="cgroup")


def _protected(ctx: PhaseContext | None) -> set[int]:
    """PIDs the descendant sweep must spare until their own stop hook runs (embedded PostgreSQL)."""
    if ctx is None:
        return set()
    pids = (ctx.facts.get("embedded_postmaster_pid"), ctx.facts.get("embedded_guard_pid"))
    return {int(pid) for pid in pids if pid}


def _server_env(settings: config.Settings) -> dict[str, str]:
    """The children's environment: the validated settings, the URLs (embedded one included) by descriptor."""
    env = dict(os.environ)
    handover.hand_over(env, settings)  # by descriptor: no password in any child's environment
    env["DB_LEAK_THRESHOLD"] = f"{settings.db_leak_threshold:g}"
    # Resolved once from the supervisor's working directory: the phase and server
    # processes find the same migrations wherever they run.
    env["JARLPM_ALEMBIC_INI"] = settings.alembic_ini
    # WORKERS may have come from WEB_CONCURRENCY: the backend's connection budget reads WORKERS.
    env["WORKERS"] = str(settings.workers)
    if metrics.RECORDER.directory:  # where server processes write their metrics (METRICS_PORT)
        env[metrics.METRICS_DIR] = metrics.RECORDER.directory
    return env

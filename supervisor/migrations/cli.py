"""``jarlpm migrate``: the migration commands an operator runs by hand, with the startup phase's lock and events.

The command's result (SQL for review, the current revision, the history, a new
file's path) goes to stdout; the events (for people on a terminal, JSON otherwise,
unless ``LOG_FORMAT`` says) go to stderr, so ``jarlpm migrate upgrade --sql > review.sql`` holds nothing
but SQL.  Every failure is one ``migrate.failed`` event with the exit code of
DESIGN.md and a hint.  ``add_parser`` wires the subcommand into ``jarlpm``'s parser
(``supervisor.main``), the one entry point.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any, TextIO

import psycopg2
import sqlalchemy as sa
from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError

from supervisor.contract import config, conventions, dburl
from supervisor.contract.exitcodes import ExitCode, StopRequested, SupervisorError
from supervisor.database import probe
from supervisor.logs import logsetup
from supervisor.migrations import commands as commands
from supervisor.migrations import migrator, operations
from supervisor.system.signals import SignalQueue


def _needs(args: argparse.Namespace) -> str:
    """'yes', 'maybe' (used when configured) or 'no': does this invocation need the database?"""
    action = args.migrate_command
    if action in ("upgrade", "downgrade") and args.sql:
        return "maybe" if not args.from_revision else "no"
    if action == "history":
        return "maybe"
    if action == "revision":
        return "yes" if args.autogenerate else "no"
    return "no" if action == "merge" else "yes"


# -- running a command ----------------------------------------------------------------------


def _load_settings(need: str, log: Any) -> config.Settings | None:
    """Validated settings; a missing DATABASE_URL is fine for commands that can do without it."""
    env = dict(os.environ)
    try:
        settings = config.load_settings(env)
    except config.ConfigError as exc:
        only_url_missing = ([p.variable for p in exc.problems] == ["DATABASE_URL"]
                            and not (env.get("DATABASE_URL") or "").strip())
        if need == "yes" or not only_url_missing:
            _log_config_failure(log, exc)
            error = SupervisorError(str(exc), ExitCode.CONFIG, "fix the configuration")
            error.logged = True
            raise error from None
        env["DATABASE_URL"] = "postgresql://offline@localhost/offline"
        placeholder = config.load_settings(env)
        return replace(placeholder, database_url=None, database_direct_url=None)
    # DB_RESET_ON_STARTUP is for `jarlpm run`: a command run by hand never resets.
    return replace(settings, db_reset_on_startup=False)


def _log_config_failure(log: Any, exc: config.ConfigError) -> None:
    """The same single event as `jarlpm run` for invalid variables: every problem at once (exit 78)."""
    problems = [p.as_dict() for p in exc.problems]
    extra = {"unknown_variables": list(exc.unknown)} if exc.unknown else {}
    log.error("phase.failed", phase="validate_env", exit_code=int(ExitCode.CONFIG),
              error=f"invalid configuration: {len(problems)} problem(s) with "
                    + ", ".join(p["variable"] for p in problems),
              problems=problems, **extra,
              hint="fix the variables listed in problems (see the README's environment table); nothing "
                   "else was touched")


@contextlib.contextmanager
def _database(settings: config.Settings | None, need: str, log: Any) -> Iterator[config.Settings | None]:
    """Development mode without DATABASE_URL: the running embedded database, else start it for the command."""
    if settings is None or not settings.embedded_database or need == "no":
        yield settings
        return
    from supervisor.database import embedded
    from supervisor.database.pgcluster import LocalPostgres

    datadir = embedded.data_dir()
    port_file = datadir.parent / "pg.port"
    if (datadir / "postmaster.pid").exists() and port_file.exists():
        password, _ = embedded.app_password()
        url = LocalPostgres(datadir, port=int(port_file.read_text())).url(
            embedded.APP_DATABASE, user=embedded.APP_USER, password=password)
        if _answers(url):
            # A running `jarlpm run` owns it: use it, leave it running.
            yield settings.with_database(url)
            return
    database = embedded.start(log)
    try:
        yield settings.with_database(database.url)
    finally:
        database.stop()


def _answers(url: str) -> bool:
    try:
        probe.probe(url, 3)
    except psycopg2.Error:
        return False
    return True


def _as_supervisor_error(exc: BaseException) -> SupervisorError:
    """Database and alembic errors that escaped the operations, with the exit code they deserve."""
    if isinstance(exc, (CommandError, RevisionError)):
        return SupervisorError(f"alembic: {dburl.redact(str(exc))}", ExitCode.DATAERR, operations.HISTORY_HINT)
    return migrator.database_failure(exc)


def execute(handler: commands.Handler, args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run one ``jarlpm migrate`` command: logging, signals, settings, the handler, one failure event."""
    _, level = config.log_settings_only(os.environ)
    # For people on a terminal unless LOG_FORMAT says; JSON when stderr goes to a pipe or a file.
    logsetup.configure(conventions.command_log_format(os.environ, sys.stderr.isatty()), level, stream=sys.stderr)
    log = logsetup.get_logger().bind(command=f"migrate {args.migrate_command}")
    signals = SignalQueue()
    signals.install()
    code = ExitCode.SOFTWARE
    try:
        need = _needs(args)
        settings = _load_settings(need, log)
        with _database(settings, need, log) as settings:
            code = ExitCode(handler(commands.Invocation(args, settings, signals, log, out or sys.stdout)))
    except BrokenPipeError:
        # The reader of stdout went away (`| head`): not an error of ours.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = ExitCode.OK
    except StopRequested as stop:
        log.info("migrate.interrupted", signal=stop.signame,
                 hint="stopped between two revisions (the current one finished or rolled back); "
                      "see `jarlpm migrate current`, re-run to continue")
        code = ExitCode.OK
    except SupervisorError as exc:
        code = _report(log, exc)
    except (sa.exc.DBAPIError, psycopg2.Error, CommandError, RevisionError) as exc:
        code = _report(log, _as_supervisor_error(exc))
    except Exception as exc:  # the one broad guard: log it, exit 70
        log.critical("migrate.crashed", error=dburl.redact(repr(exc)),
                     traceback=dburl.redact(traceback.format_exc()),
                     hint="this is a bug in the supervisor: please report it with this event")
        code = ExitCode.SOFTWARE
    finally:
        signals.restore()
        logsetup.flush()
    return int(code)


def _report(log: Any, exc: SupervisorError) -> ExitCode:
    if not exc.logged:
        log.error("migrate.failed", exit_code=int(exc.exit_code), error=exc.message, hint=exc.hint, **exc.fields)
    return exc.exit_code


# -- the command line -----------------------------------------------------------------------


def _bind(handler: commands.Handler) -> Callable[[argparse.Namespace], int]:
    return lambda args: execute(handler, args)


_LOCK = ("Takes the replica-wide migration lock the startup phase takes (waiting up to "
         "MIGRATION_LOCK_TIMEOUT) and logs the same events.")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``migrate`` and its actions to ``jarlpm``'s subcommands; each action sets ``handler``."""
    migrate = sub.add_parser(
        "migrate", help="apply, revert, inspect and create migrations",
        description="Migration commands on DATABASE_DIRECT_URL (else DATABASE_URL). Results go to stdout, "
        "events to stderr. Exit codes: 64 usage, 65 migration failed / several heads / models out of step, "
        "69 database unreachable, 75 lock timeout, 77 credentials, 78 configuration.")
    actions = migrate.add_subparsers(dest="migrate_command", metavar="ACTION")
    actions.required = True

    up = actions.add_parser("upgrade", help="apply pending migrations (default: to head)",
                            description="Apply the pending revisions one by one, each in its own transaction, "
                            "then (at head) compare the models with the database. " + _LOCK)
    up.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    up.add_argument("--sql", action="store_true", help="print the SQL instead of running it (offline, for review)")
    up.add_argument("--from", dest="from_revision", metavar="REV",
                    help="with --sql: starting revision (default: the database's, or base without a database)")
    up.set_defaults(handler=_bind(commands.upgrade))

    down = actions.add_parser("downgrade", help="revert migrations to REV, base, or -N revisions",
                              description="Revert revisions one by one, each in its own transaction. In "
                              "production (JARLPM_ENV=production) it refuses without --yes and lists what it "
                              "would drop. " + _LOCK)
    down.add_argument("revision", metavar="REV|-N", help="target revision, `base`, or -N (N revisions back)")
    down.add_argument("--yes", action="store_true", help="confirm a production downgrade (it may drop data)")
    down.add_argument("--sql", action="store_true", help="print the SQL instead of running it (offline)")
    down.add_argument("--from", dest="from_revision", metavar="REV",
                      help="with --sql: starting revision (default: the database's)")
    down.set_defaults(handler=_bind(commands.downgrade))

    cur = actions.add_parser("current", help="show the database's revision, its stamp and the lock's holder",
                             description="Show the database's revision against the code's head, the "
                             "environment stamp, and who holds the migration lock. Takes no lock.")
    cur.set_defaults(handler=_bind(commands.current))

    hist = actions.add_parser("history", help="list the code's revisions, newest first",
                              description="List the revisions, newest first, marking the head and (when the "
                              "database is configured and reachable) the current one. Takes no lock.")
    hist.set_defaults(handler=_bind(commands.history))

    chk = actions.add_parser("check", help="fail (65) unless the database is at head and matches the models",
                             description="Fail with exit 65 when the code has several heads, the database is "
                             "not at head, or the models differ from the database (listing the differences). "
                             + _LOCK)
    chk.set_defaults(handler=_bind(commands.check))

    rev = actions.add_parser("revision", help="write a new revision file",
                             description="Write a new revision in the migrations directory. With "
                             "--autogenerate, its operations come from comparing the models with the database "
                             "(which must be at head); nothing is written when they match. " + _LOCK)
    rev.add_argument("-m", "--message", required=True, help="what the revision does")
    rev.add_argument("--autogenerate", action="store_true", help="fill it from the models' differences")
    rev.set_defaults(handler=_bind(commands.revision))

    mrg = actions.add_parser("merge", help="write a merge revision joining several heads",
                             description="Write a revision whose parents are all the current heads, after two "
                             "branches added migrations in parallel. No database needed.")
    mrg.add_argument("-m", "--message", default="merge heads", help="what the merge joins")
    mrg.set_defaults(handler=_bind(commands.merge))

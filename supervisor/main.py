"""The ``jarlpm`` command line; the only place that turns results into an exit status."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from supervisor.contract.exitcodes import ExitCode

if TYPE_CHECKING:
    from supervisor.supervision.earlyfork import EarlyForkServer


class UsageError(Exception):
    """Bad command line: exit 64 (EX_USAGE), not argparse's 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise UsageError(f"{self.prog}: error: {message}")


def _cmd_run(_args: argparse.Namespace, early: EarlyForkServer | None = None) -> int:
    from supervisor.supervision import service

    return service.run(early=early)


def _cmd_check(args: argparse.Namespace) -> int:
    from supervisor.supervision import service

    return service.run(check="rehearse" if args.rehearse else "check")


def _cmd_status(args: argparse.Namespace) -> int:
    from supervisor.supervision import statuscli

    return statuscli.main(as_json=args.json)


def _cmd_reload(args: argparse.Namespace) -> int:
    from supervisor.supervision import reloadcli

    return reloadcli.main(timeout=args.timeout)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; ``migrate``'s and ``explain``'s options are loaded only when it is the command.

    ``jarlpm run`` must not import Alembic before spawning the servers (start-up time),
    and ``migrate``'s module needs it; ``explain``'s modules cost ~25 ms of every start.
    The other commands only list them in ``--help``.
    """
    parser = _Parser(prog="jarlpm", description="Supervisor for the JarlPM API: phases, "
                     "migrations, a supervised uvicorn server, structured logs.")
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    run = sub.add_parser("run", help="run the phases, then supervise the server (what start.sh execs)",
                         description="Validate the environment, wait for the database, apply "
                         "migrations, warm the pool, then spawn and supervise the server processes.")
    run.set_defaults(handler=_cmd_run)
    check = sub.add_parser("check", help="a read-only pre-flight for CI/CD: changes nothing",
                           description="Check the configuration, that the database accepts these "
                           "credentials, that the migrations have one head and that the database is "
                           "not ahead; list the revisions a start would apply; compare the models "
                           "when the database is at head; check the connection budget.  Changes "
                           "nothing (unlike `jarlpm run`, it never migrates nor resets).  Same exit "
                           "codes as `jarlpm run`.")
    check.add_argument("--rehearse", action="store_true",
                       help="also apply the pending migrations in one transaction that is rolled "
                            "back, and compare the models with the result")
    check.set_defaults(handler=_cmd_check)
    status = sub.add_parser("status", help="show the running supervisor's state",
                            description="Ask the running supervisor (over its Unix socket in "
                            "$JARLPM_STATE_DIR or $RUNTIME_DIRECTORY) for its state.")
    status.add_argument("--json", action="store_true", help="print the raw JSON snapshot")
    status.set_defaults(handler=_cmd_status)
    reload = sub.add_parser("reload", help="reload the running supervisor and wait for the outcome",
                            description="Ask the running supervisor (over its Unix socket) to re-run "
                            "the migrations and replace every server process, and wait: exit 0 once "
                            "every server process runs the new code; 65 when the migration failed and "
                            "70 when a new process could not start (the old ones keep serving); 69 when "
                            "no supervisor answers; 75 when it is not serving or the deadline passed.  "
                            "A reload already under way is joined.  What systemd's ExecReload= runs.")
    reload.add_argument("--timeout", type=_positive_seconds, default=600.0, metavar="SECONDS",
                        help="how long to wait for the outcome (default 600)")
    reload.set_defaults(handler=_cmd_reload)
    if command == "migrate":
        from supervisor.migrations import cli

        cli.add_parser(sub)
    else:
        sub.add_parser("migrate", help="apply, revert, inspect and create migrations")
    if command == "explain":
        from supervisor.explain import cli as explain_cli

        explain_cli.add_parser(sub)
    else:
        from supervisor.explain import SUMMARY

        sub.add_parser("explain", help=SUMMARY)
    return parser


class _VersionAction(argparse.Action):
    """``--version``, looked up only when asked: ``importlib.metadata`` costs ~25 ms of every start."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:  # noqa: A002 - argparse's name
        super().__init__(option_strings, dest, nargs=0, default=default,
                         help=help or "show program's version number and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        print(f"jarlpm {_version()}")  # on stdout, as argparse's own "version" action does
        parser.exit()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jarlpm-supervisor")
    except PackageNotFoundError:
        return "0.0.0+source"


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments == ["run"]:
        from supervisor.supervision import earlyfork

        # First of all, before the command line and the supervisor's own imports: the
        # fork server's interpreter and uvicorn import overlap them, and its import of the
        # app (the start's longest step) begins ~0.1 s sooner (issue #17).
        return _cmd_run(argparse.Namespace(), early=earlyfork.start())
    command = next((a for a in arguments if not a.startswith("-")), None)
    parser = build_parser(command)
    try:
        args = parser.parse_args(arguments)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return int(ExitCode.USAGE)
    result: int = args.handler(args)
    return result


def entrypoint() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()

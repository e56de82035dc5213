"""``jarlpm explain [FILE]``: read a log back as a timeline of incidents and a root cause.

``add_parser`` plugs the subcommand into ``jarlpm``'s parser; ``main`` runs it on its
own (``python -m supervisor.explain``).  Exit codes follow sysexits.h like the rest
of ``jarlpm``: 0 with a report, 64 for a bad command line, 66 when FILE cannot be read.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import sys
from collections.abc import Iterator, Sequence
from typing import IO

from supervisor.contract.exitcodes import ExitCode
from supervisor.explain import render
from supervisor.explain.incidents import Timeline, group
from supervisor.explain.reader import (
    BadTime,
    EventReader,
    parse_when,
    read_lines,
)
from supervisor.explain.verdict import decide

EX_NOINPUT = 66  # sysexits.h: cannot open input

DESCRIPTION = """\
Read JSON log lines written by `jarlpm run` (raw, through journald or `docker logs
-t`, interleaved from several supervisors, cut short, mixed with other programs'
lines) and print a timeline of incidents, oldest first: starts and their phase
durations, phase failures, migrations, crash loops and restarts, hangs and the
function that stalled, reloads, pool exhaustion episodes by diagnosis, database
outages, stops. It ends with the most likely root cause and the fix."""

EPILOG = """\
examples:
  journalctl -u jarlpm -o cat --since today | jarlpm explain
  docker logs -t jarlpm 2>&1 | jarlpm explain --since 2h
  jarlpm explain /var/log/jarlpm.log.gz --json | jq .verdict"""


class _UsageError(Exception):
    """Bad command line when explain runs on its own."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise _UsageError(f"{self.prog}: error: {message}")


def _when(text: str) -> float:
    try:
        return parse_when(text)
    except BadTime as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``explain`` to ``jarlpm``'s subcommands; the handler is ``run``."""
    parser = sub.add_parser("explain", help="read a log back as a timeline of incidents and a root cause",
                            description=DESCRIPTION, epilog=EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", nargs="?", default=None, metavar="FILE",
                        help="the log to read (plain or .gz); '-' or nothing reads standard input")
    parser.add_argument("--since", type=_when, metavar="TIME",
                        help="only events at or after TIME: ISO 8601 (2026-11-25T10:00Z, UTC when no "
                             "offset) or an age before now (30m, 2h, 1d)")
    parser.add_argument("--until", type=_when, metavar="TIME", help="only events at or before TIME (same forms)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON for scripts")
    parser.set_defaults(handler=run)


@contextlib.contextmanager
def _open(path: str | None) -> Iterator[IO[bytes]]:
    if path in (None, "-"):
        yield sys.stdin.buffer
        return
    assert path is not None
    with open(path, "rb") as raw:
        if raw.read(2) == b"\x1f\x8b":
            raw.seek(0)
            with gzip.open(raw, "rb") as unzipped:
                yield unzipped  # type: ignore[misc]
        else:
            raw.seek(0)
            yield raw


def _write(text: str) -> None:
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.reconfigure(errors="replace")  # type: ignore[union-attr]
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (head, less) left: not an error of ours.  Keep Python's exit flush quiet.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def run(args: argparse.Namespace) -> int:
    """Read the log, group, decide, print; returns the exit code."""
    if args.since is not None and args.until is not None and args.since > args.until:
        print("jarlpm explain: error: --since is after --until", file=sys.stderr)
        return int(ExitCode.USAGE)
    if args.file is None and sys.stdin.isatty():
        print("jarlpm explain: error: no FILE given and standard input is a terminal; pipe a log in "
              "(journalctl -u jarlpm -o cat | jarlpm explain) or name a file", file=sys.stderr)
        return int(ExitCode.USAGE)
    reader = EventReader(args.since, args.until)
    timeline = Timeline()
    try:
        with _open(args.file) as stream:
            incidents = group(reader.events(read_lines(stream)), timeline)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        print(f"jarlpm explain: cannot read {args.file}: {reason}", file=sys.stderr)
        return EX_NOINPUT
    verdict = decide(incidents)
    output = render.as_json if args.json else render.text
    _write(output(reader.stats, incidents, verdict, timeline.omitted))
    return int(ExitCode.OK)


def main(argv: Sequence[str] | None = None) -> int:
    """``jarlpm explain`` on its own: the same parser ``add_parser`` builds, the same exit codes."""
    parser = _Parser(prog="jarlpm")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    add_parser(sub)
    try:
        args = parser.parse_args(["explain", *(sys.argv[1:] if argv is None else argv)])
    except _UsageError as exc:
        print(exc, file=sys.stderr)
        return int(ExitCode.USAGE)
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    result: int = args.handler(args)
    return result

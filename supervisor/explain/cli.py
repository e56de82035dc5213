"""``jarlpm explain [FILE]``: read a log back as a timeline of incidents and their root causes.

``add_parser`` plugs the subcommand into ``jarlpm``'s parser; ``main`` runs it on its
own (``python -m supervisor.explain``).  Exit codes follow sysexits.h like the rest
of ``jarlpm``: 0 with a report, 64 for a bad command line, 65 when the input holds no
JarlPM event (never "no incidents" for a log that could not be read), 66 when FILE
cannot be read.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import sys
import zlib
from collections.abc import Iterator, Sequence
from typing import IO

from supervisor.contract.exitcodes import ExitCode
from supervisor.explain import SUMMARY, coverage, render
from supervisor.explain.incidents import Timeline, group
from supervisor.explain.reader import (
    BadTime,
    EventReader,
    ReadStats,
    parse_when,
    read_lines,
)
from supervisor.explain.verdict import Verdict, decide

EX_DATAERR = 65  # sysexits.h: the input was read, but no JarlPM event was in it
EX_NOINPUT = 66  # sysexits.h: cannot open input

DESCRIPTION = """\
Read the JSON log lines written by `jarlpm run`, however they were fetched (raw;
journalctl in any output format, -o json and -o export included; docker logs or
Docker's json-file; kubectl logs with --timestamps or --prefix; a log platform's
JSON export), interleaved from several supervisors or pods, cut short, mixed with
other programs' lines, and print a timeline of incidents, oldest first: starts and
their phase durations, phase failures, migrations, crash loops and restarts, hangs
and the function that stalled, reloads, pool exhaustion episodes by diagnosis,
database outages, stops. It ends with every independent root cause, most severe
first, each with its fix and the lines that show it.

Exit status: 0 with a report; 64 bad command line; 65 no JarlPM event in the
input (it says what the input looked like); 66 FILE cannot be read."""

EPILOG = """\
examples:
  journalctl -u jarlpm -o json --since today | jarlpm explain
  docker logs -t jarlpm 2>&1 | jarlpm explain --since 2h
  kubectl logs --prefix --timestamps -l app=jarlpm | jarlpm explain
  jarlpm explain /var/log/jarlpm.log.gz --json | jq '.verdict.root_causes[].cause'"""


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
    parser = sub.add_parser("explain", help=SUMMARY,
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


class UnreadableFormat(Exception):
    """A file explain recognises but cannot read itself; the message says what to run instead."""


# Formats people point explain at by mistake, by their first bytes, and what to run instead.
_MAGIC = ((b"LPKSHHRH", "a journal file: read it with `journalctl --file FILE -o json | jarlpm explain`"),
          (b"\x28\xb5\x2f\xfd", "zstd-compressed: `zstd -dc FILE | jarlpm explain`"),
          (b"\xfd7zXZ\x00", "xz-compressed: `xz -dc FILE | jarlpm explain`"),
          (b"BZh", "bzip2-compressed: `bzip2 -dc FILE | jarlpm explain`"))


@contextlib.contextmanager
def _open(path: str | None) -> Iterator[IO[bytes]]:
    if path in (None, "-"):
        yield sys.stdin.buffer
        return
    assert path is not None
    with open(path, "rb") as raw:
        head = raw.read(8)
        raw.seek(0)
        for magic, what in _MAGIC:
            if head.startswith(magic):
                raise UnreadableFormat(what)
        if head[:2] == b"\x1f\x8b":
            with gzip.open(raw, "rb") as unzipped:
                yield unzipped  # type: ignore[misc]
        else:
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
    """Read the log, group, decide, print; returns the exit code (65 when nothing in it was ours)."""
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
            incidents = group(reader.events(_guarded(read_lines(stream), reader.stats)), timeline)
    except (OSError, EOFError, gzip.BadGzipFile, UnreadableFormat) as exc:
        print(f"jarlpm explain: cannot read {args.file}: {_reason(exc)}", file=sys.stderr)
        return EX_NOINPUT
    stats = reader.stats
    if stats.stopped is not None and not stats.events and not stats.outside_window:
        print(f"jarlpm explain: cannot read {args.file}: {stats.stopped}", file=sys.stderr)
        return EX_NOINPUT
    unread = coverage.nothing_read(stats)
    verdict = decide(incidents) if unread is None else Verdict(unread, "nothing was read: see the cause", None, [])
    output = render.as_json if args.json else render.text
    _write(output(stats, incidents, verdict, timeline.omitted))
    if unread is not None:
        # Never "nothing happened" with exit 0 for a log that could not be read.  The text report
        # already says why; under --json a person piping into jq sees it on stderr.
        if args.json:
            print(f"jarlpm explain: {unread}", file=sys.stderr)
        return EX_DATAERR
    return int(ExitCode.OK)


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc)


def _guarded(lines: Iterator[str], stats: ReadStats) -> Iterator[str]:
    """The lines until the input fails mid-way (a gzip file cut short): what came before is still reported."""
    try:
        yield from lines
    except (OSError, EOFError, zlib.error) as exc:
        stats.stopped = (f"the compressed stream ends mid-way ({_reason(exc)}): a file still being written, "
                         "or cut short" if isinstance(exc, (EOFError, zlib.error, gzip.BadGzipFile))
                         else _reason(exc))


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

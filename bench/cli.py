"""The command line: start PostgreSQL, run the scenarios in order, write the reports.

``python -m bench`` is the full run (``make bench``); ``--smoke`` is one tiny
iteration for the test suite; ``--only`` picks scenarios.  Exit status 0 when
every selected scenario ran (a missed target is a finding, not an error), 1
otherwise, 64 for a bad command line.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import contention, report
from bench.context import Context, Options
from bench.model import ERROR, ScenarioResult
from bench.paths import RESULTS
from bench.pg import BenchDatabase
from bench.scenarios import REGISTRY


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true",
                        help="one tiny iteration (start-to-first-200, a crash and 1 s of wrk, a short relay)")
    parser.add_argument("--reps", type=int, help="interleaved repetitions per contender (default 4)")
    parser.add_argument("--only", help=f"comma-separated scenarios among: {', '.join(REGISTRY)}")
    parser.add_argument("--out", type=Path, help=f"directory for latest.json/.md/.png (default {RESULTS})")
    parser.add_argument("--admin-url", help="use this PostgreSQL (a superuser URL) instead of starting one")
    parser.add_argument("--no-supervisord", action="store_true", help="skip the supervisord baseline")
    parser.add_argument("--idle-seconds", type=float, help="footprint: idle CPU window (default 60)")
    parser.add_argument("--relay-lines", type=int, help="log relay: lines per run (default 50000)")
    parser.add_argument("--throughput-seconds", type=float,
                        help="instrumentation overhead: one-second slices per side per repetition (default 15)")
    parser.add_argument("--wrk-seconds", type=float,
                        help="throughput with access logs: wrk's seconds per run (default 10)")
    parser.add_argument("--busy", type=int,
                        help="run N busy loops throughout, to measure on a machine whose cores are busy")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs of every run)")
    return parser


def options_from(args: argparse.Namespace) -> Options:
    overrides: dict[str, object] = {}
    if args.reps is not None:
        overrides["reps"] = max(1, args.reps)
    if args.only:
        overrides["only"] = tuple(name.strip() for name in args.only.split(",") if name.strip())
    if args.out is not None:
        overrides["out"] = args.out
    if args.admin_url:
        overrides["admin_url"] = args.admin_url
    if args.no_supervisord:
        overrides["with_supervisord"] = False
    for name in ("idle_seconds", "relay_lines", "throughput_seconds", "wrk_seconds", "busy"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    return Options.smoke_run(**overrides) if args.smoke else Options(**overrides)  # type: ignore[arg-type]


def run_scenario(ctx: Context, key: str, runner: Callable[[Context], ScenarioResult]) -> ScenarioResult:
    """Run one scenario; an exception becomes an ``error`` result so the others still run."""
    ctx.progress(f"--- {key}")
    started = time.monotonic()
    try:
        result = runner(ctx)
    except Exception as exc:  # a broken scenario must not lose the others' results
        result = ScenarioResult(key, key, status=ERROR, reason=f"{type(exc).__name__}: {exc}")
        result.notes.append(traceback.format_exc()[-3000:])
        ctx.progress(f"{key} failed: {exc}")
    result.duration_s = round(time.monotonic() - started, 1)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 64
    opts = options_from(args)
    unknown = [name for name in opts.only if name not in REGISTRY]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; choose among {', '.join(REGISTRY)}", file=sys.stderr)
        return 64
    selected = [key for key in REGISTRY if not opts.only or key in opts.only]
    db = BenchDatabase(opts.admin_url)
    ctx = Context(opts, db)
    started = time.monotonic()
    results: list[ScenarioResult] = []
    try:
        ctx.progress("starting PostgreSQL" if not opts.admin_url else "using the given PostgreSQL")
        db.start()
        ctx.prepare()
        with contention.busy_loops(opts.busy):
            for key in selected:
                results.append(run_scenario(ctx, key, REGISTRY[key]))
    finally:
        db.close()
        if not args.keep:
            ctx.cleanup()
        else:
            print(f"work directory kept: {ctx.workdir}", file=sys.stderr)
    paths = report.write(opts, ctx, results, time.monotonic() - started)
    print(report.markdown_table(results))
    for path in paths:
        print(f"wrote {path}", file=sys.stderr)
    return 1 if any(r.status == ERROR for r in results) else 0

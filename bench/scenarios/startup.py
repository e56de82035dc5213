"""Start to first 200 on /api/health: the supervisor vs the shell chain, at head and with pending migrations.

The clock starts when the process is launched and stops at the first 200.  Each
run gets a fresh database cloned from a template at head.  "head" is a restart: the
template was verified by an earlier start of the supervisor (stamped, models found
in step), as every start after the first finds it.  "first start" is the first
start on a database that plain ``alembic upgrade head`` migrated: the supervisor
stamps it and compares the models once.  The "pending" variant points both
contenders at a copy of the migrations with N more trivial revisions, so the run
has to apply them first.  One untimed launch of each contender warms the page cache
before the timed, interleaved runs.
"""

from __future__ import annotations

from pathlib import Path

from bench import proctools, servers, stats
from bench.context import Context
from bench.harness import Builder, fresh_database, launched
from bench.model import Row, ScenarioResult
from bench.pending import make_pending_tree

KEY = "startup"
TITLE = "Start to first 200"
TARGET_RATIO = 0.6  # issue #17: start ≤ 0.6× the shell chain


def _builder(label: str, ini: Path | None) -> Builder:
    def build(port: int, url: str, run_dir: Path) -> servers.ServerSpec:
        if label == "supervisor":
            extra = {"JARLPM_ALEMBIC_INI": str(ini)} if ini else {}
            return servers.supervisor(port, url, run_dir, extra)
        return servers.shell_chain(port, url, ini=ini)
    return build


def _one(ctx: Context, label: str, variant: str, ini: Path | None, expect: str | None) -> dict[str, object]:
    template = ctx.template_unverified if variant == "first start" else None
    with fresh_database(ctx, template) as url, \
            launched(ctx, _builder(label, ini), url, f"startup-{variant}-{label}") as server:
        assert server.ready_s is not None
        seconds = server.ready_s
        cpu = proctools.tree_cpu_seconds(server.pid)
        run: dict[str, object] = {"contender": label, "variant": variant, "seconds": round(seconds, 4),
                                  "cpu_s": round(cpu, 3)}
        if expect:
            dbname = url.rsplit("/", 1)[-1]
            rows = ctx.db.execute("SELECT version_num FROM alembic_version", dbname=dbname)
            run["revision"] = str(rows[0][0]) if rows else None
            if run["revision"] != expect:
                raise RuntimeError(f"{label}: database at {run['revision']}, expected {expect}")
        if label == "supervisor":
            events = server.events()
            run["phases_ms"] = {e["phase"]: e.get("duration_ms") for e in events
                                if e.get("event") == "phase.completed"}
            run["drift_check"] = next((e.get("drift_check") for e in events
                                       if e.get("event") == "migrate.up_to_date"), "compared after applying")
        return run


def run(ctx: Context) -> ScenarioResult:
    opts = ctx.options
    result = ScenarioResult(KEY, TITLE)
    contenders = ["supervisor"] if opts.smoke else ["supervisor", "shell chain"]
    variants: list[tuple[str, Path | None, str | None]] = [("head", None, None)]
    if not opts.smoke:
        variants.append(("first start", None, None))
        pending_ini = make_pending_tree(ctx.workdir / "pending-migrations", opts.pending_revisions)
        variants.append(("pending", pending_ini, f"bench_p{opts.pending_revisions:02d}"))
        for label in contenders:  # untimed: warm the page cache for both
            _one(ctx, label, "warmup", None, None)
    for variant, ini, expect in variants:
        for _, label in stats.interleaved(opts.reps, contenders):
            run_ = _one(ctx, label, variant, ini, expect)
            ctx.progress(f"startup {variant:7s} {label:12s} {run_['seconds']:.3f}s")
            result.runs.append(run_)
        result.rows.append(_row(result.runs, variant, contenders, opts.pending_revisions))
    for variant, _, _ in variants:
        result.rows.append(_cpu_row(result.runs, variant, contenders))
    return result


def _cpu_row(runs: list[dict[str, object]], variant: str, contenders: list[str]) -> Row:
    """CPU of the whole process tree until the first 200: what decides when no core is free."""
    values = {label: stats.median([float(r["cpu_s"]) for r in runs  # type: ignore[arg-type]
                                   if r["variant"] == variant and r["contender"] == label])
              for label in contenders}
    ratio = stats.ratio(values.get("supervisor"), values.get("shell chain"))
    return Row(f"CPU until the first 200 (whole process tree), {variant}", "s", values, ratio=ratio,
               baseline="shell chain" if ratio is not None else None)


def _row(runs: list[dict[str, object]], variant: str, contenders: list[str], pending: int) -> Row:
    values = {label: stats.median([float(r["seconds"]) for r in runs  # type: ignore[arg-type]
                                   if r["variant"] == variant and r["contender"] == label])
              for label in contenders}
    figure = {"head": "start to first 200, schema at head (a restart)",
              "first start": "start to first 200, schema at head, first start (plain alembic migrated it)",
              }.get(variant, f"start to first 200, {pending} pending migrations")
    ratio = stats.ratio(values.get("supervisor"), values.get("shell chain"))
    if variant != "head":  # issue #17's target is the restart at head; the others are shown beside it
        return Row(figure, "s", values, ratio=ratio, baseline="shell chain" if ratio is not None else None)
    return Row(figure, "s", values, ratio=ratio, baseline="shell chain" if ratio is not None else None,
               target=f"≤ {TARGET_RATIO}× shell chain",
               passed=None if ratio is None else ratio <= TARGET_RATIO)

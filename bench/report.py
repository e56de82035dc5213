"""The reports: latest.json (everything), latest.md (the tables) and latest.png (the chart)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import pngchart
from bench.context import Context, Options
from bench.model import OK, Row, ScenarioResult
from bench.paths import REPO

PACKAGES = ("uvicorn", "uvloop", "httptools", "fastapi", "sqlalchemy", "alembic", "psycopg2-binary", "structlog",
            "gunicorn", "uvicorn-worker")


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "?"
    return out.stdout.strip() or "?"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def meta(opts: Options, ctx: Context, duration_s: float) -> dict[str, Any]:
    supervisord = ctx.supervisord_known_version
    postgres = ctx.pg_version or "?"
    return {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "duration_s": round(duration_s, 1),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()
                    if k != "admin_url"},
        "machine": {"cpus": os.cpu_count(), "cpu": _cpu_model(), "kernel": platform.release(),
                    "python": platform.python_version(),
                    # Other work on the machine (a test run next door) shows here and widens the spread.
                    "loadavg_at_start": [round(x, 2) for x in ctx.loadavg_at_start],
                    "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
        "versions": {**{p: _version(p) for p in PACKAGES}, "postgresql": postgres,
                     "supervisord": supervisord or "not used", "wrk": ctx.wrk_version or "not used"},
        "commit": _git("rev-parse", "--short", "HEAD"),
        "anomalies": ctx.anomalies,
        "worktree_dirty": _git("status", "--porcelain") not in ("", "?"),
    }


def targets(results: list[ScenarioResult]) -> list[dict[str, Any]]:
    """Every row that is held to a target, with its verdict (None: could not be measured)."""
    found = []
    for result in results:
        for row in result.rows:
            if row.target:
                found.append({"scenario": result.key, "figure": row.figure, "target": row.target,
                              "subject": row.subject, "supervisor": row.values.get(row.subject),
                              "ratio": row.ratio,
                              "passed": row.passed, "note": row.note})
    return found


def write(opts: Options, ctx: Context, results: list[ScenarioResult], duration_s: float) -> list[Path]:
    """Write the three files atomically (temp file, then rename); return their paths."""
    opts.out.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"meta": meta(opts, ctx, duration_s),
            "scenarios": {r.key: r.as_dict() for r in results},
            "targets": targets(results)}
    outputs = {
        "latest.json": json.dumps(data, indent=2, default=str).encode() + b"\n",
        "latest.md": markdown(data["meta"], results).encode(),
        "latest.png": pngchart.chart(results, title=f"JarlPM supervisor benchmarks - {data['meta']['generated_at']}"),
    }
    paths = []
    for name, content in outputs.items():
        path = opts.out / name
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(content)
        tmp.replace(path)
        paths.append(path)
    return paths


# -- Markdown --------------------------------------------------------------------------------
def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit in ("lines/s", "req/s"):
        return f"{value:,.0f} {unit}"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "%":
        return f"{value:.2f} %"
    if unit == "count":
        return f"{value:g}"
    if unit == "/s":
        return f"{value:.2f} /s"
    return f"{value:g} {unit}"


def _verdict(row: Row) -> str:
    if not row.target:
        return ""
    mark = {True: "pass", False: "FAIL", None: "n/a"}[row.passed]
    return f"{row.target}: **{mark}**"


def _ratio(row: Row) -> str:
    if row.ratio is None or not row.baseline:
        return ""
    return f"{row.ratio:.2f}× {row.baseline}"


def _row_line(row: Row) -> str:
    ours = fmt(row.values.get(row.subject), row.unit)
    if row.subject != "supervisor":
        ours = f"{row.subject}: {ours}"
    others = "; ".join(f"{label} {fmt(value, row.unit)}" for label, value in row.values.items()
                       if label != row.subject)
    note = f" ({row.note})" if row.note else ""
    return f"| {row.figure}{note} | {ours} | {others} | {_ratio(row)} | {_verdict(row)} |"


def markdown_table(results: list[ScenarioResult]) -> str:
    lines = ["| Figure | Supervisor | Baselines | Ratio | Target |", "|---|---|---|---|---|"]
    for result in results:
        if result.status != OK:
            lines.append(f"| **{result.title}**: {result.status} ({result.reason}) | | | | |")
            continue
        lines += [_row_line(row) for row in result.rows]
    return "\n".join(lines) + "\n"


def markdown(meta_: dict[str, Any], results: list[ScenarioResult]) -> str:
    opts = meta_["options"]
    machine = meta_["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in meta_["versions"].items())
    head = [
        "# JarlPM supervisor benchmarks",
        "",
        f"Generated {meta_['generated_at']} by `python -m bench` in {meta_['duration_s']} s "
        f"(commit {meta_['commit']}{', uncommitted changes' if meta_['worktree_dirty'] else ''}).  ",
        f"Machine: {machine['cpus']} CPU(s), {machine['cpu']}, Linux {machine['kernel']}, "
        f"Python {machine['python']}; load average {machine['loadavg_at_start'][0]} at the start, "
        f"{machine['loadavg_at_end'][0]} at the end"
        + (f"; **{opts['busy']} busy loop(s) ran throughout** (`--busy`)" if opts.get("busy") else "")
        + ".  ",
        f"Versions: {versions}.  ",
        f"Medians over {opts['reps']} interleaved repetition(s) per contender"
        f"{' (SMOKE RUN: not a measurement)' if opts['smoke'] else ''}. "
        "See `bench/README.md` for what each figure means and how it is measured.",
        "",
        markdown_table(results),
    ]
    notes = [f"- **{r.title}**: {note}" for r in results for note in r.notes if r.status == OK]
    notes += [f"- **anomaly**: {text}" for text in meta_["anomalies"]]
    if notes:
        head += ["## Notes", "", *notes, ""]
    return "\n".join(head)

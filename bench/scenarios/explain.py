"""``jarlpm explain`` on a big generated log: lines per second and peak memory.

Runs ``bench/explain_bench.py`` (another engineer's benchmark) when it exists;
its generator writes a realistic interleaved log and times ``python -m
supervisor.explain`` on it.  There is no baseline: people read such logs with
grep and a pager today.
"""

from __future__ import annotations

import json
import subprocess

from bench.context import Context
from bench.model import NOT_AVAILABLE, Row, ScenarioResult
from bench.paths import BENCH, PYTHON, REPO

KEY = "explain"
TITLE = "jarlpm explain"
SCRIPT = BENCH / "explain_bench.py"


def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(KEY, TITLE)
    if not SCRIPT.exists():
        result.status = NOT_AVAILABLE
        result.reason = "bench/explain_bench.py is not there"
        return result
    lines = 20_000 if ctx.options.smoke else 1_000_000
    out = subprocess.run([PYTHON, str(SCRIPT), "--lines", str(lines), "--json"], cwd=REPO, capture_output=True,
                         text=True, timeout=600, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"explain_bench.py failed ({out.returncode}): {out.stderr[-1500:]}")
    data = json.loads(out.stdout.strip().splitlines()[-1])
    result.runs.append(data)
    ctx.progress(f"explain {data['lines_per_s']:,} lines/s, peak RSS {data['peak_rss_mib']} MiB")
    result.rows = [
        Row(f"lines per second ({data['lines']:,} lines, {data['bytes'] / 2**20:.0f} MiB)", "lines/s",
            {"supervisor": float(data["lines_per_s"])}),
        Row("peak RSS while explaining", "MB", {"supervisor": float(data["peak_rss_mib"])}),
    ]
    return result

"""The benchmark harness (``python -m bench``) runs end to end in smoke mode and writes its reports."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pgfixtures import ExternalPostgres  # type: ignore[import-not-found]

from supervisor.database.pgcluster import LocalPostgres

REPO = Path(__file__).resolve().parents[2]


def admin_url(server: LocalPostgres | ExternalPostgres) -> str:
    return server.admin_url if isinstance(server, ExternalPostgres) else server.url()


Smoke = tuple[Path, "subprocess.CompletedProcess[str]"]


@pytest.fixture(scope="module")
def smoke(pg_server: LocalPostgres | ExternalPostgres, tmp_path_factory: pytest.TempPathFactory) -> Smoke:
    """One smoke run on the suite's PostgreSQL; its output directory and the finished process."""
    out = tmp_path_factory.mktemp("bench")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "JARLPM_", "DB_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--busy", "1", "--out", str(out),
         "--admin-url", admin_url(pg_server)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=110,
    )
    return out, proc


@pytest.mark.slow
class TestBenchSmoke:
    """``python -m bench --smoke``: start-to-first-200 for the supervisor, a short log relay, and the gunicorn
    baseline's crash and wrk rows when gunicorn and wrk are installed."""

    def test_exits_zero(self, smoke: Smoke) -> None:
        """Every scenario of the smoke run ran (exit 0)."""
        _, proc = smoke
        assert proc.returncode == 0, proc.stderr[-4000:]

    def test_json_has_the_promised_keys(self, smoke: Smoke) -> None:
        """latest.json holds meta, the smoke scenarios with rows and runs, and the targets."""
        out, proc = smoke
        data = json.loads((out / "latest.json").read_text())
        assert set(data) == {"meta", "scenarios", "targets"}, proc.stderr[-2000:]
        assert {"generated_at", "options", "machine", "versions", "commit"} <= set(data["meta"])
        assert data["meta"]["options"]["smoke"] is True
        assert list(data["scenarios"]) == ["startup", "crash", "relay", "throughput"]
        for key in ("startup", "relay"):
            scenario = data["scenarios"][key]
            assert scenario["status"] == "ok", scenario.get("reason")
        for scenario in data["scenarios"].values():
            assert {"key", "title", "rows", "runs", "notes", "duration_s"} <= set(scenario)
            for row in scenario["rows"]:
                assert {"figure", "unit", "values", "ratio", "baseline", "target", "passed"} <= set(row)
        startup = data["scenarios"]["startup"]
        assert [run["contender"] for run in startup["runs"]] == ["supervisor"]
        assert startup["rows"][0]["values"]["supervisor"] > 0
        cpu = [row for row in startup["rows"] if row["figure"].startswith("CPU until the first 200")]
        assert cpu and cpu[0]["values"]["supervisor"] > 0
        assert startup["runs"][0]["cpu_s"] > 0
        assert data["meta"]["options"]["busy"] == 1
        relay = data["scenarios"]["relay"]["rows"][0]
        assert relay["values"]["supervisor"] > 0 and relay["values"]["direct"] > 0
        assert relay["ratio"] is not None
        assert {"startup", "relay"} <= {t["scenario"] for t in data["targets"]}

    def test_gunicorn_baseline(self, smoke: Smoke) -> None:
        """gunicorn's worker is SIGKILLed under load and its master brings a new one: counts and a recovery."""
        if importlib.util.find_spec("gunicorn") is None or importlib.util.find_spec("uvicorn_worker") is None:
            pytest.skip("gunicorn is not installed in this venv (pip install -e '.[bench]')")
        out, proc = smoke
        crash = json.loads((out / "latest.json").read_text())["scenarios"]["crash"]
        assert crash["status"] == "ok", crash["reason"]
        [run] = crash["runs"]
        assert run["contender"] == "gunicorn", proc.stderr[-2000:]
        assert run["recovery_s"] is not None and run["recovery_s"] > 0
        assert run["ok"] > 0 and {"refused", "failed_after_kill", "lost_in_flight"} <= set(run)

    def test_throughput_with_wrk(self, smoke: Smoke) -> None:
        """With wrk on the machine, the supervisor and gunicorn serve /api/epics with access lines in their
        output; without it the row says why (the smoke run never installs it)."""
        out, _ = smoke
        throughput = json.loads((out / "latest.json").read_text())["scenarios"]["throughput"]
        if throughput["status"] == "not available":
            assert "wrk" in throughput["reason"]
            pytest.skip(f"throughput: {throughput['reason']}")
        assert throughput["status"] == "ok", throughput["reason"]
        rate = throughput["rows"][0]["values"]
        assert rate["supervisor"] > 0
        for run in throughput["runs"]:
            assert run["requests"] > 0 and run["access_lines"] > 0
        if importlib.util.find_spec("gunicorn") is not None:
            assert rate["gunicorn"] > 0 and throughput["rows"][0]["ratio"] is not None

    def test_writes_markdown_and_png(self, smoke: Smoke) -> None:
        """latest.md carries the table and latest.png is a PNG image."""
        out, _ = smoke
        markdown = (out / "latest.md").read_text()
        assert "| Figure | Supervisor | Baselines | Ratio | Target |" in markdown
        assert "1 busy loop(s) ran throughout" in markdown
        assert (out / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

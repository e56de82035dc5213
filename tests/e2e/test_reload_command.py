"""`jarlpm reload`: asks the running supervisor to reload over its socket and exits with the outcome."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from loadgen import Load
from migration_fixtures import REVISIONS, make_alembic, repo_head
from procs import APPS, REPO, Supervisor, base_env, running

SAMPLE = {"JARLPM_APP": "sampleapp:app", "JARLPM_APP_DIR": str(APPS)}


def reload_command(env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    """Run `jarlpm reload` as ExecReload= would (stdout a pipe: one JSON object)."""
    return subprocess.run([sys.executable, "-m", "supervisor", "reload", "--timeout", "90", *extra],
                          env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)


def answer(run: subprocess.CompletedProcess[str]) -> dict[str, object]:
    value = json.loads((run.stdout or run.stderr).strip().splitlines()[-1])
    assert isinstance(value, dict)
    return value


def serving_pids(sup: Supervisor) -> set[int]:
    return {e["pid"] for e in sup.find("child.ready")} - {e["pid"] for e in sup.find("child.exited")}


class TestReloadCommand:
    """Exit 0 once every process runs the new code; the failure's code otherwise; 69 with nobody there."""

    def test_exit_0_once_every_process_is_replaced(self, app_db: str) -> None:
        """Two concurrent requests join one reload; both exit 0 naming new pids, the old ones are gone."""
        with running(base_env(app_db, WORKERS="2", **SAMPLE)) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            old = serving_pids(sup)
            with ThreadPoolExecutor(2) as pool:
                runs = list(pool.map(lambda _: reload_command(sup.env), range(2)))
            for run in runs:
                assert run.returncode == 0, run.stdout + run.stderr
            first = answer(runs[0])
            new = set(first["pids"])  # type: ignore[call-overload]
            assert first["result"] == "reloaded" and first["message"]
            assert len(new) == 2 and new.isdisjoint(old)
            assert answer(runs[1])["pids"] == first["pids"]
            assert len(sup.find("supervisor.reloading")) == 1
            assert len(sup.find("supervisor.reloaded")) == 1
            assert sup.get("/pid")[0] == 200

    def test_exit_65_for_a_failing_migration_while_the_old_processes_serve(self, app_db: str,
                                                                           tmp_path: Path) -> None:
        """A revision that fails (x_fails) added to the migrations: exit 65, no request lost, same pids."""
        ini = make_alembic(tmp_path)
        with running(base_env(app_db, JARLPM_ALEMBIC_INI=str(ini), **SAMPLE)) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            old = serving_pids(sup)
            text = (REVISIONS / "x_fails.py").read_text().replace('"__DOWN__"', repr(repo_head()))
            (ini.parent / "alembic" / "versions" / "x_fails.py").write_text(text)
            with Load(sup.port, path="/pid", threads=2, max_seconds=60) as load:
                run = reload_command(sup.env)
                result = load.stop()
            assert run.returncode == 65, run.stdout + run.stderr
            failed = answer(run)
            assert failed["result"] == "failed" and failed["reason"] == "migrate"
            assert "keep serving" in str(failed["hint"])
            assert result.failed == 0 and result.refused == 0 and result.ok > 0
            assert serving_pids(sup) == old and sup.proc.poll() is None
            # The reload is over: status answers as before, and the state is running again.
            status = subprocess.run([sys.executable, "-m", "supervisor", "status", "--json"],
                                    env={**sup.env, "PYTHONPATH": str(REPO)}, capture_output=True,
                                    text=True, timeout=30)
            assert status.returncode == 0 and json.loads(status.stdout)["state"] == "running"

    def test_exit_69_when_no_supervisor_answers(self, tmp_path: Path) -> None:
        """No socket in the state directory: exit 69, saying where it looked."""
        run = reload_command(base_env(None, JARLPM_STATE_DIR=str(tmp_path)))
        assert run.returncode == 69
        unavailable = answer(run)
        assert unavailable["result"] == "unavailable" and str(tmp_path) in str(unavailable["error"])

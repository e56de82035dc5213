"""Installed like any package (outside the project), the supervisor finds the project from its working directory."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest
from procs import REPO, base_env, running


@pytest.fixture
def installed(tmp_path: Path) -> tuple[Path, Path]:
    """(site-packages holding only the ``supervisor`` package, a project directory with the app and migrations).

    This is what ``pip install .`` (not editable) gives: the package's parent holds no
    alembic.ini, no backend/ and must receive no state.
    """
    site = tmp_path / "site-packages"
    shutil.copytree(REPO / "supervisor", site / "supervisor", ignore=shutil.ignore_patterns("__pycache__"))
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "alembic.ini", project / "alembic.ini")
    shutil.copytree(REPO / "alembic", project / "alembic", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "backend", project / "backend", ignore=shutil.ignore_patterns("__pycache__"))
    return site, project


def env_for(site: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = base_env(database_url, PYTHONPATH=str(site), **extra)
    env.pop("JARLPM_STATE_DIR")  # the default state directory is part of what is tested
    return env


class TestInstalledPackage:
    """``jarlpm run``/``check`` from the project's directory, with the package installed elsewhere."""

    def test_check_and_run_from_the_project_directory(self, installed: tuple[Path, Path], app_db: str) -> None:
        """alembic.ini, the app and .jarlpm/ resolve from the working directory; site-packages stays clean."""
        site, project = installed
        with running(env_for(site, app_db), args=("check",), cwd=project) as sup:
            assert sup.wait_exit(90) == 0, sup.dump()
        with running(env_for(site, app_db), cwd=project) as sup:
            sup.wait_event("supervisor.ready", timeout=90)
            status, _, body = sup.get("/api/health/ready")
            assert status == 200, body
            assert (project / ".jarlpm" / "run" / "jarlpm.sock").exists()
            sup.signal(signal.SIGTERM)
            assert sup.wait_exit(30) == 0
        assert not (site / ".jarlpm").exists()
        assert sorted(p.name for p in site.iterdir()) == ["supervisor"]

    def test_missing_alembic_ini_is_a_configuration_error(self, installed: tuple[Path, Path], app_db: str,
                                                         tmp_path: Path) -> None:
        """From a directory without alembic.ini: exit 78 naming JARLPM_ALEMBIC_INI, not a crash (70)."""
        site, _project = installed
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        with running(env_for(site, app_db), args=("check",), cwd=elsewhere) as sup:
            assert sup.wait_exit(60) == 78, sup.dump()
            failed = sup.find("phase.failed")
            assert len(failed) == 1 and failed[0]["phase"] == "validate_env"
            assert [p["variable"] for p in failed[0]["problems"]] == ["JARLPM_ALEMBIC_INI"]
            assert not sup.find("supervisor.crashed")
            assert "JARLPM_ALEMBIC_INI" in json.dumps(failed[0])

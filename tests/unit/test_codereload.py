"""Specifications of RELOAD's configuration: its default per environment, and what is watched."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.contract import config
from supervisor.contract.envread import ConfigError
from supervisor.supervision.codereload import watched_paths

URL = "postgresql://app:pw@db:5432/app"


def load(**env: str) -> config.Settings:
    return config.load_settings({"DATABASE_URL": URL, **env})


class TestReloadVariable:
    """On by default in development, off in production; either way it can be set."""

    def test_defaults(self) -> None:
        assert load().reload is False
        assert load(JARLPM_ENV="development").reload is True

    def test_set(self) -> None:
        assert load(RELOAD="true").reload is True
        assert load(JARLPM_ENV="development", RELOAD="off").reload is False

    def test_invalid(self) -> None:
        with pytest.raises(ConfigError):
            load(RELOAD="sometimes")


class TestWatchedPaths:
    """The app's directory and alembic.ini's script_location, resolved like Alembic does (%(here)s)."""

    def test_app_dir_and_migrations(self, tmp_path: Path) -> None:
        (tmp_path / "app").mkdir()
        (tmp_path / "migrations").mkdir()
        ini = tmp_path / "alembic.ini"
        ini.write_text("[alembic]\nscript_location = %(here)s/migrations\n")
        settings = load(JARLPM_APP_DIR=str(tmp_path / "app"), JARLPM_ALEMBIC_INI=str(ini))
        assert watched_paths(settings) == [tmp_path / "app", tmp_path / "migrations"]

    def test_missing_directories_are_skipped(self, tmp_path: Path) -> None:
        (tmp_path / "app").mkdir()
        ini = tmp_path / "alembic.ini"
        ini.write_text("[alembic]\nscript_location = nowhere\n")
        settings = load(JARLPM_APP_DIR=str(tmp_path / "app"), JARLPM_ALEMBIC_INI=str(ini))
        assert watched_paths(settings) == [tmp_path / "app"]

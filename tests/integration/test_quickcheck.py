"""The quick check of a restart: recognised without Alembic, and never when anything changed.

A restart of a release already verified (database at the same revision, stamped,
models found in step with this exact code and schema) skips the migrate phase's
full path; every other case must fall through to it so that it can report.  Real
databases throughout; the code's side is changed through copies of the alembic_api.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import structlog
from migration_fixtures import DRIFT_COLUMN, drifted_backend, make_alembic, query, repo_head
from procs import APPS, REPO, base_env, running

from supervisor.contract import config
from supervisor.contract.exitcodes import ExitCode
from supervisor.migrations import alembic_api, fingerprint, migrator, quickcheck
from supervisor.system.signals import SignalQueue

pytestmark = pytest.mark.timeout(120)


def settings_for(url: str, **env: str) -> config.Settings:
    return config.load_settings({"DATABASE_URL": url, **env})


def full_path(url: str, ini: Path | None = None, **env: str) -> None:
    """The migrate phase's full path, in-process: it stamps and remembers the fingerprint."""
    if ini is not None:
        env["JARLPM_ALEMBIC_INI"] = str(ini)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        with structlog.testing.capture_logs():
            migrator.migrate_to_head(settings_for(url, **env), SignalQueue(), structlog.get_logger())


def quick(url: str, ini: Path | None = None, **env: str) -> quickcheck.Verified | None:
    return quickcheck.verified_restart(settings_for(url, **env), ini or alembic_api.alembic_ini())


class TestRecognised:
    """After the full path verified a database, the same code finds it verified without Alembic."""

    def test_unstamped_database_is_not_recognised(self, app_db: str) -> None:
        """Migrated by plain `alembic upgrade head`: the full path must stamp it and compare once."""
        from alembic import command

        command.upgrade(alembic_api.alembic_config(app_db), "head")
        assert quick(app_db) is None

    def test_verified_database_is_recognised_without_sqlalchemy(self, app_db: str) -> None:
        """In a fresh interpreter: the answer is the head, and SQLAlchemy and Alembic stay unloaded."""
        full_path(app_db)
        code = (
            "import json, sys\n"
            "from supervisor.contract import config\nfrom supervisor.migrations import quickcheck\n"
            f"v = quickcheck.verified_restart(config.load_settings({{'DATABASE_URL': {app_db!r}}}))\n"
            "print(json.dumps({'revision': v and v.revision,\n"
            "                  'loaded': sorted(m for m in ('sqlalchemy', 'alembic') if m in sys.modules)}))\n"
        )
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                             timeout=60, check=True).stdout
        assert json.loads(out) == {"revision": repo_head(), "loaded": []}

    def test_same_code_in_another_directory_is_recognised(self, app_db: str, tmp_path: Path) -> None:
        """Replicas deploy the same release to different paths: the fingerprint uses relative names."""
        full_path(app_db)
        verified = quick(app_db, make_alembic(tmp_path))
        assert verified is not None and verified.revision == repo_head()

    def test_production_stamp_satisfies_development(self, app_db: str) -> None:
        full_path(app_db)
        assert quick(app_db, JARLPM_ENV="development") is not None


class TestFallsThrough:
    """Anything that changed, or cannot be checked, is left to the full path."""

    def test_changed_env_py(self, app_db: str, tmp_path: Path) -> None:
        full_path(app_db)
        ini = make_alembic(tmp_path)
        env_py = tmp_path / "alembic" / "env.py"
        env_py.write_text(env_py.read_text() + "\n# changed\n")
        assert quick(app_db, ini) is None

    def test_changed_model(self, app_db: str, tmp_path: Path) -> None:
        full_path(app_db)
        assert quick(app_db, make_alembic(tmp_path, backend=drifted_backend(tmp_path))) is None

    def test_schema_changed_by_hand(self, app_db: str) -> None:
        full_path(app_db)
        query(app_db, "ALTER TABLE features ADD COLUMN by_hand integer")
        assert quick(app_db) is None

    def test_database_at_another_revision(self, app_db: str) -> None:
        full_path(app_db)
        query(app_db, "UPDATE alembic_version SET version_num = '0002_features'")
        assert quick(app_db) is None

    def test_development_stamp_under_production(self, app_db: str) -> None:
        """A database a development start stamped must be stamped production by the full path."""
        full_path(app_db, JARLPM_ENV="development")
        assert quick(app_db, JARLPM_ENV="development") is not None
        assert quick(app_db) is None

    def test_reset_on_startup_always_takes_the_full_path(self, app_db: str) -> None:
        full_path(app_db, JARLPM_ENV="development")
        assert quick(app_db, JARLPM_ENV="development", DB_RESET_ON_STARTUP="true") is None

    def test_unreachable_database(self) -> None:
        """No exception: the full path connects again and reports the error with its exit code."""
        assert quick("postgresql://nobody:pw@127.0.0.1:1/none") is None

    def test_unreadable_ini(self, app_db: str, tmp_path: Path) -> None:
        full_path(app_db)
        assert quick(app_db, tmp_path / "missing.ini") is None


class TestFingerprintAgreesWithAlembic:
    """The quick check reads alembic.ini itself: it must find the files Alembic finds."""

    def test_repo_ini(self) -> None:
        cfg = alembic_api.alembic_config()
        script = alembic_api.script_directory(cfg)
        from supervisor.migrations import drift

        roots = fingerprint.code_roots(alembic_api.alembic_ini())
        assert roots is not None
        assert fingerprint.code_digest(*roots) == drift.code_digest(cfg, script)

    def test_legacy_separator_is_left_to_alembic(self, tmp_path: Path) -> None:
        ini = tmp_path / "alembic.ini"
        ini.write_text("[alembic]\nscript_location = migrations\nprepend_sys_path = .\n")
        assert fingerprint.code_roots(ini) is None

    def test_package_resource_location_is_left_to_alembic(self, tmp_path: Path) -> None:
        ini = tmp_path / "alembic.ini"
        ini.write_text("[alembic]\nscript_location = myapp:migrations\npath_separator = os\n")
        assert fingerprint.code_roots(ini) is None


@pytest.mark.slow  # starts real supervisors
class TestThroughTheSupervisor:
    """Two starts, then a schema changed by hand: the quick path never hides drift."""

    def test_restart_is_cached_and_drift_still_refused(self, app_db: str) -> None:
        env = base_env(app_db, JARLPM_APP="sampleapp:app", JARLPM_APP_DIR=str(APPS))
        checks = []
        for _ in range(2):
            with running(env) as sup:
                sup.wait_event("supervisor.ready", timeout=60)
                sup.signal(signal.SIGTERM)
                assert sup.wait_exit() == ExitCode.OK
            checks.append([e["drift_check"] for e in sup.find("migrate.up_to_date")])
        assert checks == [[], ["cached"]], "the first start migrates (migrate.applied), the second is a restart"
        query(app_db, f"ALTER TABLE epics ADD COLUMN {DRIFT_COLUMN} integer")
        with running(env) as sup:
            assert sup.wait_exit() == ExitCode.DATAERR
        [failed] = sup.find("phase.failed", phase="migrate")
        assert f"column epics.{DRIFT_COLUMN}: in the database, not in the models" in failed["differences"]

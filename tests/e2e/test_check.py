"""`jarlpm check`: a read-only pre-flight, and `--rehearse`, which rolls back what it tries.

A check must predict what `jarlpm run` would do without doing any of it (like
``alembic check``, ``nginx -t``): the database's catalog and ``alembic_version`` are
compared before and after.
"""

from __future__ import annotations

import signal
from pathlib import Path

import structlog
from migration_fixtures import make_alembic, query, repo_head, revisions_in
from procs import APPS, base_env, running

from supervisor.contract import config
from supervisor.contract.exitcodes import ExitCode
from supervisor.database.pgcluster import free_port
from supervisor.migrations import migrator
from supervisor.system.signals import SignalQueue


def check_env(url: str, ini: Path, **extra: str) -> dict[str, str]:
    return base_env(url, JARLPM_APP="sampleapp:app", JARLPM_APP_DIR=str(APPS),
                    JARLPM_ALEMBIC_INI=str(ini), **extra)


def migrate_to_repo_head(url: str, **env: str) -> None:
    settings = config.load_settings({"DATABASE_URL": url, **env})
    migrator.migrate_to_head(settings, SignalQueue(), structlog.get_logger())


def catalog(url: str) -> tuple[object, ...]:
    """What a check must leave alone: columns, relations, the revision and the stamp."""
    columns = query(url, "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
                         " WHERE table_schema = current_schema() ORDER BY 1, 2")
    relations = query(url, "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                           " WHERE n.nspname = current_schema() ORDER BY 1")
    stamp = query(url, "SELECT to_jsonb(s) FROM jarlpm_environment s")
    return columns, relations, revisions_in(url), stamp


class TestCheckIsReadOnly:
    """`jarlpm check` reports what a start would apply, and applies nothing."""

    def test_pending_revision_is_listed_not_applied(self, app_db: str, tmp_path: Path) -> None:
        """A pending revision: listed by id and message; exit 0; catalog and alembic_version unchanged."""
        migrate_to_repo_head(app_db)
        ini = make_alembic(tmp_path, "x_fails")
        before = catalog(app_db)
        with running(check_env(app_db, ini), args=("check",)) as sup:
            assert sup.wait_exit() == ExitCode.OK, sup.dump()
        assert catalog(app_db) == before
        report = sup.find("check.migrations")[0]
        assert report["revision"] == [repo_head()] and report["head"] == "x_fails"
        assert [(p["revision"], p["message"]) for p in report["pending"]] == [
            ("x_fails", "Test fixture: creates a table, then trips over an existing column (SQLSTATE 42701).")]
        assert sup.find("check.passed")[0]["phases"] == ["wait_for_db", "migrate", "warm_pool"]
        assert not sup.find("migrate.step") and not sup.find("child.spawned")

    def test_development_reset_is_reported_not_done(self, app_db: str, tmp_path: Path) -> None:
        """DB_RESET_ON_STARTUP in development: the check says a start would reset; the rows stay."""
        migrate_to_repo_head(app_db, JARLPM_ENV="development")
        query(app_db, "INSERT INTO epics (title) VALUES ('keep me')")
        ini = make_alembic(tmp_path)
        env = check_env(app_db, ini, JARLPM_ENV="development", DB_RESET_ON_STARTUP="true")
        with running(env, args=("check",)) as sup:
            assert sup.wait_exit() == ExitCode.OK, sup.dump()
        assert sup.find("check.migrations")[0]["reset"] is True
        assert not sup.find("db.reset")
        assert query(app_db, "SELECT title FROM epics") == [("keep me",)]


    def test_database_ahead_is_refused_when_configured(self, app_db: str, tmp_path: Path) -> None:
        """A revision this code does not know, with MIGRATION_DATABASE_AHEAD=refuse: 65, as a start would."""
        migrate_to_repo_head(app_db)
        query(app_db, "UPDATE alembic_version SET version_num = 'zz_from_a_newer_release'")
        before = catalog(app_db)
        env = check_env(app_db, make_alembic(tmp_path), MIGRATION_DATABASE_AHEAD="refuse")
        with running(env, args=("check",)) as sup:
            assert sup.wait_exit() == ExitCode.DATAERR
        failed = sup.find("phase.failed", phase="migrate")[0]
        assert failed["database_revision"] == ["zz_from_a_newer_release"]
        assert catalog(app_db) == before


    def test_stop_during_the_check_is_not_a_pass(self, tmp_path: Path) -> None:
        """SIGTERM while the check waits for the database: exit 0 (a requested stop), no check.passed."""
        url = f"postgresql://u:p@127.0.0.1:{free_port()}/db"
        with running(check_env(url, make_alembic(tmp_path), DB_WAIT_TIMEOUT="60"), args=("check",)) as sup:
            sup.wait_event("db.wait.retry", timeout=30)
            sup.signal(signal.SIGTERM)
            assert sup.wait_exit(30) == ExitCode.OK
        assert sup.find("phase.interrupted", phase="wait_for_db")
        assert not sup.find("check.passed")


class TestRehearsal:
    """`jarlpm check --rehearse` runs the pending revisions in one transaction and rolls it back."""

    def test_failing_revision_exits_65_naming_it(self, app_db: str, tmp_path: Path) -> None:
        """The failing revision is named (65); the table it created before failing is gone with the rest."""
        migrate_to_repo_head(app_db)
        ini = make_alembic(tmp_path, "x_fails")
        before = catalog(app_db)
        with running(check_env(app_db, ini), args=("check", "--rehearse")) as sup:
            assert sup.wait_exit() == ExitCode.DATAERR
        failed = sup.find("phase.failed", phase="migrate")[0]
        assert failed["revision"] == "x_fails" and failed["sqlstate"] == "42701"
        assert catalog(app_db) == before

    def test_passing_rehearsal_is_rolled_back(self, app_db: str, tmp_path: Path) -> None:
        """Every revision from an empty database rehearsed, the models compared, nothing kept."""
        ini = make_alembic(tmp_path, "x_after")
        with running(check_env(app_db, ini), args=("check", "--rehearse")) as sup:
            assert sup.wait_exit() == ExitCode.OK, sup.dump()
        rehearsed = sup.find("check.rehearsed")[0]
        assert rehearsed["revisions"][-1] == "x_after" and rehearsed["drift_checked"] is True
        assert revisions_in(app_db) == set()
        assert query(app_db, "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()") == [(0,)]

    def test_revision_outside_a_transaction_is_not_rehearsable(self, app_db: str, tmp_path: Path) -> None:
        """An autocommit_block revision is reported, not rehearsed; nothing changes."""
        migrate_to_repo_head(app_db)
        ini = make_alembic(tmp_path, "x_autocommit")
        before = catalog(app_db)
        with running(check_env(app_db, ini), args=("check", "--rehearse")) as sup:
            assert sup.wait_exit() == ExitCode.OK, sup.dump()
        assert sup.find("check.not_rehearsable")[0]["revision"] == "x_autocommit"
        assert sup.find("check.migrations")[0]["pending"][0]["rehearsable"] is False
        assert catalog(app_db) == before

"""The migrate phase at start-up: drift, several heads, clean failures, DDL lock timeouts, stops, replicas, resets.

Process tests run the real supervisor (``tests/procs.py``) with a test app, since
the app does not matter here; "the server never started" means no ``child.ready``
and no ``supervisor.ready``.  Failing, slow and branching histories are temp copies
of the migrations (``migration_fixtures``) named by ``JARLPM_ALEMBIC_INI``.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import sqlalchemy as sa
import structlog
from migration_fixtures import (
    DRIFT_COLUMN,
    drifted_backend,
    make_alembic,
    query,
    repo_head,
    revisions_in,
    stamp_of,
    tables_in,
)
from procs import APPS, Supervisor, base_env, running, wait_for

from supervisor.contract import config
from supervisor.contract.exitcodes import ExitCode, SupervisorError
from supervisor.migrations import alembic_api, drift, lock, migrator
from supervisor.system.signals import SignalQueue

APP_TABLES = {"epics", "features", "user_stories"}


def env_for(url: str, ini: Path | None = None, **extra: str) -> dict[str, str]:
    """A supervisor environment running the test app on ``url`` (and the migrations of ``ini``)."""
    env = base_env(url, JARLPM_APP="sampleapp:app", JARLPM_APP_DIR=str(APPS), **extra)
    if ini is not None:
        env["JARLPM_ALEMBIC_INI"] = str(ini)
    return env


def settings_for(url: str, **env: str) -> config.Settings:
    return config.load_settings({"DATABASE_URL": url, **env})


def migrate(url: str, **env: str) -> tuple[migrator.MigrationResult, list[dict[str, Any]]]:
    """The migrate phase in-process; returns its result and the events it logged."""
    with structlog.testing.capture_logs() as events:
        result = migrator.migrate_to_head(settings_for(url, **env), SignalQueue(), structlog.get_logger())
    return result, events


def failure(url: str, **env: str) -> tuple[SupervisorError, list[dict[str, Any]]]:
    with structlog.testing.capture_logs() as events, pytest.raises(SupervisorError) as info:
        migrator.migrate_to_head(settings_for(url, **env), SignalQueue(), structlog.get_logger())
    return info.value, events


def never_served(sup: Supervisor) -> None:
    assert not sup.find("child.ready"), sup.dump()
    assert not sup.find("supervisor.ready"), sup.dump()


@contextlib.contextmanager
def connection(url: str) -> Iterator[Any]:
    conn = psycopg2.connect(url, connect_timeout=10)
    try:
        yield conn
    finally:
        conn.close()


def active_sleep(url: str) -> int | None:
    """The backend pid of a migration currently inside pg_sleep, if any."""
    rows = query(url, "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                      " AND state = 'active' AND query ILIKE '%pg_sleep%' AND pid <> pg_backend_pid()")
    return int(rows[0][0]) if rows else None  # type: ignore[arg-type]


def lock_holder(url: str) -> int | None:
    rows = query(url, "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s"
                      " AND objid = %s", *lock.LOCK_KEYS)
    return int(rows[0][0]) if rows else None  # type: ignore[arg-type]


class TestUpToDate:
    """A deploy without new migrations: no lock, but the models are still compared."""

    def test_second_start_checks_the_models_without_the_lock(self, app_db: str) -> None:
        """The first start applies the history; the next one reports up to date, with the drift check's cost."""
        first, _ = migrate(app_db)
        assert first.applied[-1] == repo_head()
        second, events = migrate(app_db)
        assert second.applied == []
        up = [e for e in events if e["event"] == "migrate.up_to_date"]
        assert up and up[0]["locked"] is False and isinstance(up[0]["drift_check_ms"], int)

    def test_restart_of_the_same_release_skips_the_comparison(self, app_db: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
        """Same code, same schema: the comparison's result is remembered; changed code compares again."""
        def drift_checks() -> list[str]:
            _, events = migrate(app_db)
            return [e["drift_check"] for e in events if e["event"] == "migrate.up_to_date"]

        migrate(app_db)
        assert drift_checks() == ["cached"]
        ini = make_alembic(tmp_path)  # the same migrations and models, in another directory
        monkeypatch.setenv("JARLPM_ALEMBIC_INI", str(ini))
        assert drift_checks() == ["cached"]
        env_py = tmp_path / "alembic" / "env.py"
        env_py.write_text(env_py.read_text() + "\n# changed\n")
        assert drift_checks() == ["compared"]

    def test_database_migrated_by_plain_alembic_gets_stamped(self, app_db: str) -> None:
        """A database brought to head by `alembic upgrade head` is stamped production on the first start."""
        cfg = alembic_api.alembic_config(app_db)
        from alembic import command

        command.upgrade(cfg, "head")
        assert stamp_of(app_db) is None
        result, events = migrate(app_db)
        assert result.applied == [] and stamp_of(app_db) == "production"
        assert any(e["event"] == "migrate.up_to_date" and e["locked"] for e in events)


class TestDescribingDifferences:
    """Each difference Alembic reports becomes one sentence naming the object and the side that has it."""

    def test_sentences(self) -> None:
        table = sa.Table("epics", sa.MetaData(), sa.Column("id", sa.Integer), sa.Column("rank", sa.Integer))
        index = sa.Index("ix_epics_rank", table.c.rank)
        assert drift.describe(("add_table", table)) == "table epics: in the models, missing in the database"
        assert drift.describe(("remove_column", None, "epics", sa.Column("legacy", sa.Text))) == \
            "column epics.legacy: in the database, not in the models"
        assert drift.describe(("add_index", index)) == \
            "index ix_epics_rank on epics: in the models, missing in the database"
        assert drift.describe([("modify_nullable", None, "epics", "rank", {}, True, False)]) == \
            "column epics.rank: nullable is nullable in the database, NOT NULL in the models"
        assert drift.describe([("modify_type", None, "epics", "rank", {}, sa.Integer(), sa.BigInteger())]) == \
            "column epics.rank: type is INTEGER in the database, BIGINT in the models"

    def test_long_lists_are_cut_but_counted(self) -> None:
        tables = [sa.Table(f"t{i}", sa.MetaData()) for i in range(60)]
        error = drift.drift_error([("remove_table", table) for table in tables], "0003")
        assert len(error.fields["differences"]) == drift.MAX_LISTED
        assert "in 60 place(s) (first 50 listed)" in error.message and error.exit_code == ExitCode.DATAERR


class TestDrift:
    """The models are compared with the database after migrating; a difference refuses the start (65)."""

    def test_model_change_without_migration_refuses_to_start(self, app_db: str, tmp_path: Path) -> None:
        """A column added to a model but to no migration: exit 65 listing it, with the fix; no server."""
        ini = make_alembic(tmp_path, backend=drifted_backend(tmp_path))
        with running(env_for(app_db, ini)) as sup:
            failed = sup.wait_event("phase.failed", phase="migrate")
            assert sup.wait_exit() == ExitCode.DATAERR
        assert failed["exit_code"] == 65
        assert f"column epics.{DRIFT_COLUMN}: in the models, missing in the database" in failed["differences"]
        assert "jarlpm migrate revision --autogenerate" in failed["hint"]
        assert sup.find("migrate.applied"), "the migrations ran before the comparison"
        never_served(sup)

    def test_check_preflight_refuses_the_same_drift(self, app_db: str, tmp_path: Path) -> None:
        """`jarlpm check` against a database at head compares the models, so CI sees the drift before a deploy."""
        migrate(app_db)
        ini = make_alembic(tmp_path, backend=drifted_backend(tmp_path))
        with running(env_for(app_db, ini), args=("check",)) as sup:
            assert sup.wait_exit() == ExitCode.DATAERR
        assert sup.find("phase.failed", phase="migrate", exit_code=65)
        assert not sup.find("check.passed")

    def test_rehearsal_finds_drift_on_an_empty_database(self, app_db: str, tmp_path: Path) -> None:
        """`jarlpm check --rehearse` compares the models with the rolled-back result of the pending revisions."""
        ini = make_alembic(tmp_path, backend=drifted_backend(tmp_path))
        with running(env_for(app_db, ini), args=("check", "--rehearse")) as sup:
            assert sup.wait_exit() == ExitCode.DATAERR
        failed = sup.find("phase.failed", phase="migrate", exit_code=65)[0]
        assert f"column epics.{DRIFT_COLUMN}: in the models, missing in the database" in failed["differences"]
        assert revisions_in(app_db) == set() and tables_in(app_db) == set()

    def test_database_changed_by_hand_is_drift(self, app_db: str) -> None:
        """A column dropped outside the migrations is listed the same way, even after a cached check."""
        migrate(app_db)
        _, events = migrate(app_db)
        assert [e["drift_check"] for e in events if e["event"] == "migrate.up_to_date"] == ["cached"]
        query(app_db, "ALTER TABLE features DROP COLUMN description")
        error, _ = failure(app_db)
        assert error.exit_code == ExitCode.DATAERR
        assert "column features.description: in the models, missing in the database" in error.fields["differences"]

    def test_supervisor_bookkeeping_is_not_drift(self, app_db: str) -> None:
        """The environment stamp table exists but is no difference (env.py's include_object skips it)."""
        migrate(app_db)
        assert "jarlpm_environment" in tables_in(app_db)
        cfg = alembic_api.alembic_config()
        engine = alembic_api.engine_for(app_db)
        try:
            with engine.connect() as conn:
                assert drift.compare(cfg, alembic_api.script_directory(cfg), conn) == []
        finally:
            engine.dispose()


class TestSeveralHeads:
    """Two revisions on the same parent are refused before anything is applied."""

    def test_two_heads_refused_with_the_merge_hint(self, app_db: str, tmp_path: Path) -> None:
        """Exit 65 naming both heads and how to merge them; the database is untouched."""
        ini = make_alembic(tmp_path, "x_branch_a", "x_branch_b", branch=True)
        with running(env_for(app_db, ini)) as sup:
            failed = sup.wait_event("phase.failed", phase="migrate")
            assert sup.wait_exit() == ExitCode.DATAERR
        assert failed["heads"] == ["x_branch_a", "x_branch_b"]
        assert "jarlpm migrate merge" in failed["hint"]
        assert revisions_in(app_db) == set()
        never_served(sup)


class TestFailingMigration:
    """A failing revision rolls back alone; the database stays at the last good one; no server starts."""

    def test_failure_names_revision_and_sqlstate_and_keeps_last_good(self, app_db: str, tmp_path: Path) -> None:
        """The event names the revision, SQLSTATE and message; what the revision created is rolled back."""
        ini = make_alembic(tmp_path, "x_fails")
        with running(env_for(app_db, ini)) as sup:
            failed = sup.wait_event("phase.failed", phase="migrate")
            assert sup.wait_exit() == ExitCode.DATAERR
        assert failed["revision"] == "x_fails" and failed["sqlstate"] == "42701"
        assert 'column "title" of relation "epics" already exists' in failed["error"]
        assert failed["last_good_revision"] == repo_head()
        assert revisions_in(app_db) == {repo_head()}
        assert "scratch_x_fails" not in tables_in(app_db) and APP_TABLES <= tables_in(app_db)
        never_served(sup)


class TestPrivileges:
    """A role that may connect but not create: exit 77 naming the revision, not a crash."""

    def test_missing_privilege_exits_77(self, app_db: str, pg_server: Any) -> None:
        """The first revision cannot create its table: exit 77 with the revision, SQLSTATE 42501 and GRANT."""
        database = app_db.rsplit("/", 1)[1]
        role = f"ro_{database}"
        pg_server.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'ro-pw'")
        try:
            pg_server.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC", dbname=database)
            url = app_db.replace("jarlpm_app:s3cret-app-pw", f"{role}:ro-pw")
            error, _ = failure(url)
        finally:
            pg_server.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            pg_server.execute(f"DROP ROLE {role}")
        first = alembic_api.script_directory(alembic_api.alembic_config()).get_base()
        assert error.exit_code == ExitCode.NOPERM and error.fields["sqlstate"] == "42501"
        assert error.fields["revision"] == first and "GRANT" in error.hint


class TestDdlLockTimeout:
    """DDL waits at most MIGRATION_DDL_LOCK_TIMEOUT behind live traffic, then fails naming the blocker."""

    def test_lock_timeout_names_the_blocking_session(self, app_db: str, tmp_path: Path) -> None:
        """A transaction reading epics blocks the ALTER; the event names its backend pid and the fix."""
        migrate(app_db)
        ini = make_alembic(tmp_path, "x_locks_epics")
        with connection(app_db) as blocker:
            with blocker.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                blocker_pid = cur.fetchone()[0]
                # Leaves the transaction open (ACCESS SHARE held); its text carries values that
                # must not reach the log, the way a request's literals or a role's password would.
                cur.execute("SELECT count(*) FROM epics WHERE title <> 'blocker-secret-title' AND id > 4242")
            with running(env_for(app_db, ini, MIGRATION_DDL_LOCK_TIMEOUT="1")) as sup:
                failed = sup.wait_event("phase.failed", phase="migrate")
                assert sup.wait_exit() == ExitCode.DATAERR
        assert failed["sqlstate"] == "55P03" and failed["revision"] == "x_locks_epics"
        assert failed["blockers"][0]["pid"] == blocker_pid
        assert failed["blockers"][0]["query"] == "SELECT count(*) FROM epics WHERE title <> ? AND id > ?"
        assert not [line for line in sup.lines if "blocker-secret-title" in line or "4242" in line]
        assert f"pg_terminate_backend({blocker_pid})" in failed["hint"]
        assert revisions_in(app_db) == {repo_head()}
        never_served(sup)


class TestStopDuringMigration:
    """SIGTERM while migrating: the current revision finishes, the next is not started, nor is the server."""

    def test_sigterm_lets_the_current_revision_finish(self, app_db: str, tmp_path: Path) -> None:
        """Exit 0 after the slow revision commits; the revision after it is not applied."""
        ini = make_alembic(tmp_path, "x_sleeps", "x_after")
        with running(env_for(app_db, ini, TEST_MIGRATION_SLEEP="2")) as sup:
            wait_for(lambda: active_sleep(app_db), 30, "the slow migration to start")
            sup.signal(signal.SIGTERM)
            assert sup.wait_exit() == ExitCode.OK
        assert revisions_in(app_db) == {"x_sleeps"}
        assert sup.find("migrate.step", revision="x_sleeps")
        assert not sup.find("migrate.step", revision="x_after")
        assert sup.find("phase.interrupted", phase="migrate")
        never_served(sup)


class TestReplicas:
    """Replicas share one lock: one migrates, the others wait, a dead holder blocks nobody."""

    def test_five_replicas_at_once_migrate_once(self, app_db: str, tmp_path: Path) -> None:
        """Five supervisors on one empty database: all ready, `migrate.applied` exactly once."""
        ini = make_alembic(tmp_path, "x_sleeps")
        sups = [Supervisor(env_for(app_db, ini, TEST_MIGRATION_SLEEP="1")) for _ in range(5)]
        try:
            for sup in sups:
                sup.wait_event("supervisor.ready", timeout=90)
            applied = [e for sup in sups for e in sup.find("migrate.applied")]
            waiting = [e for sup in sups for e in sup.find("migrate.lock_waiting")]
        finally:
            for sup in sups:
                sup.kill()
        assert len(applied) == 1 and applied[0]["to_revision"] == "x_sleeps"
        assert waiting and all(isinstance(e["holder_pid"], int) for e in waiting)
        assert revisions_in(app_db) == {"x_sleeps"}

    def test_lock_timeout_exits_75_naming_the_holder(self, app_db: str) -> None:
        """A lock held past MIGRATION_LOCK_TIMEOUT: exit 75; the events name the holder's backend pid."""
        with connection(app_db) as holder:
            holder.autocommit = True
            with holder.cursor() as cur:
                cur.execute("SELECT pg_advisory_lock(%s, %s), pg_backend_pid()", lock.LOCK_KEYS)
                holder_pid = cur.fetchone()[1]
            with running(env_for(app_db, MIGRATION_LOCK_TIMEOUT="1")) as sup:
                assert sup.wait_exit() == ExitCode.TEMPFAIL
        assert sup.find("migrate.lock_waiting", holder_pid=holder_pid)
        failed = sup.find("phase.failed", phase="migrate")[0]
        assert failed["exit_code"] == 75 and failed["holder_pid"] == holder_pid
        assert revisions_in(app_db) == set()
        never_served(sup)

    def test_replica_killed_holding_the_lock_blocks_nobody(self, app_db: str, tmp_path: Path) -> None:
        """SIGKILL mid-migration: the lock dies with its connection, before the orphaned statement ends."""
        ini = make_alembic(tmp_path, "x_sleeps")
        first = Supervisor(env_for(app_db, ini, TEST_MIGRATION_SLEEP="8"))
        orphan = None
        try:
            orphan = wait_for(lambda: active_sleep(app_db), 30, "the slow migration to start")
            holder = lock_holder(app_db)
            assert holder is not None and holder != orphan, "the lock lives on a connection of its own"
            os.killpg(first.pid, signal.SIGKILL)
            first.wait_exit(10)
            wait_for(lambda: lock_holder(app_db) is None, 5, "the dead replica's lock to be released")
            assert active_sleep(app_db) == orphan, "released by the connection's death, not by completion"
            with running(env_for(app_db, ini, TEST_MIGRATION_SLEEP="0.1")) as second:
                second.wait_event("supervisor.ready", timeout=60)
                assert second.find("migrate.applied")[0]["revisions"] == ["x_sleeps"]
        finally:
            first.kill()
            if orphan is not None:
                query(app_db, "SELECT pg_terminate_backend(%s)", orphan)
        assert revisions_in(app_db) == {"x_sleeps"}


class TestResetGuard:
    """DB_RESET_ON_STARTUP: development only, never on a database production has stamped."""

    def _with_data(self, url: str, **env: str) -> None:
        migrate(url, **env)
        query(url, "INSERT INTO epics (title) VALUES ('keep me')")

    def test_refused_in_production_before_touching_the_database(self, app_db: str) -> None:
        """JARLPM_ENV=production with a reset: exit 78 at validate_env; the data survives."""
        self._with_data(app_db)
        with running(env_for(app_db, DB_RESET_ON_STARTUP="true"), args=("check",)) as sup:
            assert sup.wait_exit() == ExitCode.CONFIG
        assert sup.find("phase.failed", phase="validate_env", exit_code=78)
        assert not sup.find("phase.started", phase="migrate")
        assert query(app_db, "SELECT count(*) FROM epics")[0][0] == 1

    def test_refused_on_a_production_stamped_database_whatever_the_variables(self, app_db: str) -> None:
        """Development + reset against a database production migrated: exit 78; nothing dropped."""
        self._with_data(app_db)
        assert stamp_of(app_db) == "production"
        with running(env_for(app_db, JARLPM_ENV="development", DB_RESET_ON_STARTUP="true"),
                     args=("check",)) as sup:
            assert sup.wait_exit() == ExitCode.CONFIG
        failed = sup.find("phase.failed", phase="migrate")[0]
        assert failed["exit_code"] == 78 and failed["stamped_environment"] == "production"
        assert not sup.find("db.reset")
        assert query(app_db, "SELECT count(*) FROM epics")[0][0] == 1

    def test_development_database_is_dropped_loudly_and_remigrated(self, app_db: str) -> None:
        """A development-stamped database: every object dropped and listed, then the migrations re-run."""
        self._with_data(app_db, JARLPM_ENV="development")
        result, events = migrate(app_db, JARLPM_ENV="development", DB_RESET_ON_STARTUP="true")
        reset = [e for e in events if e["event"] == "db.reset"][0]
        assert reset["log_level"] == "warning"
        assert {"table epics", "table features", "table user_stories", "table alembic_version",
                "table jarlpm_environment"} <= set(reset["dropped"])
        assert result.from_revision is None and result.applied[-1] == repo_head(), "migrations, not create_all"
        assert query(app_db, "SELECT count(*) FROM epics")[0][0] == 0
        assert stamp_of(app_db) == "development"

    def test_never_stamped_database_is_reset_with_everything_in_it(self, app_db: str) -> None:
        """An unstamped database: tables, views, enums and functions all go, then the history re-runs."""
        query(app_db, "CREATE TYPE mood AS ENUM ('ok'); CREATE TABLE stray (id serial, m mood);"
                      " CREATE VIEW stray_view AS SELECT id FROM stray;"
                      " CREATE FUNCTION stray_fn(a int) RETURNS int LANGUAGE sql AS 'SELECT a'")
        result, events = migrate(app_db, JARLPM_ENV="development", DB_RESET_ON_STARTUP="true")
        dropped = set([e for e in events if e["event"] == "db.reset"][0]["dropped"])
        assert {"table stray", "view stray_view", "type mood", "function stray_fn(integer)"} <= dropped
        assert not any("stray_id_seq" in d for d in dropped), "owned sequences go with their table"
        assert tables_in(app_db) == APP_TABLES | {"alembic_version", "jarlpm_environment"}
        assert result.applied[-1] == repo_head()

    def test_without_the_variable_nothing_is_dropped(self, app_db: str) -> None:
        """Development without DB_RESET_ON_STARTUP keeps the data between starts."""
        self._with_data(app_db, JARLPM_ENV="development")
        _, events = migrate(app_db, JARLPM_ENV="development")
        assert not [e for e in events if e["event"] == "db.reset"]
        assert query(app_db, "SELECT count(*) FROM epics")[0][0] == 1

    def test_production_stamp_is_permanent(self, app_db: str) -> None:
        """Development then production: stamped production; a later development start leaves it so."""
        migrate(app_db, JARLPM_ENV="development")
        assert stamp_of(app_db) == "development"
        migrate(app_db)
        assert stamp_of(app_db) == "production"
        migrate(app_db, JARLPM_ENV="development")
        assert stamp_of(app_db) == "production"
        error, _ = failure(app_db, JARLPM_ENV="development", DB_RESET_ON_STARTUP="true")
        assert error.exit_code == ExitCode.CONFIG

    def test_plain_alembic_database_is_protected_after_one_production_start(self, app_db: str) -> None:
        """Migrated outside the supervisor, then started once in production: a reset is refused."""
        from alembic import command

        command.upgrade(alembic_api.alembic_config(app_db), "head")
        migrate(app_db)
        error, _ = failure(app_db, JARLPM_ENV="development", DB_RESET_ON_STARTUP="true")
        assert error.exit_code == ExitCode.CONFIG and error.fields["stamped_environment"] == "production"

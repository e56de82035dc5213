"""``jarlpm migrate``: every action against real PostgreSQL, its exit codes, its stdout and its events.

Most runs are in-process (``supervisor.main.main``, stdout and stderr captured at the
file-descriptor level); the ones that need another copy of the models, and one of
each kind of exit, run ``python -m supervisor migrate`` as a process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import structlog
from migration_fixtures import (
    DRIFT_COLUMN,
    drifted_backend,
    make_alembic,
    query,
    repo_head,
    revisions_in,
    tables_in,
)
from procs import REPO, base_env

from supervisor import main as jarlpm
from supervisor.contract.exitcodes import ExitCode
from supervisor.logs import logsetup
from supervisor.migrations import alembic_api, lock, operations, revisions

APP_TABLES = {"epics", "features", "user_stories"}
ACTIONS = ("upgrade", "downgrade", "current", "history", "check", "revision", "merge")
OUR_PREFIXES = ("DATABASE_", "DB_", "MIGRATION_", "JARLPM_", "LOG_")


@dataclass(repr=False)
class Run:
    """One command's exit code, stdout, and the JSON events it wrote to stderr."""

    code: int
    stdout: str
    stderr: str

    @property
    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in self.stderr.splitlines():
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                found.append(value)
        return found

    def find(self, event: str, **match: Any) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == event and all(e.get(k) == v for k, v in match.items())]

    def __repr__(self) -> str:
        return f"exit {self.code}\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"


Cli = Callable[..., Run]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> Iterator[Cli]:
    """Run ``jarlpm migrate ARGS`` in-process with exactly the variables given (``env=``)."""
    saved = structlog.get_config()

    def run(*args: str, env: dict[str, str]) -> Run:
        for name in list(os.environ):
            if name.startswith(OUR_PREFIXES):
                monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        # A fresh log sink per run, writing to this test's captured stderr.
        monkeypatch.setattr(logsetup.LogRuntime, "sink", None)
        capfd.readouterr()
        code = jarlpm.main(["migrate", *args])
        out, err = capfd.readouterr()
        return Run(code, out, err)

    yield run
    structlog.configure(**saved)


def process(*args: str, env: dict[str, str]) -> Run:
    """Run the real command as a process: ``python -m supervisor migrate ARGS`` (``jarlpm migrate``)."""
    done = subprocess.run([sys.executable, "-m", "supervisor", "migrate", *args], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=90)
    return Run(done.returncode, done.stdout, done.stderr)


def history_order() -> list[str]:
    script = alembic_api.script_directory(alembic_api.alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def env_of(url: str | None, ini: Path | None = None, **extra: str) -> dict[str, str]:
    env = {"DATABASE_URL": url} if url else {}
    if ini is not None:
        env["JARLPM_ALEMBIC_INI"] = str(ini)
    return {**env, **extra}


class TestPureLogic:
    """The parts without effects: what counts as destructive, how new revisions are named."""

    def test_destructive_statements_skip_alembic_bookkeeping(self) -> None:
        sql = ("BEGIN;\n-- Running downgrade b -> a\n\nDROP INDEX ix_b;\n\nALTER TABLE epics\n    DROP COLUMN x;\n"
               "\nCREATE TABLE keep (id int);\n\nDELETE FROM alembic_version WHERE version_num = 'a';\n"
               "\nTRUNCATE audit;\n\nCOMMIT;\n")
        assert operations.destructive_statements(sql) == [
            "DROP INDEX ix_b", "ALTER TABLE epics DROP COLUMN x", "TRUNCATE audit"]

    def test_next_revision_id_follows_the_numbering(self) -> None:
        script = alembic_api.script_directory(alembic_api.alembic_config())
        number = len(history_order()) + 1
        assert revisions.next_revision_id(script, "Add priority to Epics!") == \
            f"{number:04d}_add_priority_to_epics"
        assert revisions.next_revision_id(script, "???") == f"{number:04d}_revision"


class TestCommandLine:
    """Each action has --help; a bad command line exits 64."""

    @pytest.mark.parametrize("action", ACTIONS)
    def test_every_action_has_help(self, action: str, capsys: pytest.CaptureFixture[str]) -> None:
        """`jarlpm migrate ACTION --help` describes the action and exits 0."""
        with pytest.raises(SystemExit) as exited:
            jarlpm.main(["migrate", action, "--help"])
        assert exited.value.code == 0
        assert f"migrate {action}" in capsys.readouterr().out

    @pytest.mark.parametrize("argv", [["migrate"], ["migrate", "downgrade"], ["migrate", "revision"],
                                      ["migrate", "frobnicate"], ["migrate", "upgrade", "--bogus"]])
    def test_usage_errors_exit_64(self, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        """Missing or unknown arguments: EX_USAGE, with the usage line on stderr."""
        assert jarlpm.main(argv) == ExitCode.USAGE
        assert "usage:" in capsys.readouterr().err

    def test_runs_as_jarlpm_migrate_with_events_on_stderr(self, app_db: str) -> None:
        """The real process: the result on stdout, JSON events on stderr, the same events as the phase."""
        run = process("upgrade", env=base_env(app_db))
        assert run.code == 0, run
        assert run.stdout.strip() == f"upgraded base -> {repo_head()}: {', '.join(history_order())}"
        assert [e["revision"] for e in run.find("migrate.step")] == history_order()
        assert run.find("migrate.applied", to_revision=repo_head())
        assert all(e["command"] == "migrate upgrade" for e in run.events)


class TestUpgradeDowngrade:
    """Round trips of the whole history, one revision at a time or all at once."""

    def test_round_trip_one_revision_at_a_time(self, cli: Cli, app_db: str) -> None:
        """Upgrade to each revision in turn, then `downgrade -1 --yes` back to an empty schema."""
        env = env_of(app_db)
        order = history_order()
        for revision in order:
            assert cli("upgrade", revision, env=env).code == 0
            assert revisions_in(app_db) == {revision}
        for expected in [*reversed(order[:-1]), None]:
            run = cli("downgrade", "-1", "--yes", env=env)
            assert run.code == 0, run
            assert revisions_in(app_db) == ({expected} if expected else set())
        assert not tables_in(app_db) & APP_TABLES

    def test_round_trip_all_at_once(self, cli: Cli, app_db: str) -> None:
        """Upgrade to head, downgrade to base, upgrade again: the same schema, checked against the models."""
        env = env_of(app_db)
        assert cli("upgrade", env=env).code == 0
        down = cli("downgrade", "base", "--yes", env=env)
        assert down.code == 0, down
        assert down.find("migrate.downgraded", to_revision="base")
        assert revisions_in(app_db) == set() and not tables_in(app_db) & APP_TABLES
        assert cli("upgrade", env=env).code == 0
        assert cli("check", env=env).code == 0

    def test_production_downgrade_needs_yes_and_says_what_it_drops(self, cli: Cli, app_db: str) -> None:
        """Without --yes in production: exit 64, the plan on stdout and in the event; nothing changed."""
        env = env_of(app_db)
        cli("upgrade", env=env)
        run = cli("downgrade", "-1", env=env)
        assert run.code == ExitCode.USAGE, run
        assert "ALTER TABLE user_stories DROP COLUMN version;" in run.stdout and "--yes" in run.stdout
        failed = run.find("migrate.failed")[0]
        assert "ALTER TABLE user_stories DROP COLUMN version" in failed["drops"]
        assert failed["revisions"] == [repo_head()]
        assert "--yes" in failed["hint"]
        assert revisions_in(app_db) == {repo_head()}

    def test_development_downgrade_needs_no_confirmation(self, cli: Cli, app_db: str) -> None:
        """JARLPM_ENV=development: a downgrade runs at once, still logging what it drops."""
        env = env_of(app_db, JARLPM_ENV="development")
        cli("upgrade", env=env)
        run = cli("downgrade", "-1", env=env)
        assert run.code == 0, run
        assert "ALTER TABLE user_stories DROP COLUMN version" in run.find("migrate.downgrade_plan")[0]["drops"]
        assert revisions_in(app_db) == {history_order()[-2]}

    def test_bad_targets_are_usage_errors(self, cli: Cli, app_db: str) -> None:
        """Unknown revisions, upgrading backwards, or more steps than there are: exit 64."""
        env = env_of(app_db)
        cli("upgrade", env=env)
        assert cli("upgrade", "nope", env=env).code == ExitCode.USAGE
        assert cli("upgrade", history_order()[0], env=env).code == ExitCode.USAGE
        assert cli("downgrade", "nope", "--yes", env=env).code == ExitCode.USAGE
        run = cli("downgrade", "-9", "--yes", env=env)
        assert run.code == ExitCode.USAGE and run.find("migrate.failed")[0]["hint"]
        assert revisions_in(app_db) == {repo_head()}


class TestOfflineSql:
    """`--sql` prints the script for a DBA to review, and runs nothing."""

    def test_upgrade_sql_is_pure_sql_that_builds_the_schema(self, cli: Cli, app_db: str) -> None:
        """Only SQL on stdout; applied by hand, it gives a database the models match."""
        env = env_of(app_db)
        run = cli("upgrade", "--sql", env=env)
        assert run.code == 0, run
        assert "CREATE TABLE epics" in run.stdout and "lock_timeout = '10000ms'" in run.stdout
        assert "{" not in run.stdout.replace("'{}'", "").split("CREATE TABLE alembic_version")[0]
        assert revisions_in(app_db) == set(), "--sql runs nothing"
        query(app_db, run.stdout)
        assert revisions_in(app_db) == {repo_head()}
        assert cli("check", env=env).code == 0

    def test_upgrade_sql_needs_no_database(self, cli: Cli) -> None:
        """Without DATABASE_URL it starts from base (or --from)."""
        run = cli("upgrade", "--sql", env={})
        assert run.code == 0, run
        assert "CREATE TABLE epics" in run.stdout
        later = cli("upgrade", "--sql", "--from", history_order()[-2], env={})
        assert "CREATE TABLE" not in later.stdout and "ADD COLUMN version" in later.stdout

    def test_downgrade_sql_shows_the_drops_and_changes_nothing(self, cli: Cli, app_db: str) -> None:
        env = env_of(app_db)
        cli("upgrade", env=env)
        run = cli("downgrade", "--sql", "-1", env=env)
        assert run.code == 0, run
        assert "ALTER TABLE user_stories DROP COLUMN version" in run.stdout
        assert revisions_in(app_db) == {repo_head()}


class TestCurrentAndHistory:
    """Read-only views that take no lock, so they can watch a migration in progress."""

    def test_current_follows_the_database(self, cli: Cli, app_db: str) -> None:
        env = env_of(app_db)
        empty = cli("current", env=env)
        assert empty.code == 0 and empty.stdout.startswith(f"base (empty: {len(history_order())} pending)")
        cli("upgrade", env=env)
        at_head = cli("current", env=env)
        assert at_head.stdout.splitlines() == [f"{repo_head()} (head)", "environment stamp: production"]
        assert at_head.find("migrate.current", state="at_head")

    def test_current_names_the_lock_holder(self, cli: Cli, app_db: str) -> None:
        """While a migration holds the lock, `current` says which backend does, without waiting."""
        with psycopg2.connect(app_db) as holder:
            holder.autocommit = True
            with holder.cursor() as cur:
                cur.execute("SELECT pg_advisory_lock(%s, %s), pg_backend_pid()", lock.LOCK_KEYS)
                pid = cur.fetchone()[1]
            run = cli("current", env=env_of(app_db))
        holder.close()
        assert run.code == 0
        assert f"held by PostgreSQL backend pid {pid}" in run.stdout

    def test_history_marks_head_and_current(self, cli: Cli, app_db: str) -> None:
        env = env_of(app_db)
        cli("upgrade", history_order()[0], env=env)
        lines = cli("history", env=env).stdout.splitlines()
        assert [line.split()[0] for line in lines] == list(reversed(history_order()))
        assert "(head)" in lines[0] and "(current)" in lines[-1]
        offline = cli("history", env={})
        assert offline.code == 0 and "(current)" not in offline.stdout


class TestCheck:
    """`migrate check`: 0 only when there is one head, the database is at it, and the models match."""

    def test_passes_at_head(self, cli: Cli, app_db: str) -> None:
        """At head with matching models: exit 0, always comparing (an explicit check is never cached)."""
        env = env_of(app_db)
        cli("upgrade", env=env)
        run = cli("check", env=env)
        assert run.code == 0, run
        assert run.find("migrate.check_passed", revision=repo_head(), drift_check="compared"), "never cached"

    def test_fails_when_behind(self, cli: Cli, app_db: str) -> None:
        env = env_of(app_db)
        cli("upgrade", history_order()[0], env=env)
        run = cli("check", env=env)
        assert run.code == ExitCode.DATAERR
        assert "jarlpm migrate upgrade" in run.find("migrate.failed")[0]["hint"]

    def test_fails_listing_differences(self, cli: Cli, app_db: str) -> None:
        env = env_of(app_db)
        cli("upgrade", env=env)
        query(app_db, "ALTER TABLE epics ADD COLUMN legacy_flag boolean")
        failed = cli("check", env=env).find("migrate.failed")[0]
        assert failed["exit_code"] == 65
        assert "column epics.legacy_flag: in the database, not in the models" in failed["differences"]

    def test_fails_on_two_heads_with_the_merge_hint(self, cli: Cli, app_db: str, tmp_path: Path) -> None:
        ini = make_alembic(tmp_path, "x_branch_a", "x_branch_b", branch=True)
        run = cli("check", env=env_of(app_db, ini))
        assert run.code == ExitCode.DATAERR
        assert "jarlpm migrate merge" in run.find("migrate.failed")[0]["hint"]


class TestRevisions:
    """Writing revisions: from the models' differences, empty, or merging heads."""

    def test_autogenerate_writes_the_missing_migration(self, app_db: str, tmp_path: Path) -> None:
        """A model gained a column: autogenerate writes NNNN_slug.py adding it; then upgrade and check pass."""
        ini = make_alembic(tmp_path, backend=drifted_backend(tmp_path))
        env = base_env(app_db, JARLPM_ALEMBIC_INI=str(ini))
        assert process("upgrade", env=env).code == ExitCode.DATAERR, "drift before the revision exists"
        run = process("revision", "--autogenerate", "-m", "Add drift probe", env=env)
        assert run.code == 0, run
        path = Path(run.stdout.strip())
        number = len(history_order()) + 1
        assert path.name == f"{number:04d}_add_drift_probe.py" and path.parent == tmp_path / "alembic" / "versions"
        assert f"op.add_column('epics', sa.Column('{DRIFT_COLUMN}'" in path.read_text()
        assert run.find("migrate.revision_created")[0]["operations"] == [
            f"column epics.{DRIFT_COLUMN}: in the models, missing in the database"]
        assert process("upgrade", env=env).code == 0
        assert process("check", env=env).code == 0

    def test_autogenerate_without_changes_writes_nothing(self, cli: Cli, app_db: str, tmp_path: Path) -> None:
        ini = make_alembic(tmp_path)
        env = env_of(app_db, ini)
        cli("upgrade", env=env)
        run = cli("revision", "--autogenerate", "-m", "nothing", env=env)
        assert run.code == 0 and run.find("migrate.revision_empty")
        assert sorted(p.name for p in (tmp_path / "alembic" / "versions").glob("*.py")) == \
            sorted(f"{rev}.py" for rev in history_order())

    def test_autogenerate_needs_the_database_at_head(self, cli: Cli, app_db: str, tmp_path: Path) -> None:
        ini = make_alembic(tmp_path)
        run = cli("revision", "--autogenerate", "-m", "too early", env=env_of(app_db, ini))
        assert run.code == ExitCode.DATAERR and "jarlpm migrate upgrade" in run.find("migrate.failed")[0]["hint"]

    def test_merge_joins_two_heads(self, cli: Cli, app_db: str, tmp_path: Path) -> None:
        """The fix the several-heads failure suggests: merge, then upgrade applies both branches."""
        ini = make_alembic(tmp_path, "x_branch_a", "x_branch_b", branch=True)
        env = env_of(app_db, ini)
        assert cli("upgrade", env=env).code == ExitCode.DATAERR
        merged = cli("merge", env=env)
        assert merged.code == 0, merged
        assert "down_revision: str | Sequence[str] | None = ('x_branch_a', 'x_branch_b')" in \
            Path(merged.stdout.strip()).read_text()
        assert cli("upgrade", env=env).code == 0
        assert revisions_in(app_db) == {Path(merged.stdout.strip()).stem}


class TestFailures:
    """The same lock and the same failure reporting as the startup phase: one event, its exit code, a fix."""

    def test_waits_for_the_replicas_lock_then_exits_75(self, cli: Cli, app_db: str) -> None:
        with psycopg2.connect(app_db) as holder:
            holder.autocommit = True
            with holder.cursor() as cur:
                cur.execute("SELECT pg_advisory_lock(%s, %s), pg_backend_pid()", lock.LOCK_KEYS)
                pid = cur.fetchone()[1]
            run = cli("upgrade", env=env_of(app_db, MIGRATION_LOCK_TIMEOUT="1"))
        holder.close()
        assert run.code == ExitCode.TEMPFAIL, run
        assert run.find("migrate.lock_waiting", holder_pid=pid)
        assert run.find("migrate.failed", exit_code=75, holder_pid=pid)

    def test_failing_revision_names_itself_and_keeps_the_last_good(self, cli: Cli, app_db: str,
                                                                   tmp_path: Path) -> None:
        ini = make_alembic(tmp_path, "x_fails")
        run = cli("upgrade", env=env_of(app_db, ini))
        assert run.code == ExitCode.DATAERR
        failed = run.find("migrate.failed")[0]
        assert failed["revision"] == "x_fails" and failed["sqlstate"] == "42701"
        assert failed["last_good_revision"] == repo_head() == next(iter(revisions_in(app_db)))

    def test_unreachable_database_exits_69(self) -> None:
        run = process("current", env=base_env("postgresql://u:secretpw@127.0.0.1:9/db"))
        assert run.code == ExitCode.UNAVAILABLE, run
        assert run.find("migrate.failed")[0]["hint"] and "secretpw" not in run.stderr

    def test_wrong_password_exits_77(self, app_db: str) -> None:
        run = process("current", env=base_env(app_db.replace("s3cret-app-pw", "wrong-pw")))
        assert run.code == ExitCode.NOPERM, run
        assert "credentials" in run.find("migrate.failed")[0]["hint"]

    def test_invalid_configuration_exits_78(self, cli: Cli, app_db: str) -> None:
        run = cli("upgrade", env=env_of(app_db, MIGRATION_LOCK_TIMEOUT="soon"))
        assert run.code == ExitCode.CONFIG
        assert run.find("phase.failed", phase="validate_env")[0]["problems"][0]["variable"] == \
            "MIGRATION_LOCK_TIMEOUT"

"""Specifications of ``supervisor.contract.config``: every variable validated at once, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.contract import config, dburl
from supervisor.contract.config import (
    ConfigError,
    Settings,
    load_settings,
    log_settings_only,
)

URL = "postgresql://app:s3cret-pw@db.internal:5432/jarlpm"


def settings(**env: str) -> Settings:
    return load_settings({"DATABASE_URL": URL, **env})


def problems(env: dict[str, str]) -> list[config.Problem]:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    return info.value.problems


def only_problem(**env: str) -> config.Problem:
    found = problems({"DATABASE_URL": URL, **env})
    assert len(found) == 1, found
    return found[0]


class TestDefaults:
    """A production environment with only DATABASE_URL gets the documented defaults."""

    def test_documented_defaults(self) -> None:
        s = settings()
        assert s.database_url == URL
        assert s.database_direct_url is None
        assert s.migration_url == URL
        assert (s.db_pool_size, s.db_max_overflow, s.db_pool_timeout, s.db_pool_recycle) == (5, 10, 30.0, 1800)
        assert s.db_reset_on_startup is False
        assert (s.db_statement_timeout, s.db_idle_in_transaction_timeout) == (0.0, 0.0)
        assert (s.db_wait_timeout, s.migration_lock_timeout, s.migration_ddl_lock_timeout) == (60.0, 300.0, 10.0)
        assert s.migration_database_ahead == "warn"
        assert (s.host, s.port, s.workers) == ("0.0.0.0", 8001, 1)
        assert (s.graceful_timeout, s.drain_delay, s.heartbeat_timeout) == (30.0, 0.0, 30.0)
        assert (s.restart_backoff_max, s.crash_loop_limit) == (30.0, 5)
        assert (s.keepalive_timeout, s.forwarded_allow_ips) == (5, "127.0.0.1")
        assert (s.jarlpm_env, s.jarlpm_app, s.jarlpm_app_dir) == ("production", "server:app", "backend")
        assert (s.log_format, s.log_level) == ("json", "info")
        assert s.development is False and s.embedded_database is False
        assert s.warnings == ()

    def test_blank_values_mean_default(self) -> None:
        s = settings(DB_POOL_SIZE="", PORT="  ", LOG_LEVEL="")
        assert (s.db_pool_size, s.port, s.log_level) == (5, 8001, "info")

    def test_direct_url_is_used_for_migrations(self) -> None:
        direct = "postgresql://app:s3cret-pw@db-primary:5432/jarlpm"
        s = settings(DATABASE_DIRECT_URL=direct)
        assert s.migration_url == direct and s.database_url == URL


class TestParsing:
    """Each variable is parsed to its type; whitespace and case do not matter."""

    def test_numbers(self) -> None:
        s = settings(DB_POOL_SIZE=" 20 ", DB_MAX_OVERFLOW="0", DB_POOL_TIMEOUT="2.5", DB_POOL_RECYCLE="-1",
                     DB_STATEMENT_TIMEOUT="15", DB_WAIT_TIMEOUT="0", PORT="65535", WORKERS="4",
                     GRACEFUL_TIMEOUT="0.5", CRASH_LOOP_LIMIT="1", KEEPALIVE_TIMEOUT="75")
        assert (s.db_pool_size, s.db_max_overflow, s.db_pool_timeout, s.db_pool_recycle) == (20, 0, 2.5, -1)
        assert (s.db_statement_timeout, s.db_wait_timeout) == (15.0, 0.0)
        assert (s.port, s.workers, s.graceful_timeout, s.crash_loop_limit, s.keepalive_timeout) == (
            65535, 4, 0.5, 1, 75)

    @pytest.mark.parametrize("text", ["1", "true", "TRUE", "yes", "on"])
    def test_true_booleans(self, text: str) -> None:
        assert settings(JARLPM_ENV="development", DB_RESET_ON_STARTUP=text).db_reset_on_startup is True

    @pytest.mark.parametrize("text", ["0", "false", "No", "off"])
    def test_false_booleans(self, text: str) -> None:
        assert settings(DB_RESET_ON_STARTUP=text).db_reset_on_startup is False

    def test_choices_are_case_insensitive(self) -> None:
        s = settings(LOG_FORMAT="Console", LOG_LEVEL="DEBUG", JARLPM_ENV="Development",
                     MIGRATION_DATABASE_AHEAD="REFUSE")
        assert (s.log_format, s.log_level, s.jarlpm_env, s.migration_database_ahead) == (
            "console", "debug", "development", "refuse")

    @pytest.mark.parametrize("host", ["127.0.0.1", "::", "[::1]", "localhost", "api-1.internal"])
    def test_hosts(self, host: str) -> None:
        assert settings(HOST=host).host == host.strip("[]")

    def test_app_import_string(self) -> None:
        s = settings(JARLPM_APP="sampleapp:app", JARLPM_APP_DIR="/srv/apps")
        assert (s.jarlpm_app, s.jarlpm_app_dir) == ("sampleapp:app", "/srv/apps")


class TestInvalidValues:
    """A bad value names the variable, says what is wrong and what is expected."""

    def test_not_a_number(self) -> None:
        p = only_problem(DB_POOL_SIZE="abc")
        assert p.variable == "DB_POOL_SIZE"
        assert "'abc'" in p.problem and "whole number" in p.problem
        assert p.expected == "a whole number from 1 to 1000"

    def test_fraction_where_a_whole_number_is_needed(self) -> None:
        assert only_problem(WORKERS="1.5").variable == "WORKERS"

    def test_port_out_of_range(self) -> None:
        p = only_problem(PORT="70000")
        assert (p.variable, p.problem) == ("PORT", "is 70000, out of range")
        assert p.expected == "a whole number from 1 to 65535"

    def test_zero_workers(self) -> None:
        p = only_problem(WORKERS="0")
        assert p.variable == "WORKERS" and "out of range" in p.problem

    def test_seconds_out_of_range(self) -> None:
        p = only_problem(HEARTBEAT_TIMEOUT="0.5")
        assert p.variable == "HEARTBEAT_TIMEOUT"
        assert p.expected == "a number of seconds from 1 to 3600"

    @pytest.mark.parametrize("text", ["nan", "inf", "-3"])
    def test_non_finite_or_negative_seconds(self, text: str) -> None:
        assert only_problem(DB_POOL_TIMEOUT=text).variable == "DB_POOL_TIMEOUT"

    def test_not_a_boolean(self) -> None:
        p = only_problem(DB_RESET_ON_STARTUP="maybe")
        assert (p.variable, p.expected) == ("DB_RESET_ON_STARTUP", "true or false")

    def test_not_one_of_the_choices(self) -> None:
        p = only_problem(LOG_FORMAT="xml")
        assert (p.variable, p.expected) == ("LOG_FORMAT", "one of json, console")

    def test_cgroup_mode(self) -> None:
        """JARLPM_CGROUP is auto (the default) or off; anything else is refused."""
        assert (settings().jarlpm_cgroup, settings(JARLPM_CGROUP="OFF").jarlpm_cgroup) == ("auto", "off")
        p = only_problem(JARLPM_CGROUP="yes")
        assert (p.variable, p.expected) == ("JARLPM_CGROUP", "one of auto, off")

    def test_unknown_environment(self) -> None:
        p = only_problem(JARLPM_ENV="staging")
        assert (p.variable, p.expected) == ("JARLPM_ENV", "one of production, development")

    def test_bad_host(self) -> None:
        assert only_problem(HOST="not a host!").variable == "HOST"

    def test_app_without_attribute(self) -> None:
        p = only_problem(JARLPM_APP="server")
        assert p.variable == "JARLPM_APP" and "MODULE:ATTRIBUTE" in p.expected

    def test_problem_reads_as_a_sentence(self) -> None:
        p = only_problem(PORT="70000")
        assert str(p) == "PORT is 70000, out of range; expected a whole number from 1 to 65535"
        assert p.as_dict() == {"variable": "PORT", "problem": "is 70000, out of range",
                               "expected": "a whole number from 1 to 65535"}


class TestAllProblemsTogether:
    """Every problem is found in one pass and reported in one ConfigError."""

    def test_missing_url_and_bad_pool_size(self) -> None:
        found = problems({"DB_POOL_SIZE": "abc"})
        assert [p.variable for p in found] == ["DATABASE_URL", "DB_POOL_SIZE"]
        assert found[0].problem == "is not set"

    def test_many_at_once(self) -> None:
        found = problems({"DATABASE_URL": URL, "PORT": "70000", "WORKERS": "0", "LOG_LEVEL": "loud",
                          "DB_RESET_ON_STARTUP": "perhaps", "DB_POOL_TIMEOUT": "soon"})
        assert {p.variable for p in found} == {"PORT", "WORKERS", "LOG_LEVEL", "DB_RESET_ON_STARTUP",
                                               "DB_POOL_TIMEOUT"}

    def test_message_lists_every_problem(self) -> None:
        with pytest.raises(ConfigError) as info:
            load_settings({"PORT": "0"})
        assert "DATABASE_URL is not set" in str(info.value)
        assert "PORT is 0, out of range" in str(info.value)


class TestEnvironments:
    """Development may run an embedded database and reset it; production may not."""

    def test_reset_refused_in_production(self) -> None:
        p = only_problem(DB_RESET_ON_STARTUP="true")
        assert p.variable == "DB_RESET_ON_STARTUP"
        assert "JARLPM_ENV=production" in p.problem and "development" in p.expected

    def test_reset_allowed_in_development(self) -> None:
        assert settings(JARLPM_ENV="development", DB_RESET_ON_STARTUP="true").db_reset_on_startup is True

    def test_development_without_url_embeds_a_database(self) -> None:
        s = load_settings({"JARLPM_ENV": "development"})
        assert s.database_url is None and s.development and s.embedded_database

    def test_development_with_url_uses_it(self) -> None:
        s = settings(JARLPM_ENV="development")
        assert s.development and not s.embedded_database

    def test_with_database_points_at_the_embedded_cluster(self) -> None:
        local = "postgresql://jarlpm@127.0.0.1:5999/jarlpm"
        s = load_settings({"JARLPM_ENV": "development"}).with_database(local)
        assert s.database_url == local and s.migration_url == local and not s.embedded_database

    def test_production_without_url_is_an_error(self) -> None:
        found = problems({})
        assert [p.variable for p in found] == ["DATABASE_URL"]

    def test_leak_threshold_default_depends_on_environment(self) -> None:
        assert settings().db_leak_threshold == 0.0
        assert settings(JARLPM_ENV="development").db_leak_threshold == 30.0
        assert settings(JARLPM_ENV="development", DB_LEAK_THRESHOLD="5").db_leak_threshold == 5.0


class TestUrlFromFile:
    """DATABASE_URL_FILE (a container secret) is read, and its problems are reported as config errors."""

    def test_read_and_stripped(self, tmp_path: Path) -> None:
        secret = tmp_path / "db_url"
        secret.write_text(URL + "\n", encoding="utf-8")
        assert load_settings({"DATABASE_URL_FILE": str(secret)}).database_url == URL

    def test_direct_url_file(self, tmp_path: Path) -> None:
        secret = tmp_path / "direct"
        secret.write_text(URL, encoding="utf-8")
        s = load_settings({"DATABASE_URL": URL, "DATABASE_DIRECT_URL_FILE": str(secret)})
        assert s.database_direct_url == URL

    def test_missing_file(self, tmp_path: Path) -> None:
        missing = tmp_path / "nope"
        found = problems({"DATABASE_URL_FILE": str(missing)})
        assert len(found) == 1
        assert found[0].variable == "DATABASE_URL_FILE"
        assert "cannot be read" in found[0].problem and "No such file" in found[0].problem

    def test_directory_instead_of_file(self, tmp_path: Path) -> None:
        found = problems({"DATABASE_URL_FILE": str(tmp_path)})
        assert [p.variable for p in found] == ["DATABASE_URL_FILE"]

    def test_unreadable_file(self, tmp_path: Path) -> None:
        secret = tmp_path / "db_url"
        secret.write_text(URL, encoding="utf-8")
        secret.chmod(0)
        try:
            if _readable(secret):
                pytest.skip("running as root: mode 000 does not stop reading")
            found = problems({"DATABASE_URL_FILE": str(secret)})
            assert "Permission denied" in found[0].problem
        finally:
            secret.chmod(0o600)

    def test_file_that_is_not_text(self, tmp_path: Path) -> None:
        secret = tmp_path / "db_url"
        secret.write_bytes(b"\xff\xfepostgresql")
        found = problems({"DATABASE_URL_FILE": str(secret)})
        assert [p.variable for p in found] == ["DATABASE_URL_FILE"]
        assert "UTF-8" in found[0].problem

    def test_empty_file(self, tmp_path: Path) -> None:
        secret = tmp_path / "db_url"
        secret.write_text("\n", encoding="utf-8")
        found = problems({"DATABASE_URL_FILE": str(secret)})
        assert [p.variable for p in found] == ["DATABASE_URL_FILE"]
        assert "empty" in found[0].problem

    def test_both_url_and_file(self, tmp_path: Path) -> None:
        secret = tmp_path / "db_url"
        secret.write_text(URL, encoding="utf-8")
        found = problems({"DATABASE_URL": URL, "DATABASE_URL_FILE": str(secret)})
        assert len(found) == 1
        assert "both set" in found[0].problem

    def test_invalid_url_in_file_names_the_file(self, tmp_path: Path) -> None:
        secret = tmp_path / "db_url"
        secret.write_text("mysql://app:s3cret-pw@db/jarlpm", encoding="utf-8")
        found = problems({"DATABASE_URL_FILE": str(secret)})
        assert found[0].variable == "DATABASE_URL_FILE's content"
        assert "s3cret-pw" not in str(found[0])


def _readable(path: Path) -> bool:
    try:
        path.read_bytes()
    except PermissionError:
        return False
    return True


class TestUrlValidation:
    """A bad URL is a config error whose text never contains the password."""

    @pytest.mark.parametrize(("url", "fragment"), [
        ("mysql://app:s3cret-pw@db/jarlpm", "has scheme 'mysql'"),
        ("postgresql+asyncpg://app:s3cret-pw@db/jarlpm", "has scheme 'postgresql+asyncpg'"),
        ("postgresql://app:s3cret-pw@db", "names no database"),
        ("postgresql://app:s3cret-pw@db/", "names no database"),
        ("s3cret-pw", "is not a URL"),
        ("postgresql://app:s3cret-pw@db:54x2/jarlpm", "port that is not a number"),
    ])
    def test_rejected_without_the_password(self, url: str, fragment: str) -> None:
        with pytest.raises(ConfigError) as info:
            load_settings({"DATABASE_URL": url})
        (problem,) = info.value.problems
        assert problem.variable == "DATABASE_URL"
        assert fragment in problem.problem
        assert "postgres" in problem.expected
        for text in (str(info.value), repr(info.value.problems), str(info.value.args)):
            assert "s3cret-pw" not in text

    def test_rejected_url_password_is_still_registered(self) -> None:
        with pytest.raises(ConfigError):
            load_settings({"DATABASE_URL": "mysql://app:s3cret-pw@db/jarlpm"})
        assert dburl.redact("login s3cret-pw failed") == "login *** failed"

    @pytest.mark.parametrize("url", [
        "postgres://app:pw@db/jarlpm",
        "postgresql://app:pw@db/jarlpm?sslmode=require",
        "postgresql+psycopg2://app@db:6432/jarlpm",
    ])
    def test_accepted(self, url: str) -> None:
        assert load_settings({"DATABASE_URL": url}).database_url == url


class TestUnknownVariables:
    """A misspelt DB_*/JARLPM_* name gets a "did you mean" warning instead of being lost silently."""

    @pytest.mark.parametrize(("name", "suggestion"), [
        ("DB_POOLSIZE", "DB_POOL_SIZE"),
        ("JARLPM_ENVV", "JARLPM_ENV"),
        ("DB_MAX_OVERFLOWS", "DB_MAX_OVERFLOW"),
        ("MIGRATION_LOCK_TIMEOT", "MIGRATION_LOCK_TIMEOUT"),
        ("DATABASE_URL_FIEL", "DATABASE_URL_FILE"),
    ])
    def test_suggestion(self, name: str, suggestion: str) -> None:
        assert settings(**{name: "1"}).warnings == ({"variable": name, "suggestion": suggestion},)

    def test_no_close_match(self) -> None:
        assert settings(DB_XYZZY="1").warnings == ({"variable": "DB_XYZZY", "suggestion": ""},)

    def test_known_internal_and_foreign_names_are_quiet(self) -> None:
        s = settings(JARLPM_STATE_DIR="/run/jarlpm", JARLPM_WORKER="0", DATABASE_HOST="db",
                     PATH="/usr/bin", TEST_DATABASE_URL=URL)
        assert s.warnings == ()

    def test_error_carries_the_warnings(self) -> None:
        with pytest.raises(ConfigError) as info:
            load_settings({"DB_POOLSIZE": "20"})
        assert info.value.unknown == ({"variable": "DB_POOLSIZE", "suggestion": "DB_POOL_SIZE"},)

    def test_known_variables_are_quiet(self) -> None:
        assert not settings(**{name: "" for name in config.KNOWN_VARIABLES if name != "DATABASE_URL"}).warnings


class TestLogSettingsOnly:
    """LOG_FORMAT/LOG_LEVEL fall back to json/info, so even a config error is logged."""

    def test_defaults(self) -> None:
        assert log_settings_only({}) == ("json", "info")

    def test_valid_values(self) -> None:
        assert log_settings_only({"LOG_FORMAT": " Console ", "LOG_LEVEL": "DEBUG"}) == ("console", "debug")

    def test_invalid_values_fall_back(self) -> None:
        assert log_settings_only({"LOG_FORMAT": "xml", "LOG_LEVEL": "loud"}) == ("json", "info")


class TestVariableTable:
    """The one table of variables (supervisor.contract.variables) and README.md's agree."""

    def test_every_variable_is_in_the_readme(self) -> None:
        """Each variable a user may set has a row in README.md's table."""
        readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
        rows = [line for line in readme.splitlines() if line.startswith("| `")]
        missing = [name for name in config.KNOWN_VARIABLES if not any(f"`{name}`" in row for row in rows)]
        assert missing == []

    def test_every_rule_has_a_documented_default(self) -> None:
        """A rule's default, as written for people, is the value load_settings gives an unset variable."""
        from supervisor.contract import variables

        s = settings()
        for name, rule in variables.RULES.items():
            if isinstance(rule, (variables.Whole, variables.Seconds)):
                assert float(variables.KNOWN_VARIABLES[name].split()[0]) == getattr(s, name.lower()), name

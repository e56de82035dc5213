"""Parse and validate every environment variable at once, before anything else happens.

Pure logic: ``load_settings(env)`` takes a mapping and returns ``Settings`` or raises
``ConfigError`` listing *every* problem, each naming the variable, what is wrong with
the value and what is expected.  The only effects are reading ``*_FILE`` secrets and
checking that alembic.ini exists (both injectable).
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supervisor.contract import dburl, paths

ENVIRONMENTS = ("production", "development")
LOG_FORMATS = ("json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")
AHEAD_POLICIES = ("warn", "refuse")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Problem:
    """One invalid variable: ``variable`` ``problem``; expected ``expected``."""

    variable: str
    problem: str
    expected: str

    def as_dict(self) -> dict[str, str]:
        return {"variable": self.variable, "problem": self.problem, "expected": self.expected}

    def __str__(self) -> str:
        return f"{self.variable} {self.problem}; expected {self.expected}"


class ConfigError(Exception):
    """All the configuration problems found, reported together."""

    def __init__(self, problems: list[Problem], unknown: tuple[dict[str, str], ...] = ()) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems
        self.unknown = unknown


@dataclass(frozen=True)
class Settings:
    """The validated configuration; field names follow the environment variables."""

    database_url: str | None
    database_direct_url: str | None
    db_pool_size: int = 5
    db_max_overflow: int = 10
    db_pool_timeout: float = 30.0
    db_pool_recycle: int = 1800
    db_reset_on_startup: bool = False
    db_statement_timeout: float = 0.0
    db_idle_in_transaction_timeout: float = 0.0
    db_leak_threshold: float = 0.0
    db_wait_timeout: float = 60.0
    migration_lock_timeout: float = 300.0
    migration_ddl_lock_timeout: float = 10.0
    migration_database_ahead: str = "warn"
    host: str = "0.0.0.0"
    port: int = 8001
    workers: int = 1
    graceful_timeout: float = 30.0
    drain_delay: float = 0.0
    heartbeat_timeout: float = 30.0
    restart_backoff_max: float = 30.0
    crash_loop_limit: int = 5
    keepalive_timeout: int = 5
    forwarded_allow_ips: str = "127.0.0.1"
    jarlpm_env: str = "production"
    jarlpm_app: str = "server:app"
    jarlpm_app_dir: str = "backend"
    log_format: str = "json"
    log_level: str = "info"
    log_buffer_kb: int = 4096
    alembic_ini: str = "alembic.ini"
    warnings: tuple[dict[str, str], ...] = field(default=(), compare=False)

    @property
    def development(self) -> bool:
        return self.jarlpm_env == "development"

    @property
    def embedded_database(self) -> bool:
        """Development mode without DATABASE_URL: the supervisor runs its own PostgreSQL."""
        return self.development and not self.database_url

    @property
    def migration_url(self) -> str | None:
        """The URL for migrations and the migration lock (direct, bypassing PgBouncer)."""
        return self.database_direct_url or self.database_url

    def with_database(self, url: str) -> Settings:
        """A copy pointing at ``url`` (development mode's embedded database)."""
        from dataclasses import replace

        return replace(self, database_url=url, database_direct_url=None)


# name -> (default as the user would write it, parser key).  Order is the README's.
KNOWN_VARIABLES: dict[str, str] = {
    "DATABASE_URL": "required in production",
    "DATABASE_DIRECT_URL": "= DATABASE_URL",
    "DATABASE_URL_FILE": "",
    "DATABASE_DIRECT_URL_FILE": "",
    "DB_POOL_SIZE": "5",
    "DB_MAX_OVERFLOW": "10",
    "DB_POOL_TIMEOUT": "30",
    "DB_POOL_RECYCLE": "1800",
    "DB_RESET_ON_STARTUP": "false",
    "DB_STATEMENT_TIMEOUT": "0",
    "DB_IDLE_IN_TRANSACTION_TIMEOUT": "0",
    "DB_LEAK_THRESHOLD": "0 in production, 30 in development",
    "DB_WAIT_TIMEOUT": "60",
    "MIGRATION_LOCK_TIMEOUT": "300",
    "MIGRATION_DDL_LOCK_TIMEOUT": "10",
    "MIGRATION_DATABASE_AHEAD": "warn",
    "HOST": "0.0.0.0",
    "PORT": "8001",
    "WORKERS": "1",
    "GRACEFUL_TIMEOUT": "30",
    "DRAIN_DELAY": "0",
    "HEARTBEAT_TIMEOUT": "30",
    "RESTART_BACKOFF_MAX": "30",
    "CRASH_LOOP_LIMIT": "5",
    "KEEPALIVE_TIMEOUT": "5",
    "FORWARDED_ALLOW_IPS": "127.0.0.1",
    "JARLPM_ENV": "production",
    "JARLPM_APP": "server:app",
    "JARLPM_APP_DIR": "backend",
    "LOG_FORMAT": "json",
    "LOG_LEVEL": "info",
    "LOG_BUFFER_KB": "4096",
}

# Variables the supervisor sets or reads for its own machinery; not user configuration
# but not typos either.
_INTERNAL = {
    "JARLPM_PG_BIN",
    "JARLPM_ALEMBIC_INI",
    "JARLPM_STATE_DIR",
    "JARLPM_DATA_DIR",
    "JARLPM_WORKER",
    "JARLPM_READY_PATH",
    "JARLPM_POOL_INSTRUMENTATION",
    "JARLPM_SUPERVISOR_PID",
    "JARLPM_PROCESS_TAG",
}

_PREFIXES = ("DB_", "JARLPM_", "DATABASE_", "MIGRATION_")


class _Reader:
    """Collects problems while reading variables, so every one is reported at once."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[Problem] = []

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def _number(
        self, name: str, default: float, convert: Callable[[str], Any], kind: str,
        low: float, high: float, expected: str,
    ) -> Any:
        text = self.raw(name)
        if text is None:
            return default
        try:
            value = convert(text)
        except ValueError:
            self.problems.append(Problem(name, f"is {text!r}, which is not {kind}", expected))
            return default
        if not (low <= value <= high):
            self.problems.append(Problem(name, f"is {text}, out of range", expected))
            return default
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        expected = f"a whole number from {low} to {high}"
        return int(self._number(name, default, int, "a whole number", low, high, expected))

    def seconds(self, name: str, default: float, low: float, high: float) -> float:
        expected = f"a number of seconds from {low:g} to {high:g}"
        return float(self._number(name, default, float, "a number", low, high, expected))

    def boolean(self, name: str, default: bool) -> bool:
        text = self.raw(name)
        if text is None:
            return default
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        self.problems.append(Problem(name, f"is {text!r}, not a boolean", "true or false"))
        return default

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        text = self.raw(name)
        if text is None:
            return default
        if text.lower() not in choices:
            self.problems.append(Problem(name, f"is {text!r}", "one of " + ", ".join(choices)))
            return default
        return text.lower()

    def secret_url(self, name: str, read_file: Callable[[str], str]) -> str | None:
        """A database URL from ``NAME`` or ``NAME_FILE`` (container secrets), validated."""
        direct, file_name = self.raw(name), self.raw(name + "_FILE")
        if direct and file_name:
            self.problems.append(
                Problem(name, f"and {name}_FILE are both set", f"only one of {name} or {name}_FILE")
            )
            return None
        value = direct
        if file_name:
            try:
                value = read_file(file_name).strip()
            except OSError as exc:
                reason = exc.strerror or type(exc).__name__
                self.problems.append(
                    Problem(f"{name}_FILE", f"names {file_name!r}, which cannot be read ({reason})",
                            "the path of a readable file holding the URL")
                )
                return None
            except UnicodeDecodeError:
                self.problems.append(
                    Problem(f"{name}_FILE", f"names {file_name!r}, which is not UTF-8 text",
                            "a text file holding the URL")
                )
                return None
            if not value:
                self.problems.append(
                    Problem(f"{name}_FILE", f"names {file_name!r}, which is empty",
                            "a file holding postgresql://USER:PASSWORD@HOST:PORT/DBNAME")
                )
                return None
        if value is None:
            return None
        dburl.register_url_secrets(value)
        try:
            dburl.validate(value)
        except dburl.InvalidDatabaseUrl as exc:
            shown = name + ("_FILE's content" if file_name else "")
            self.problems.append(Problem(shown, str(exc).split(";")[0], str(exc).split("; expected ")[-1]))
            return None
        return value


def _check_host(reader: _Reader) -> str:
    host = reader.raw("HOST") or "0.0.0.0"
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not host.replace("-", "").replace(".", "").isalnum():
            reader.problems.append(
                Problem("HOST", f"is {host!r}, not an address or host name",
                        "an IPv4/IPv6 address such as 0.0.0.0 or ::, or a host name")
            )
            return "0.0.0.0"
    return host


def _unknown_variable_warnings(env: Mapping[str, str]) -> tuple[dict[str, str], ...]:
    """'Did you mean' warnings for DB_*/JARLPM_* names nobody reads (typos lose settings silently)."""
    known = set(KNOWN_VARIABLES) | _INTERNAL
    found = []
    for name in sorted(env):
        if name in known or not name.startswith(_PREFIXES):
            continue
        if name.startswith("DATABASE_") and not name.startswith(("DATABASE_URL", "DATABASE_DIRECT")):
            continue
        close = difflib.get_close_matches(name, list(KNOWN_VARIABLES), n=1, cutoff=0.7)
        found.append({"variable": name, "suggestion": close[0] if close else ""})
    return tuple(found)


def _read_text(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


def load_settings(env: Mapping[str, str], read_file: Callable[[str], str] = _read_text,
                  is_file: Callable[[Path], bool] = Path.is_file) -> Settings:
    """Validate every variable; raise ``ConfigError`` with all problems, or return ``Settings``."""
    r = _Reader(env)
    jarlpm_env = r.choice("JARLPM_ENV", "production", ENVIRONMENTS)
    development = jarlpm_env == "development"
    database_url = r.secret_url("DATABASE_URL", read_file)
    direct_url = r.secret_url("DATABASE_DIRECT_URL", read_file)
    if database_url is None and not development and not any(p.variable.startswith("DATABASE_URL") for p in r.problems):
        r.problems.append(
            Problem("DATABASE_URL", "is not set",
                    "postgresql://USER:PASSWORD@HOST:PORT/DBNAME (or DATABASE_URL_FILE, "
                    "or JARLPM_ENV=development for an embedded database)")
        )
    reset = r.boolean("DB_RESET_ON_STARTUP", False)
    if reset and not development:
        r.problems.append(
            Problem("DB_RESET_ON_STARTUP", f"is true while JARLPM_ENV={jarlpm_env}",
                    "false outside JARLPM_ENV=development: a reset drops every table")
        )
    settings = Settings(
        database_url=database_url,
        database_direct_url=direct_url,
        db_pool_size=r.integer("DB_POOL_SIZE", 5, 1, 1000),
        db_max_overflow=r.integer("DB_MAX_OVERFLOW", 10, 0, 1000),
        db_pool_timeout=r.seconds("DB_POOL_TIMEOUT", 30, 0.1, 3600),
        db_pool_recycle=r.integer("DB_POOL_RECYCLE", 1800, -1, 86400 * 7),
        db_reset_on_startup=reset,
        db_statement_timeout=r.seconds("DB_STATEMENT_TIMEOUT", 0, 0, 86400),
        db_idle_in_transaction_timeout=r.seconds("DB_IDLE_IN_TRANSACTION_TIMEOUT", 0, 0, 86400),
        db_leak_threshold=r.seconds("DB_LEAK_THRESHOLD", 30 if development else 0, 0, 86400),
        db_wait_timeout=r.seconds("DB_WAIT_TIMEOUT", 60, 0, 86400),
        migration_lock_timeout=r.seconds("MIGRATION_LOCK_TIMEOUT", 300, 0, 86400),
        migration_ddl_lock_timeout=r.seconds("MIGRATION_DDL_LOCK_TIMEOUT", 10, 0, 3600),
        migration_database_ahead=r.choice("MIGRATION_DATABASE_AHEAD", "warn", AHEAD_POLICIES),
        host=_check_host(r),
        port=r.integer("PORT", 8001, 1, 65535),
        workers=r.integer("WORKERS", 1, 1, 64),
        graceful_timeout=r.seconds("GRACEFUL_TIMEOUT", 30, 0, 3600),
        drain_delay=r.seconds("DRAIN_DELAY", 0, 0, 3600),
        heartbeat_timeout=r.seconds("HEARTBEAT_TIMEOUT", 30, 1, 3600),
        restart_backoff_max=r.seconds("RESTART_BACKOFF_MAX", 30, 0.1, 3600),
        crash_loop_limit=r.integer("CRASH_LOOP_LIMIT", 5, 1, 1000),
        keepalive_timeout=r.integer("KEEPALIVE_TIMEOUT", 5, 1, 3600),
        forwarded_allow_ips=r.raw("FORWARDED_ALLOW_IPS") or "127.0.0.1",
        jarlpm_env=jarlpm_env,
        jarlpm_app=_check_app(r),
        jarlpm_app_dir=r.raw("JARLPM_APP_DIR") or "backend",
        log_format=r.choice("LOG_FORMAT", "json", LOG_FORMATS),
        log_level=r.choice("LOG_LEVEL", "info", LOG_LEVELS),
        log_buffer_kb=r.integer("LOG_BUFFER_KB", 4096, 16, 1024 * 1024),
        alembic_ini=_check_alembic_ini(r, env, is_file),
        warnings=_unknown_variable_warnings(env),
    )
    if r.problems:
        raise ConfigError(r.problems, settings.warnings)
    return settings


def _check_alembic_ini(reader: _Reader, env: Mapping[str, str], is_file: Callable[[Path], bool]) -> str:
    """The Alembic configuration every phase and server needs: missing is a configuration error."""
    path = paths.alembic_ini(env)
    if not is_file(path):
        reader.problems.append(
            Problem(paths.ALEMBIC_INI_VARIABLE, f"is unset and {path} does not exist" if not
                    env.get(paths.ALEMBIC_INI_VARIABLE) else f"names {path}, which does not exist",
                    "the path of the project's alembic.ini, or run jarlpm from the directory that "
                    "holds alembic.ini and the migrations")
        )
    return str(path)


def _check_app(reader: _Reader) -> str:
    app = reader.raw("JARLPM_APP") or "server:app"
    module, _, attr = app.partition(":")
    if not module or not attr:
        reader.problems.append(
            Problem("JARLPM_APP", f"is {app!r}", "an import string MODULE:ATTRIBUTE such as server:app")
        )
    return app


def log_settings_only(env: Mapping[str, str]) -> tuple[str, str]:
    """LOG_FORMAT/LOG_LEVEL with fallbacks, so even a config error is logged as asked."""
    fmt = (env.get("LOG_FORMAT") or "json").strip().lower()
    level = (env.get("LOG_LEVEL") or "info").strip().lower()
    return (fmt if fmt in LOG_FORMATS else "json", level if level in LOG_LEVELS else "info")

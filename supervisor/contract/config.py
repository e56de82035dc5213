"""Validate every environment variable at once, before anything else happens, into ``Settings``.

Pure logic: ``load_settings(env)`` takes a mapping and returns ``Settings`` or raises
``ConfigError`` listing *every* problem, each naming the variable, what is wrong with
the value and what is expected.  The names, defaults and rules are ``variables``'s and
the reading ``envread``'s (shared with the backend); the rules that span variables
(a reset only in development, DATABASE_URL required in production, the host, the app,
alembic.ini) are here.  The only effects are reading ``*_FILE`` secrets and checking
that alembic.ini exists (both injectable).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from supervisor.contract import conventions, paths
from supervisor.contract.envread import ConfigError, Problem, Reader, read_text, unknown_variable_warnings
from supervisor.contract.variables import KNOWN_VARIABLES, LOG_FORMATS, LOG_LEVELS

# Re-exported: callers catch config.ConfigError and read config.Problem / KNOWN_VARIABLES.
__all__ = ["KNOWN_VARIABLES", "ConfigError", "Problem", "Settings", "load_settings", "log_settings_only"]


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
    jarlpm_standby: bool = False  # one more server process, app imported, kept in reserve
    jarlpm_cgroup: str = "auto"  # a cgroup v2 leaf per server process where ours is writable; "off"
    jarlpm_fork_server: bool = True  # replacements forked from a process that imported the app
    keepalive_timeout: int = 5
    max_requests: int = 0  # 0: off
    max_requests_jitter: int = 0
    max_worker_memory_mb: int = 0  # 0: off
    reload: bool = False  # RELOAD: watch the app and the migrations (on by default in development)
    max_request_body_bytes: int = 1024 * 1024
    forwarded_allow_ips: str = "127.0.0.1"
    jarlpm_env: str = "production"
    jarlpm_app: str = "server:app"
    jarlpm_app_dir: str = "backend"
    log_format: str = "json"
    log_level: str = "info"
    log_buffer_kb: int = 4096
    alembic_ini: str = "alembic.ini"
    metrics_port: int | None = None  # METRICS_PORT (conventions.py): None is off
    metrics_host: str = "0.0.0.0"
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


def _check_host(reader: Reader) -> str:
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


def load_settings(env: Mapping[str, str], read_file: Callable[[str], str] = read_text,
                  is_file: Callable[[Path], bool] = Path.is_file) -> Settings:
    """Validate every variable; raise ``ConfigError`` with all problems, or return ``Settings``."""
    r = Reader(env, read_file)
    jarlpm_env = r.value("JARLPM_ENV")
    development = jarlpm_env == "development"
    database_url = r.value("DATABASE_URL")
    direct_url = r.value("DATABASE_DIRECT_URL")
    if database_url is None and not development and not any(p.variable.startswith("DATABASE_URL") for p in r.problems):
        r.problems.append(
            Problem("DATABASE_URL", "is not set",
                    "postgresql://USER:PASSWORD@HOST:PORT/DBNAME (or DATABASE_URL_FILE, "
                    "or JARLPM_ENV=development for an embedded database)")
        )
    reset = r.value("DB_RESET_ON_STARTUP")
    if reset and not development:
        r.problems.append(
            Problem("DB_RESET_ON_STARTUP", f"is true while JARLPM_ENV={jarlpm_env}",
                    "false outside JARLPM_ENV=development: a reset drops every table")
        )
    settings = Settings(
        database_url=database_url,
        database_direct_url=direct_url,
        db_pool_size=r.value("DB_POOL_SIZE"),
        db_max_overflow=r.value("DB_MAX_OVERFLOW"),
        db_pool_timeout=r.value("DB_POOL_TIMEOUT"),
        db_pool_recycle=r.value("DB_POOL_RECYCLE"),
        db_reset_on_startup=reset,
        db_statement_timeout=r.value("DB_STATEMENT_TIMEOUT"),
        db_idle_in_transaction_timeout=r.value("DB_IDLE_IN_TRANSACTION_TIMEOUT"),
        db_leak_threshold=r.value("DB_LEAK_THRESHOLD"),
        db_wait_timeout=r.value("DB_WAIT_TIMEOUT"),
        migration_lock_timeout=r.value("MIGRATION_LOCK_TIMEOUT"),
        migration_ddl_lock_timeout=r.value("MIGRATION_DDL_LOCK_TIMEOUT"),
        migration_database_ahead=r.value("MIGRATION_DATABASE_AHEAD"),
        host=_check_host(r),
        port=r.value("PORT"),
        workers=conventions.workers(r),
        graceful_timeout=r.value("GRACEFUL_TIMEOUT"),
        drain_delay=r.value("DRAIN_DELAY"),
        heartbeat_timeout=r.value("HEARTBEAT_TIMEOUT"),
        restart_backoff_max=r.value("RESTART_BACKOFF_MAX"),
        crash_loop_limit=r.value("CRASH_LOOP_LIMIT"),
        jarlpm_standby=r.value("JARLPM_STANDBY"),
        jarlpm_cgroup=r.value("JARLPM_CGROUP"),
        jarlpm_fork_server=r.value("JARLPM_FORK_SERVER"),
        keepalive_timeout=r.value("KEEPALIVE_TIMEOUT"),
        max_requests=r.value("MAX_REQUESTS"),
        max_requests_jitter=r.value("MAX_REQUESTS_JITTER"),
        max_worker_memory_mb=r.value("MAX_WORKER_MEMORY_MB"),
        reload=r.value("RELOAD"),
        max_request_body_bytes=r.value("MAX_REQUEST_BODY_BYTES"),
        forwarded_allow_ips=r.raw("FORWARDED_ALLOW_IPS") or "127.0.0.1",
        jarlpm_env=jarlpm_env,
        jarlpm_app=_check_app(r),
        jarlpm_app_dir=r.raw("JARLPM_APP_DIR") or "backend",
        log_format=r.value("LOG_FORMAT"),
        log_level=r.value("LOG_LEVEL"),
        log_buffer_kb=r.value("LOG_BUFFER_KB"),
        alembic_ini=_check_alembic_ini(r, env, is_file),
        warnings=unknown_variable_warnings(env),
    )
    settings = replace(settings, metrics_port=conventions.metrics_port(r, settings.port),
                       metrics_host=conventions.metrics_host(r, settings.host))
    if r.problems:
        raise ConfigError(r.problems, settings.warnings)
    return settings


def _check_alembic_ini(reader: Reader, env: Mapping[str, str], is_file: Callable[[Path], bool]) -> str:
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


def _check_app(reader: Reader) -> str:
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

"""The environment variables, written once: every name, its default and its rule (type, range, choices).

``envread`` reads values by these rules, for the supervisor (``config.load_settings``),
the backend (``jarlpm.settings``, ``jarlpm.pool.options``) and ``alembic/env.py`` alike.

To add a variable: one line in ``RULES`` (or ``OTHER_VARIABLES`` for one with a
rule of its own in ``config``), a field of ``config.Settings``, and a row of
README.md's table.
"""

from __future__ import annotations

from dataclasses import dataclass

from supervisor.contract import conventions

ENVIRONMENTS = ("production", "development")
LOG_FORMATS = ("json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")
AHEAD_POLICIES = ("warn", "refuse")
CGROUP_MODES = ("auto", "off")

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


# -- the rules ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Whole:
    """A whole number from ``low`` to ``high``."""

    default: int
    low: int
    high: int


@dataclass(frozen=True)
class Seconds:
    """A number of seconds from ``low`` to ``high``; ``development`` is the default in development mode."""

    default: float
    low: float
    high: float
    development: float | None = None


@dataclass(frozen=True)
class Flag:
    """true/false (1/0, yes/no, on/off); ``development`` is the default in development mode."""

    default: bool
    development: bool | None = None


@dataclass(frozen=True)
class OneOf:
    """One of ``choices``, case-insensitive."""

    default: str
    choices: tuple[str, ...]


@dataclass(frozen=True)
class SecretUrl:
    """A database URL from ``NAME`` or from the file named by ``NAME_FILE`` (container secrets)."""

    documented: str  # its default, in words: which one applies when it is unset


Rule = Whole | Seconds | Flag | OneOf | SecretUrl

RULES: dict[str, Rule] = {
    "DATABASE_URL": SecretUrl("required in production"),
    "DATABASE_DIRECT_URL": SecretUrl("= DATABASE_URL"),
    "DB_POOL_SIZE": Whole(5, 1, 1000),
    "DB_MAX_OVERFLOW": Whole(10, 0, 1000),
    "DB_POOL_TIMEOUT": Seconds(30, 0.1, 3600),
    "DB_POOL_RECYCLE": Whole(1800, -1, 86400 * 7),
    "DB_RESET_ON_STARTUP": Flag(False),
    "DB_STATEMENT_TIMEOUT": Seconds(0, 0, 86400),
    "DB_IDLE_IN_TRANSACTION_TIMEOUT": Seconds(0, 0, 86400),
    "DB_LEAK_THRESHOLD": Seconds(0, 0, 86400, development=30),
    "DB_WAIT_TIMEOUT": Seconds(60, 0, 86400),
    "MIGRATION_LOCK_TIMEOUT": Seconds(300, 0, 86400),
    "MIGRATION_DDL_LOCK_TIMEOUT": Seconds(10, 0, 3600),
    "MIGRATION_DATABASE_AHEAD": OneOf("warn", AHEAD_POLICIES),
    "PORT": Whole(8001, 1, 65535),
    "WORKERS": Whole(1, 1, 64),
    "GRACEFUL_TIMEOUT": Seconds(30, 0, 3600),
    "DRAIN_DELAY": Seconds(0, 0, 3600),
    "HEARTBEAT_TIMEOUT": Seconds(30, 1, 3600),
    "RESTART_BACKOFF_MAX": Seconds(30, 0.1, 3600),
    "CRASH_LOOP_LIMIT": Whole(5, 1, 1000),
    "JARLPM_STANDBY": Flag(False),
    "JARLPM_CGROUP": OneOf("auto", CGROUP_MODES),
    "JARLPM_FORK_SERVER": Flag(True),
    "KEEPALIVE_TIMEOUT": Whole(5, 1, 3600),
    "MAX_REQUESTS": Whole(0, 0, 10**9),
    "MAX_REQUESTS_JITTER": Whole(0, 0, 10**9),
    "MAX_WORKER_MEMORY_MB": Whole(0, 0, 10**7),
    "RELOAD": Flag(False, development=True),
    "MAX_REQUEST_BODY_BYTES": Whole(1024 * 1024, 0, 2**31 - 1),
    "JARLPM_ENV": OneOf("production", ENVIRONMENTS),
    "LOG_FORMAT": OneOf("json", LOG_FORMATS),
    "LOG_LEVEL": OneOf("info", LOG_LEVELS),
    "LOG_BUFFER_KB": Whole(4096, 16, 1024 * 1024),
}

# Variables with a rule of their own (in ``config``): name -> default as README.md writes it.
OTHER_VARIABLES: dict[str, str] = {
    "DATABASE_URL_FILE": "",
    "DATABASE_DIRECT_URL_FILE": "",
    "HOST": "0.0.0.0",
    "FORWARDED_ALLOW_IPS": "127.0.0.1",
    "JARLPM_APP": "server:app",
    "JARLPM_APP_DIR": "backend",
    **conventions.KNOWN,  # WEB_CONCURRENCY, METRICS_PORT, METRICS_HOST
}


def documented_default(rule: Rule) -> str:
    """A rule's default as README.md's table writes it."""
    if isinstance(rule, SecretUrl):
        return rule.documented
    if isinstance(rule, Flag) and rule.development is not None:
        return (f"{'true' if rule.default else 'false'} in production, "
                f"{'true' if rule.development else 'false'} in development")
    if isinstance(rule, Flag):
        return "true" if rule.default else "false"
    if isinstance(rule, OneOf):
        return rule.default
    if isinstance(rule, Seconds) and rule.development is not None:
        return f"{rule.default:g} in production, {rule.development:g} in development"
    return str(rule.default) if isinstance(rule, Whole) else f"{rule.default:g}"


# Every variable a user may set: name -> documented default.
KNOWN_VARIABLES: dict[str, str] = {
    **{name: documented_default(rule) for name, rule in RULES.items()}, **OTHER_VARIABLES,
}

# Variables the supervisor sets or reads for its own machinery; not user configuration
# but not typos either.
INTERNAL = {
    "JARLPM_PG_BIN",
    "JARLPM_ALEMBIC_INI",
    "JARLPM_STATE_DIR",
    "JARLPM_DATA_DIR",
    "JARLPM_WORKER",
    "JARLPM_READY_PATH",
    "JARLPM_POOL_INSTRUMENTATION",
    "JARLPM_SUPERVISOR_PID",
    "JARLPM_PROCESS_TAG",
    "JARLPM_LEAF_CGROUP",
}

# Names in these families that are not known are probably typos.
PREFIXES = ("DB_", "JARLPM_", "DATABASE_", "MIGRATION_")

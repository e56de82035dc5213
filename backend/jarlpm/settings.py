"""The server's settings, read from the environment when the app starts (never at import).

Every variable is read by the contract's rules (``supervisor.contract.envread``), the
ones the supervisor validates before it starts a server: the same defaults, ranges and
words.  Run without the supervisor (plain ``uvicorn server:app``), a malformed value
stops the start with ``ConfigError`` naming the variable, the problem and what is
expected, like ``jarlpm run`` would, instead of serving with a value nobody chose.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from jarlpm.pool import options
from supervisor.contract import dburl, envread
from supervisor.contract.envread import ConfigError

# The name tests and callers catch; the contract's error, so its message is the supervisor's.
SettingsError = ConfigError

# backend/jarlpm/settings.py -> the repository root, where alembic.ini lives.
REPO_ROOT = Path(__file__).resolve().parent.parent.parent

VARIABLES = (
    "DATABASE_URL",
    "DB_POOL_SIZE",
    "DB_MAX_OVERFLOW",
    "DB_POOL_TIMEOUT",
    "DB_POOL_RECYCLE",
    "DB_STATEMENT_TIMEOUT",
    "DB_IDLE_IN_TRANSACTION_TIMEOUT",
)


@dataclass(frozen=True)
class Settings:
    """Everything the server reads from its environment; defaults match ``shared/DESIGN.md``."""

    database_url: str | None = None
    pool_size: int = 5
    max_overflow: int = 10
    pool_timeout_s: float = 30.0
    pool_recycle_s: int = 1800
    statement_timeout_s: float = 0.0
    idle_in_transaction_timeout_s: float = 0.0
    # A connection attempt to a host that drops packets would otherwise hang for
    # minutes (TCP retransmits); 5 s is ample on any network a server runs on.
    connect_timeout_s: int = 5
    # The readiness probe must answer well within a load balancer's probe timeout.
    ready_timeout_s: float = 3.0
    alembic_ini: Path = REPO_ROOT / "alembic.ini"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings: absent variables take defaults; malformed ones raise ``ConfigError``.

        The pool instrumentation's variables are checked here too, so that every
        problem is reported at start, together.
        """
        env = os.environ if environ is None else environ
        values = envread.read(env, (*VARIABLES, *options.VARIABLES))
        url = values["DATABASE_URL"]
        return cls(
            database_url=dburl.normalise(url) if url else None,
            pool_size=values["DB_POOL_SIZE"],
            max_overflow=values["DB_MAX_OVERFLOW"],
            pool_timeout_s=values["DB_POOL_TIMEOUT"],
            pool_recycle_s=values["DB_POOL_RECYCLE"],
            statement_timeout_s=values["DB_STATEMENT_TIMEOUT"],
            idle_in_transaction_timeout_s=values["DB_IDLE_IN_TRANSACTION_TIMEOUT"],
            alembic_ini=alembic_ini_path(env),
        )


def alembic_ini_path(environ: Mapping[str, str] | None = None) -> Path:
    """Return ``$JARLPM_ALEMBIC_INI``, else ``alembic.ini`` in the repository root."""
    env = os.environ if environ is None else environ
    explicit = env.get("JARLPM_ALEMBIC_INI", "").strip()
    return Path(explicit) if explicit else REPO_ROOT / "alembic.ini"

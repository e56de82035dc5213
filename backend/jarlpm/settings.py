"""The server's settings, read from the environment when the app starts (never at import)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from jarlpm.dburl import normalise_database_url, read_env_url

N = TypeVar("N", int, float)

# backend/jarlpm/settings.py -> the repository root, where alembic.ini lives.
REPO_ROOT = Path(__file__).resolve().parent.parent.parent


class SettingsError(ValueError):
    """An environment variable holds a value the server cannot use; the message names it."""


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
        """Read the settings: absent variables take defaults; malformed ones raise SettingsError."""
        env = os.environ if environ is None else environ
        try:
            url = read_env_url("DATABASE_URL", env)
        except OSError as exc:
            raise SettingsError(f"DATABASE_URL_FILE: cannot read the file: {exc.strerror}") from exc
        return cls(
            database_url=normalise_database_url(url) if url else None,
            pool_size=_number(env, "DB_POOL_SIZE", 5, int, minimum=1),
            max_overflow=_number(env, "DB_MAX_OVERFLOW", 10, int, minimum=0),
            pool_timeout_s=_number(env, "DB_POOL_TIMEOUT", 30.0, float, minimum=0),
            pool_recycle_s=_number(env, "DB_POOL_RECYCLE", 1800, int, minimum=-1),
            statement_timeout_s=_number(env, "DB_STATEMENT_TIMEOUT", 0.0, float, minimum=0),
            idle_in_transaction_timeout_s=_number(env, "DB_IDLE_IN_TRANSACTION_TIMEOUT", 0.0, float, minimum=0),
            alembic_ini=alembic_ini_path(env),
        )


def alembic_ini_path(environ: Mapping[str, str] | None = None) -> Path:
    """Return ``$JARLPM_ALEMBIC_INI``, else ``alembic.ini`` in the repository root."""
    env = os.environ if environ is None else environ
    explicit = env.get("JARLPM_ALEMBIC_INI", "").strip()
    return Path(explicit) if explicit else REPO_ROOT / "alembic.ini"


def _number(env: Mapping[str, str], name: str, default: N, kind: type[N], minimum: N) -> N:
    """Parse ``env[name]`` as ``kind`` (at least ``minimum``); ``default`` when unset or empty."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected {kind.__name__} >= {minimum}") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r}: expected {kind.__name__} >= {minimum}")
    return value

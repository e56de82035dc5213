"""Is the database's schema at the alembic head?  The readiness probe's question, asked quietly."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from jarlpm.settings import alembic_ini_path

__all__ = [
    "MigrationsUnreadable",
    "Revisions",
    "SchemaState",
    "alembic_ini_path",
    "current_revisions",
    "head_revisions",
    "script_revisions",
    "schema_state",
]

VERSION_TABLE = "alembic_version"

# Alembic is imported when the scripts are first read, not with the app: ~0.1 s of the
# app's import (Alembic, Mako), which every start waits for, and only readiness needs it.
_reading = threading.Lock()  # the lifespan's background read and an early probe: one read


class MigrationsUnreadable(Exception):
    """Alembic could not read the migration scripts (its ``CommandError``), with its message."""


@dataclass(frozen=True)
class Revisions:
    """What the code's migration scripts know: their head(s) and every revision id."""

    heads: frozenset[str]
    known: frozenset[str]


def script_revisions(ini_path: Path | None = None) -> Revisions:
    """Read the script directory named by ``ini_path`` (default: alembic_ini_path()).

    Raises FileNotFoundError when the ini file is missing.  Cached per path:
    the scripts are imported once per process, and new code means new processes.
    """
    with _reading:
        return _load(str((ini_path or alembic_ini_path()).resolve()))


def head_revisions(ini_path: Path | None = None) -> frozenset[str]:
    """Return the head revision(s) of the code's migrations (several mean unmerged branches)."""
    return script_revisions(ini_path).heads


@lru_cache(maxsize=8)
def _load(ini_path: str) -> Revisions:
    if not Path(ini_path).is_file():
        raise FileNotFoundError(f"alembic config not found: {ini_path}")
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        script = ScriptDirectory.from_config(Config(ini_path))
        known = frozenset(revision.revision for revision in script.walk_revisions())
        return Revisions(heads=frozenset(script.get_heads()), known=known)
    except CommandError as exc:
        raise MigrationsUnreadable(str(exc)) from exc


def current_revisions(connection: Connection) -> frozenset[str]:
    """Return the revision(s) stamped in ``alembic_version``; empty before the first migration."""
    exists = connection.execute(sa.text("SELECT to_regclass(:table) IS NOT NULL"), {"table": VERSION_TABLE})
    if not exists.scalar_one():
        return frozenset()
    rows = connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}"))
    return frozenset(str(version) for version in rows.scalars())


@dataclass(frozen=True)
class SchemaState:
    """Where the database stands against the code's migrations."""

    current: frozenset[str]
    revisions: Revisions

    @property
    def at_head(self) -> bool:
        """True when the database carries exactly the code's head revision(s)."""
        return bool(self.revisions.heads) and self.current == self.revisions.heads

    @property
    def ahead(self) -> bool:
        """True when the database is at revision(s) this code does not know.

        That is a rolling deploy: newer replicas migrated first.  Like Flyway's
        ignoreFutureMigrations, the older code keeps serving (migrations are
        written to stay compatible with the previous release).
        """
        return bool(self.current) and not (self.current & self.revisions.known)

    @property
    def usable(self) -> bool:
        """True when the server may serve: at head, or ahead of it."""
        return self.at_head or self.ahead

    @property
    def reason(self) -> str | None:
        """Why the schema is not usable, in words an operator can act on; None when it is."""
        if self.usable:
            return None
        if not self.revisions.heads:
            return "no migration scripts found"
        wanted = ", ".join(sorted(self.revisions.heads))
        if not self.current:
            return f"database has no migrations applied (code expects {wanted}): run migrations"
        have = ", ".join(sorted(self.current))
        return f"schema at {have}, code expects {wanted}: run migrations"


def schema_state(connection: Connection, revisions: Revisions) -> SchemaState:
    """Compare the database behind ``connection`` with the code's ``revisions``."""
    return SchemaState(current=current_revisions(connection), revisions=revisions)

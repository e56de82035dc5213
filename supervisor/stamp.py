"""The database's environment stamp, and the development-only schema reset it guards.

The supervisor records the environment (``production``/``development``) that first
migrated a database, in a table of its own that Alembic's comparison ignores.  A
production stamp is permanent: ``DB_RESET_ON_STARTUP`` is refused against such a
database whatever the variables say, so a development setting that leaks into a
production deploy cannot drop real data.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from .config import Settings
from .exitcodes import ExitCode, SupervisorError

STAMP_TABLE = "jarlpm_environment"


def read(conn: sa.Connection) -> str | None:
    """The stamped environment, or None if the database was never stamped."""
    exists = conn.exec_driver_sql(
        "SELECT to_regclass(current_schema() || '.' || %(t)s) IS NOT NULL", {"t": STAMP_TABLE}
    ).scalar_one()
    if not exists:
        return None
    value = conn.exec_driver_sql(f"SELECT environment FROM {STAMP_TABLE} LIMIT 1").scalar()
    return str(value) if value is not None else None


def ensure(conn: sa.Connection, environment: str) -> None:
    """Stamp the database; production overrides development, never the other way round."""
    conn.exec_driver_sql(
        f"CREATE TABLE IF NOT EXISTS {STAMP_TABLE} ("
        " id boolean PRIMARY KEY DEFAULT true CHECK (id),"
        " environment text NOT NULL,"
        " stamped_at timestamptz NOT NULL DEFAULT now())"
    )
    conn.exec_driver_sql(
        f"INSERT INTO {STAMP_TABLE} (environment) VALUES (%(env)s)"
        " ON CONFLICT (id) DO UPDATE SET environment = 'production', stamped_at = now()"
        f" WHERE %(env)s = 'production' AND {STAMP_TABLE}.environment <> 'production'",
        {"env": environment},
    )
    conn.commit()


def reset_schema(conn: sa.Connection, settings: Settings, log: Any) -> list[str]:
    """Drop every table, view, sequence and type of the current schema (development only)."""
    stamped = read(conn)
    conn.commit()
    if not settings.development or stamped == "production":
        raise SupervisorError(
            f"DB_RESET_ON_STARTUP refused: the database is stamped {stamped!r}"
            if stamped == "production" else "DB_RESET_ON_STARTUP refused outside development",
            ExitCode.CONFIG,
            "this database was migrated in production, so it is never reset: unset "
            "DB_RESET_ON_STARTUP, or point DATABASE_URL at a development database",
            stamped_environment=stamped,
        )
    rows = conn.exec_driver_sql(
        "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'v', 'm', 'S', 'p')"
        " ORDER BY c.relname"
    ).all()
    types = conn.exec_driver_sql(
        "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
        " WHERE n.nspname = current_schema() AND t.typtype = 'e' ORDER BY t.typname"
    ).scalars().all()
    kinds = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}
    dropped = []
    for name, kind in rows:
        if kind == "S" and any(r[0] == name for r in rows if r[1] != "S"):
            continue
        conn.exec_driver_sql(f'DROP {kinds[kind]} IF EXISTS "{name}" CASCADE')
        dropped.append(str(name))
    for type_name in types:
        conn.exec_driver_sql(f'DROP TYPE IF EXISTS "{type_name}" CASCADE')
        dropped.append(f"type {type_name}")
    conn.commit()
    log.warning("db.reset", dropped=dropped, environment=settings.jarlpm_env,
                hint="DB_RESET_ON_STARTUP=true dropped the schema (development only); "
                     "unset it to keep data between restarts")
    return dropped

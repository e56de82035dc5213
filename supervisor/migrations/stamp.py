"""The database's environment stamp, and the development-only schema reset it guards.

The supervisor records the environment (``production``/``development``) that first
migrated a database, in a table of its own that Alembic's comparison ignores.  A
production stamp is permanent: ``DB_RESET_ON_STARTUP`` is refused against such a
database whatever the variables say, so a development setting that leaks into a
production deploy cannot drop real data.  The same row remembers the fingerprint of
the last code and schema that the drift check found in step, so that restarts of the
same release skip the comparison.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from supervisor.contract.config import Settings
from supervisor.contract.exitcodes import ExitCode, SupervisorError

STAMP_TABLE = "jarlpm_environment"
# The stamp row as JSON (whichever columns this version of the table has).
ROW_SQL = f"SELECT to_jsonb(s) FROM {STAMP_TABLE} s LIMIT 1"
EXISTS_SQL = "SELECT to_regclass(current_schema() || '.' || %(t)s) IS NOT NULL"

if TYPE_CHECKING:
    import sqlalchemy as sa


def _row(conn: sa.Connection) -> dict[str, Any] | None:
    """The stamp row as a dict (whichever columns this version of the table has), or None."""
    exists = conn.exec_driver_sql(EXISTS_SQL, {"t": STAMP_TABLE}).scalar_one()
    if not exists:
        return None
    row = conn.exec_driver_sql(ROW_SQL).scalar()
    return dict(row) if row else None


def read(conn: sa.Connection) -> str | None:
    """The stamped environment, or None if the database was never stamped."""
    row = _row(conn)
    return str(row["environment"]) if row and row.get("environment") else None


def satisfied(conn: sa.Connection, environment: str) -> bool:
    """True when ``ensure`` would change nothing: stamped ``production``, or stamped ``environment``.

    A database migrated before the supervisor existed (``alembic upgrade head``) is
    at head but unstamped: the first production start must stamp it all the same.
    """
    return row_satisfies(_row(conn), environment)


def row_satisfies(row: dict[str, Any] | None, environment: str) -> bool:
    """``satisfied`` for a stamp row already read (None: no stamp table or no row)."""
    if row is None or "models_checked" not in row:
        return False
    return bool(row["environment"] == "production" or row["environment"] == environment)


def ensure(conn: sa.Connection, environment: str) -> None:
    """Stamp the database; production overrides development, never the other way round.

    Called only under the migration lock: concurrent ``CREATE TABLE IF NOT EXISTS``
    can fail on PostgreSQL's catalog unique indexes.
    """
    conn.exec_driver_sql(
        f"CREATE TABLE IF NOT EXISTS {STAMP_TABLE} ("
        " id boolean PRIMARY KEY DEFAULT true CHECK (id),"
        " environment text NOT NULL,"
        " stamped_at timestamptz NOT NULL DEFAULT now(),"
        " models_checked text)"
    )
    conn.exec_driver_sql(f"ALTER TABLE {STAMP_TABLE} ADD COLUMN IF NOT EXISTS models_checked text")
    conn.exec_driver_sql(
        f"INSERT INTO {STAMP_TABLE} (environment) VALUES (%(env)s)"
        " ON CONFLICT (id) DO UPDATE SET environment = 'production', stamped_at = now()"
        f" WHERE %(env)s = 'production' AND {STAMP_TABLE}.environment <> 'production'",
        {"env": environment},
    )
    conn.commit()


def models_checked(conn: sa.Connection) -> str | None:
    """The fingerprint of the last code and schema found in step (see ``drift.fingerprint``)."""
    row = _row(conn)
    value = row.get("models_checked") if row else None
    return str(value) if value else None


def record_models_checked(conn: sa.Connection, fingerprint: str) -> None:
    """Remember that this code and this schema were compared and matched."""
    conn.exec_driver_sql(f"UPDATE {STAMP_TABLE} SET models_checked = %(f)s", {"f": fingerprint})
    conn.commit()


# Objects of the current schema, except those that go with another one: sequences
# owned by a column (serial/identity), partitions, and members of an extension.
_NOT_DEPENDENT = (
    " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass"
    " AND d.objid = {oid} AND d.deptype IN ('a', 'i', 'e'))"
)
_RELATIONS = (
    "SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'"
    " WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, quote_ident(c.relname)"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'S')"
    " AND NOT c.relispartition" + _NOT_DEPENDENT.format(catalog="pg_class", oid="c.oid")
    + " ORDER BY c.relkind DESC, c.relname"
)
_ROUTINES = (
    "SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, p.oid::regprocedure::text"
    " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
    " WHERE n.nspname = current_schema() AND p.prokind IN ('f', 'p')"
    + _NOT_DEPENDENT.format(catalog="pg_proc", oid="p.oid") + " ORDER BY 2"
)
_TYPES = (
    "SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, quote_ident(t.typname)"
    " FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
    " WHERE n.nspname = current_schema() AND t.typtype IN ('e', 'd')"
    + _NOT_DEPENDENT.format(catalog="pg_type", oid="t.oid") + " ORDER BY 2"
)


def _droppable(conn: sa.Connection) -> list[tuple[str, str]]:
    """(kind, quoted name) of what a reset drops: tables first, then views, sequences, routines, types."""
    found: list[tuple[str, str]] = []
    for query in (_RELATIONS, _ROUTINES, _TYPES):
        found += [(str(kind), str(name)) for kind, name in conn.exec_driver_sql(query).all()]
    return found


def refuse_reset(settings: Settings, stamped: str | None) -> None:
    """Raise (exit 78) unless a reset is allowed: development, and never stamped ``production``."""
    if not settings.development or stamped == "production":
        raise SupervisorError(
            f"DB_RESET_ON_STARTUP refused: the database is stamped {stamped!r}"
            if stamped == "production" else "DB_RESET_ON_STARTUP refused outside development",
            ExitCode.CONFIG,
            "this database was migrated in production, so it is never reset: unset "
            "DB_RESET_ON_STARTUP, or point DATABASE_URL at a development database",
            stamped_environment=stamped,
        )


def reset_schema(conn: sa.Connection, settings: Settings, log: Any) -> list[str]:
    """Drop every table, view, sequence, routine and type of the current schema (development only).

    One transaction: a reset that fails half-way drops nothing.  The migrations then
    rebuild the schema from scratch, exactly as in production (never ``create_all``).
    """
    stamped = read(conn)
    conn.commit()
    refuse_reset(settings, stamped)
    objects = _droppable(conn)
    dropped = [f"{kind.lower()} {name}" for kind, name in objects]
    for kind, name in objects:
        # IF EXISTS: an earlier CASCADE (a table's views, a type's columns) may have taken it.
        conn.exec_driver_sql(f"DROP {kind} IF EXISTS {name} CASCADE")
    conn.commit()
    log.warning("db.reset", dropped=dropped, environment=settings.jarlpm_env,
                hint="DB_RESET_ON_STARTUP=true dropped the schema (development only); "
                     "unset it to keep data between restarts")
    return dropped

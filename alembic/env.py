"""Alembic environment for JarlPM: the ``alembic`` CLI (online or ``--sql``) or a given connection.

In-process callers (the supervisor, tests) put an open SQLAlchemy ``Connection``
in ``config.attributes["connection"]``: it is used as is (no engine is created,
nothing is committed or closed here beyond alembic's own per-migration
transactions).  Hand it over outside a transaction to get one transaction per
migration; inside one, every migration runs in the caller's transaction.
Community tools hand over an ``Engine`` instead (pytest-alembic does): a
connection is taken from it for the run and returned, and the engine is left
to its owner (not disposed).
"""

from __future__ import annotations

import os
from logging.config import fileConfig

import sqlalchemy as sa
from jarlpm.models import Base
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from alembic import context
from supervisor.contract import dburl, envread

config = context.config
target_metadata = Base.metadata

# Tables named jarlpm_* hold the supervisor's bookkeeping, not the app's
# models; autogenerate and `alembic check` leave them alone.
BOOKKEEPING_PREFIX = "jarlpm_"


def _configure_logging() -> None:
    """Apply alembic.ini's logging only for the ``alembic`` CLI (the one caller with ``cmd_opts``).

    An in-process caller keeps its own setup: the supervisor's stdout carries
    nothing but JSON, which a plain-text handler added here would break.
    """
    wanted = config.attributes.get("configure_logger", config.cmd_opts is not None)
    if config.config_file_name and wanted:
        fileConfig(config.config_file_name, disable_existing_loggers=False)


def _database_url() -> str | None:
    """``-x url=``, else a caller's ``sqlalchemy.url``, else DATABASE_DIRECT_URL or DATABASE_URL.

    The environment is read by the supervisor's rules (``supervisor.contract.envread``):
    a malformed URL or ``*_FILE`` stops here with the words ``jarlpm`` would use.
    """
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        # The direct URL bypasses PgBouncer in transaction mode, which cannot
        # carry DDL transactions or session-level settings reliably.
        urls = envread.read(os.environ, ("DATABASE_DIRECT_URL", "DATABASE_URL"))
        url = urls["DATABASE_DIRECT_URL"] or urls["DATABASE_URL"]
    return dburl.normalise(url) if url else None


def _include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object | None) -> bool:
    """Skip the supervisor's bookkeeping tables when comparing the models with the database."""
    if type_ == "table" and reflected and compare_to is None and name:
        return not name.startswith(BOOKKEEPING_PREFIX)
    return True


COMMON_OPTIONS: dict[str, object] = {
    "target_metadata": target_metadata,
    "compare_type": True,
    "compare_server_default": True,
    "include_object": _include_object,
    # A failing migration then leaves the schema at the last good revision
    # instead of rolling back every migration of the run.
    "transaction_per_migration": True,
}


def run_migrations_offline() -> None:
    """Write the SQL to stdout; no URL needed (the dialect alone decides the SQL)."""
    url = _database_url()
    target: dict[str, object] = {"url": url} if url else {"dialect_name": "postgresql"}
    context.configure(literal_binds=True, dialect_opts={"paramstyle": "named"}, **target, **COMMON_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: Connection) -> None:
    context.configure(connection=connection, **COMMON_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def _connect_args() -> dict[str, object]:
    """Name the connection for diagnostics; apply MIGRATION_DDL_LOCK_TIMEOUT when set."""
    args: dict[str, object] = {
        "connect_timeout": 10,
        "application_name": f"jarlpm-migrate:{os.getpid()}",
    }
    if os.environ.get("MIGRATION_DDL_LOCK_TIMEOUT", "").strip():
        # A DDL statement queued behind a long transaction blocks every query
        # queued behind it; failing fast is better than a frozen service.
        seconds = envread.read(os.environ, ("MIGRATION_DDL_LOCK_TIMEOUT",))["MIGRATION_DDL_LOCK_TIMEOUT"]
        args["options"] = f"-c lock_timeout={round(seconds * 1000)}"
    return args


def run_migrations_online() -> None:
    """Migrate on the caller's connection, or on one of our own from the configured URL."""
    handed_over = config.attributes.get("connection")
    if isinstance(handed_over, Engine):
        with handed_over.connect() as connection:
            _run_on(connection)
            # Alembic commits each migration's transaction; this ends the
            # connection's outer autobegun one, if any, the same way.
            connection.commit()
        return
    if handed_over is not None:
        _run_on(handed_over)
        return
    url = _database_url()
    if not url:
        raise RuntimeError(
            "no database URL: set DATABASE_DIRECT_URL or DATABASE_URL (or their *_FILE variants), "
            "or pass `-x url=postgresql://...`"
        )
    engine = sa.create_engine(url, poolclass=NullPool, connect_args=_connect_args())
    try:
        with engine.connect() as connection:
            _run_on(connection)
    finally:
        engine.dispose()


_configure_logging()
if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

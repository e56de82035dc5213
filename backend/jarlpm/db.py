"""The database engine (the request pool, which readiness uses too) and the pool's warm-up."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from jarlpm.pool import instrument
from jarlpm.settings import Settings
from supervisor.contract import dburl
from supervisor.contract.budget import APP_PREFIX

log = logging.getLogger("jarlpm.db")

# Diagnostics (pg_stat_activity) find JarlPM's connections by the ``jarlpm-``
# prefix and the holder process by the pid after the colon.
SERVER_APPLICATION = APP_PREFIX  # the connection budget counts these as the app's own

# Warming must never hold up start-up for long: a slow database is reported by
# the first request (503), not by a server that takes a minute to boot.
WARM_DEADLINE_S = 10.0


def application_name(prefix: str = SERVER_APPLICATION) -> str:
    """Return ``<prefix>:<pid>``, naming JarlPM and the process holding a connection."""
    return f"{prefix}:{os.getpid()}"


def _milliseconds(seconds: float) -> int:
    return round(seconds * 1000)


def connect_args(
    settings: Settings,
    *,
    application: str = SERVER_APPLICATION,
    statement_timeout_s: float | None = None,
    connect_timeout_s: int | None = None,
) -> dict[str, object]:
    """psycopg2 connect arguments: timeouts as server options, and the application name.

    ``statement_timeout`` and ``idle_in_transaction_session_timeout`` are set per
    connection (``options=-c ...``) so that one bad request cannot hold a pooled
    connection forever; 0 leaves the server's default.  Any ``options`` already in
    the URL's query string are kept and ours appended, because connect_args
    would otherwise replace them.  (Behind PgBouncer, setting a timeout needs
    its ``ignore_startup_parameters = options``, or a direct URL.)
    """
    if statement_timeout_s is None:
        statement_timeout_s = settings.statement_timeout_s
    if connect_timeout_s is None:
        connect_timeout_s = settings.connect_timeout_s
    options = []
    if settings.database_url:
        existing = sa.make_url(settings.database_url).query.get("options")
        if isinstance(existing, str) and existing.strip():
            options.append(existing.strip())
    if statement_timeout_s > 0:
        options.append(f"-c statement_timeout={_milliseconds(statement_timeout_s)}")
    if settings.idle_in_transaction_timeout_s > 0:
        idle_ms = _milliseconds(settings.idle_in_transaction_timeout_s)
        options.append(f"-c idle_in_transaction_session_timeout={idle_ms}")
    args: dict[str, object] = {
        "connect_timeout": connect_timeout_s,
        "application_name": application_name(application),
    }
    if options:
        args["options"] = " ".join(options)
    return args


def create_db_engine(settings: Settings) -> Engine:
    """Create the server's pooled engine from ``settings`` (which must name a database URL)."""
    if not settings.database_url:
        raise ValueError("create_db_engine needs settings.database_url")
    engine = sa.create_engine(
        settings.database_url,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout_s,
        pool_recycle=settings.pool_recycle_s,
        # A database restart leaves every pooled connection dead; pinging on
        # checkout replaces them transparently, so nothing needs a restart.
        pool_pre_ping=True,
        connect_args=connect_args(settings),
    )
    # Pool instrumentation (who holds the connections; a diagnosis when none is
    # left), on the one engine serving requests; JARLPM_POOL_INSTRUMENTATION=0 skips it.
    instrument(engine, settings)
    return engine


@contextmanager
def bounded_transaction(connection: Connection, timeout_s: float) -> Iterator[Connection]:
    """Run a transaction whose statements PostgreSQL cancels after ``timeout_s``."""
    with connection.begin():
        # SET takes no bind parameters; the value is an int we computed.
        connection.execute(sa.text(f"SET LOCAL statement_timeout = {_milliseconds(timeout_s)}"))
        yield connection


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for requests; attributes stay loaded after commit so responses need no re-query."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def warm_pool(engine: Engine, count: int, deadline_s: float = WARM_DEADLINE_S) -> int:
    """Open up to ``count`` pooled connections at once, in parallel, then return them to the pool.

    They are held together because checking out and returning one at a time would
    reuse a single connection.  They are opened in parallel because each costs a
    round trip and a backend's fork on the server (~9 ms here): five in a row were
    three quarters of the lifespan startup, which every start and every replacement
    waits for.  Returns how many were opened by the deadline; a failure is logged, not
    raised (an unreachable database), so the server still starts and answers 503
    until the database returns.
    """
    started = time.monotonic()
    if count <= 0:
        return 0
    workers = ThreadPoolExecutor(max_workers=count, thread_name_prefix="jarlpm-warm")
    attempts = [workers.submit(engine.connect) for _ in range(count)]
    done, late = wait(attempts, timeout=deadline_s)
    workers.shutdown(wait=False, cancel_futures=True)
    for attempt in late:  # still connecting at the deadline: back to the pool whenever they finish
        attempt.add_done_callback(_return_late)
    opened = [attempt.result() for attempt in done if attempt.exception() is None]
    errors = [error for attempt in done if (error := attempt.exception()) is not None]
    for connection in opened:
        connection.close()
    unexpected = [error for error in errors if not isinstance(error, OperationalError)]
    if unexpected:
        raise unexpected[0]
    if errors:
        log.warning(
            "db.pool.warm_failed",
            extra={"opened": len(opened), "wanted": count, "error": describe_db_error(errors[0])},
        )
        return len(opened)
    duration_ms = _milliseconds(time.monotonic() - started)
    log.info("db.pool.warmed", extra={"opened": len(opened), "wanted": count, "duration_ms": duration_ms})
    return len(opened)


def _return_late(attempt: Future[Connection]) -> None:
    if not attempt.cancelled() and attempt.exception() is None:
        attempt.result().close()


def describe_db_error(exc: BaseException) -> str:
    """First line of the driver's message, redacted: what failed, without the SQL, its parameters or a secret.

    Redacted by the contract's rules (``supervisor.contract.dburl``), which know the
    URL's password since the settings were read: a server run without the supervisor
    (plain uvicorn) has nobody else to redact its lines.
    """
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return dburl.redact(text.splitlines()[0]) if text else type(exc).__name__

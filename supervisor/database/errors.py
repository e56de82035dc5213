"""Classify database errors: which ones waiting can fix, and what to tell the operator otherwise.

A failure at connect time reaches psycopg2 as an ``OperationalError`` carrying only
libpq's message (no SQLSTATE), so both the SQLSTATE and the message are consulted.
"""

from __future__ import annotations

from dataclasses import dataclass

from supervisor.contract.exitcodes import ExitCode


@dataclass(frozen=True)
class Diagnosis:
    """What a database error means: ``retryable`` or not, the exit code and a hint."""

    kind: str
    retryable: bool
    exit_code: ExitCode
    hint: str


_TRANSIENT = Diagnosis(
    "unreachable", True, ExitCode.UNAVAILABLE,
    "check that PostgreSQL is running and reachable from here (host, port, firewall); "
    "raise DB_WAIT_TIMEOUT if it is slow to start",
)

# PostgreSQL is up but every connection slot is taken: waiting can fix it (slots free up),
# but it is no reachability problem, and its exit code and hint say so (issue #16).
AT_CAPACITY = Diagnosis(
    "database_at_capacity", True, ExitCode.TEMPFAIL,
    "PostgreSQL is running but has no free connection slot (max_connections reached; the last "
    "few are reserved for superusers): find who holds them (pg_stat_activity), lower "
    "WORKERS × (DB_POOL_SIZE + DB_MAX_OVERFLOW) across replicas, put PgBouncer in front, or raise "
    "max_connections",
)
_CAPACITY_CODES = ("53300",)
_CAPACITY_FRAGMENTS = ("too many clients", "remaining connection slots")

# (kind, SQLSTATEs, message fragments, exit code, hint)
_PERMANENT: list[tuple[str, tuple[str, ...], tuple[str, ...], ExitCode, str]] = [
    ("authentication_failed", ("28P01", "28000"),
     ("password authentication failed", "authentication failed", "no password supplied",
      "role \"", "pg_hba.conf"),
     ExitCode.NOPERM,
     "the database refused the credentials: check the user and password in DATABASE_URL "
     "(or DATABASE_URL_FILE) and pg_hba.conf; retrying will not help"),
    # Before database_missing: 'permission denied for database "app"' names a database too.
    ("permission_denied", ("42501",), ("permission denied", "does not have connect privilege"),
     ExitCode.NOPERM,
     "the role lacks a privilege: GRANT CONNECT on the database and USAGE/CREATE on the schema "
     "to the application's role, or run as the database owner"),
    ("database_missing", ("3D000",), ("database \"",),
     ExitCode.NOPERM,
     "the database named in DATABASE_URL does not exist: create it (createdb) or fix the name"),
    ("ssl_mismatch", (), ("does not support ssl", "ssl was required", "invalid sslmode", "sslmode value"),
     ExitCode.CONFIG,
     "the SSL settings do not match the server: adjust sslmode in the URL's query string "
     "(e.g. ?sslmode=require or ?sslmode=disable)"),
]

# Messages that mean "try again": checked first, since e.g. "the database system is
# starting up" mentions no credentials but "role" could appear in other texts.
_TRANSIENT_FRAGMENTS = (
    "connection refused", "could not connect", "timeout expired", "starting up",
    "shutting down", "server closed the connection", "could not translate host name",
    "no route to host", "network is unreachable",
    "terminating connection", "connection reset", "in recovery mode", "not yet accepting connections",
    "the database system is", "name or service not known", "temporary failure in name resolution",
    "ssl syscall", "eof detected", "ssl connection has been closed",
)
_TRANSIENT_CODES = ("57P01", "57P02", "57P03", "08000", "08001", "08003", "08006")


def classify(pgcode: str | None, message: str) -> Diagnosis:
    """Map an error's SQLSTATE and message to a ``Diagnosis``."""
    text = message.lower()
    if pgcode in _CAPACITY_CODES or any(fragment in text for fragment in _CAPACITY_FRAGMENTS):
        return AT_CAPACITY
    if pgcode in _TRANSIENT_CODES:
        return _TRANSIENT
    for kind, codes, _fragments, code, hint in _PERMANENT:
        if pgcode and pgcode in codes:
            return Diagnosis(kind, False, code, hint)
    if any(fragment in text for fragment in _TRANSIENT_FRAGMENTS):
        return _TRANSIENT
    for kind, _codes, fragments, code, hint in _PERMANENT:
        if any(fragment in text for fragment in fragments):
            return Diagnosis(kind, False, code, hint)
    return _TRANSIENT


def classify_exception(exc: BaseException) -> Diagnosis:
    """``classify`` for a psycopg2 or SQLAlchemy exception."""
    orig = getattr(exc, "orig", None) or exc
    return classify(getattr(orig, "pgcode", None), first_line(str(orig)))


def first_line(message: str) -> str:
    """libpq messages span lines (connection to server at …, then FATAL: …); keep them readable."""
    parts = [p.strip() for p in message.strip().splitlines() if p.strip()]
    return " ".join(parts)[:500]

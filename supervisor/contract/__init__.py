"""The external contract, written once: what users, the backend and the tests rely on.

``config`` (every environment variable: names, defaults, rules; ``conventions`` the
ones people bring from other servers: WEB_CONCURRENCY, METRICS_*, terminal-or-JSON
output), ``dburl`` (URL
normalisation, libpq DSN, redaction of secrets), ``exitcodes`` (every exit code and
the error carrying one), ``paths`` (where alembic.ini, the app and the state are).

Runs in: every process.  May import: the standard library only (no SQLAlchemy,
psycopg2, Alembic, uvicorn or structlog), so ``backend/`` can import it without the
supervisor and a fresh interpreter stays fast.
"""

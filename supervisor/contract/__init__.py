"""The external contract, written once: what users, the backend and the tests rely on.

``variables`` (every environment variable: name, default, rule), ``envread`` (reading
them by those rules, every problem at once: the supervisor, the backend and
alembic/env.py all read through it), ``config`` (the supervisor's ``Settings`` and the
rules that span variables), ``conventions`` (the variables people bring from other
servers: WEB_CONCURRENCY, METRICS_*, terminal-or-JSON output), ``dburl`` (URL normalisation, libpq DSN, redaction of
secrets), ``sqltext`` (statement text fit for a log line: literals out),
``exitcodes`` (every exit code and the error carrying one), ``paths`` (where
alembic.ini, the app and the state are), ``control`` (the supervisor↔server
control-channel messages and their framing), ``heartbeat`` (the shared cell a
server process beats into and the supervisor reads when due), ``diagnoses`` (the pool diagnoses'
names, emitted by the backend, read by explain), ``budget`` (the connection budget:
one definition for ``db.pool.budget`` and the pool report).

Runs in: every process.  May import: the standard library only (no SQLAlchemy,
psycopg2, Alembic, uvicorn or structlog), so ``backend/`` can import it without the
supervisor and a fresh interpreter stays fast.
"""

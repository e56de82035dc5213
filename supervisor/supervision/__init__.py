"""The supervisor process: one loop owning the listening socket and every child process.

``service`` is ``jarlpm run``/``check`` as ordered steps; ``arbiter`` is the loop
(spawn, reap, heartbeats, restarts, reload, stop); ``server_process`` is its handle on
one server process; ``phase_process`` both ends of the phase process protocol;
``restart_policy`` the pure backoff and crash-loop rules; ``signals`` (handlers only
enqueue), ``reaper`` (PID 1 and subreaper duties), ``listener`` (the socket),
``notify`` (sd_notify), ``status``/``statuscli`` (``jarlpm status`` over a Unix socket).

Runs in: the supervisor.  May import: ``contract``, ``logs``, ``phases`` (the phase
process's end).  Never SQLAlchemy, Alembic, psycopg2 or uvicorn (a test checks).
"""

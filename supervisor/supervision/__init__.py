"""The supervisor process: one loop owning the listening socket and every child process.

``service`` is ``jarlpm run``/``check`` as ordered steps; ``arbiter`` is the loop
(spawn, reap, heartbeats, restarts, reload, stop); ``server_process`` is its handle on
one server process; ``phase_process`` both ends of the phase process protocol;
``restart_policy`` the pure restart and crash-loop rules; ``listener`` (the socket);
``backlog`` (on a stop, answers the connections queued in the socket instead of resetting them);
``status``/``statuscli`` (``jarlpm status`` over a Unix socket).

Runs in: the supervisor.  May import: ``contract``, ``system``, ``logs``, ``phases``
(the phase process's end).  Never SQLAlchemy, Alembic, psycopg2 or uvicorn (a test checks).
"""

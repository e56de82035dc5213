"""The supervisor process: one loop owning the listening socket and every child process.

``service`` is ``jarlpm run``/``check`` as ordered steps; ``arbiter`` is the one loop
(the phase process, spawn, reap, restarts), with ``hangs`` (heartbeats, stack dumps),
``reloading`` (SIGHUP, carrying out the decisions of the pure ``rollout``) and
``stopping`` (drain, TERM, KILL, no orphans); ``server_process`` is its handle on one
server process; ``standby`` the process kept in reserve (JARLPM_STANDBY);
``phase_process`` both ends of the phase process protocol; ``restart_policy`` the
pure restart and crash-loop rules; ``listener`` (the socket, bound
or handed over by systemd); ``metrics`` (``GET /metrics``: the loop's figures and the
server processes' multiprocess files); ``handover`` (database
URLs to children by descriptor, never in their environment);
``status``/``statuscli`` (``jarlpm status`` over a Unix socket).

Runs in: the supervisor.  May import: ``contract``, ``system``, ``logs``, ``phases``
(the phase process's end), prometheus_client (only with METRICS_PORT).  Never
SQLAlchemy, Alembic, psycopg2 or uvicorn (a test checks).
"""

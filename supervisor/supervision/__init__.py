"""The supervisor process: one loop owning the listening socket and every child process.

``service`` is ``jarlpm run``/``check`` as ordered steps; ``arbiter`` is the one loop
(the phase process, spawn, reap, restarts), with ``hangs`` (heartbeats, stack dumps),
``reloading`` (SIGHUP, carrying out the decisions of the pure ``rollout``),
``stopping`` (drain, TERM, KILL, no orphans), ``exits`` (what every death leaves:
helpers killed, ``child.exited``, the crash loop), ``recycler`` (MAX_REQUESTS,
MAX_WORKER_MEMORY_MB: a replacement ready before the old process drains, by the pure
``recycling`` rules) and ``codereload`` (RELOAD in development: a watching thread,
then a reload).  ``server_process`` is its handle on one server process;
``standby`` the process kept in reserve (JARLPM_STANDBY); ``forking`` the fork server
that replacements are forked from (JARLPM_FORK_SERVER), and ``earlyfork`` the one
``jarlpm run`` starts before its own imports, configured once the settings are known;
``phase_process`` both ends of the phase process protocol; ``restart_policy`` the
pure restart and crash-loop rules; ``listener`` (the socket, bound or handed over by
systemd); ``backlog`` (on a stop, answers the connections queued in the socket
instead of resetting them); ``handover`` (database URLs to children by descriptor,
never in their environment); ``metrics`` (``GET /metrics``: the loop's figures and
the server processes' multiprocess files); ``status``/``statuscli``/``reloadcli``
(``jarlpm status`` and ``jarlpm reload`` over a Unix socket).

Runs in: the supervisor.  May import: ``contract``, ``system``, ``logs``, ``phases``
(the phase process's end), prometheus_client (only with METRICS_PORT).  Never
SQLAlchemy, Alembic, psycopg2 or uvicorn (a test checks).
"""

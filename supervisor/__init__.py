"""The JarlPM supervisor: ordered phases, then a supervised uvicorn server, one JSON log stream.

Four kinds of process run this package's code, and each subpackage belongs to one:

- the **supervisor** (``jarlpm run``): ``main`` (command line, exit status) →
  ``supervision.service`` (the ordered steps) → ``supervision.arbiter`` (the one loop
  that owns the socket and every child); ``logs`` writes its stream.
- a **server process** (``python -m supervisor.server.worker``): ``server`` runs uvicorn
  on the inherited socket and talks to the arbiter over the control channel.
- the **phase process** (``python -m supervisor.supervision.phase_process PLAN``): runs a
  plan of database phases of ``phases`` (wait for the database, ``migrations``, warm the
  pool) for ``run``, a reload and ``check``, so that SQLAlchemy, Alembic and psycopg2
  never load into the long-lived supervisor; it ends with the supervisor.
- the **PostgreSQL guard** (``python -m supervisor.database.pgguard``): stops a cluster
  we started if its owner dies.

``contract`` holds what the outside world relies on (environment, URLs, exit codes,
paths, control messages) and imports nothing heavy, so the backend may share it;
``system`` wraps what every process uses from the OS (signals, /proc, sd_notify).
``explain`` reads logs back (``jarlpm explain``) and depends on nothing else here.
"""

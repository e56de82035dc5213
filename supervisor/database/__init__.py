"""Talking to PostgreSQL from the supervisor's side, and running a local one.

``probe`` (connect, wait with backoff, the connection budget), ``errors`` (which
errors waiting can fix; exit codes and hints), ``pgcluster`` (a throwaway local
cluster), ``embedded`` (development mode's database under ``.jarlpm/``), ``pgguard``
(``python -m supervisor.database.pgguard``: stops a cluster whose owner died).

Runs in: the phase process (probe, errors), the supervisor (embedded, pgcluster),
the guard process.  May import: ``contract``, psycopg2 (probe, errors only).
"""

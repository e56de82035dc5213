"""Migrations: Alembic in-process, under a replica-wide lock, one transaction per revision.

``alembic_api`` (config, heads, paths between revisions), ``lock`` (the replica-wide
advisory lock), ``steps`` (apply or revert one revision at a time, watched for
blockers), ``migrator`` (the migrate phase: to head exactly once across replicas,
then drift), ``preflight`` (``jarlpm check``'s read-only migrate phase and its
rolled-back rehearsal), ``inflight`` (the open migration connections, cancelled when
the supervisor dies), ``quickcheck`` + ``fingerprint`` (a verified restart recognised with
psycopg2 alone), ``drift`` (models vs. database), ``stamp`` (the environment stamp
and the development-only reset), ``operations`` + ``revisions`` + ``commands`` +
``cli`` (``jarlpm migrate``).

Runs in: the phase process and ``jarlpm migrate``/``check``.  May import:
``contract``, ``database``, ``logs``, SQLAlchemy, Alembic, psycopg2.
"""

"""The pool diagnoses' names, written once: the backend emits them, ``jarlpm explain`` reads them back.

``db.pool.exhausted`` carries one of these in ``diagnosis`` and the others that fit in
``also``; when several fit, the most specific cause wins, in this order
(shared/DESIGN.md).  A log written by one version is read by another, so a name
here is part of the external contract: add, never rename.
"""

from __future__ import annotations

LOCK_CONTENTION = "lock_contention"  # the pool's sessions wait for a lock someone else holds
DATABASE_AT_CAPACITY = "database_at_capacity"  # PostgreSQL has no slot left for the app's role
CONNECTION_LEAK = "connection_leak"  # connections stay checked out after their request ended
LONG_TRANSACTIONS = "long_transactions"  # transactions held open while not in use
SLOW_QUERIES = "slow_queries"  # statements that take long
UNDERSIZED_POOL = "undersized_pool"  # short requests, just more of them than connections

# Most specific first: the first that fits is the diagnosis.
BY_SPECIFICITY = (LOCK_CONTENTION, DATABASE_AT_CAPACITY, CONNECTION_LEAK, LONG_TRANSACTIONS, SLOW_QUERIES,
                  UNDERSIZED_POOL)

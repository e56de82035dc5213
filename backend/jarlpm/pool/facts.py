"""The facts a diagnosis is made from, its vocabulary (diagnoses and holder kinds), and small pure rules."""

from __future__ import annotations

from dataclasses import dataclass

from jarlpm.pool.budget import ConnectionBudget
from jarlpm.pool.model import DbView, HolderView, PoolNumbers, Trigger
from supervisor.contract.diagnoses import (
    BY_SPECIFICITY,
    CONNECTION_LEAK,
    LOCK_CONTENTION,
    LONG_TRANSACTIONS,
    SLOW_QUERIES,
    UNDERSIZED_POOL,
)

# The names are the contract's (``jarlpm explain`` reads them back); most specific first.
DIAGNOSES = BY_SPECIFICITY

# What each checked-out connection is doing, as far as the facts tell.
LOCK_WAIT = "lock_wait"
LEAKED = "leaked"
LONG_TRANSACTION = "long_transaction"
SLOW_STATEMENT = "slow_statement"
SHORT = "short"
KIND_DIAGNOSIS = {LOCK_WAIT: LOCK_CONTENTION, LEAKED: CONNECTION_LEAK, LONG_TRANSACTION: LONG_TRANSACTIONS,
                  SLOW_STATEMENT: SLOW_QUERIES, SHORT: UNDERSIZED_POOL}

# PostgreSQL's messages (SQLSTATE 53300) when it refuses a connection for want of a slot;
# a failure at connect time carries only the message, no SQLSTATE.
CAPACITY_MESSAGES = (
    "too many clients already",
    "remaining connection slots are reserved",
    "too many connections for role",
    "too many connections for database",
)


def is_capacity_error(message: str) -> bool:
    """True when PostgreSQL refused a connection because its (or a role's) slots are used up."""
    lowered = message.lower()
    return any(text in lowered for text in CAPACITY_MESSAGES)


def server_message(error: str) -> str:
    """PostgreSQL's own words from a libpq error: what follows ``FATAL:``, without the address."""
    _, fatal, message = error.rpartition("FATAL:")
    return message.strip() if fatal else error.strip()


def long_threshold(timeout_s: float) -> float:
    """Seconds after which a hold, transaction or statement counts as long: 1-5 s, a quarter of the timeout.

    A request that waits ``DB_POOL_TIMEOUT`` for a connection is starved by
    holds of a sizeable fraction of it; with the 30 s default that is 5 s.
    """
    return min(5.0, max(1.0, timeout_s / 4))


@dataclass(frozen=True)
class Facts:
    """Everything a report is decided on."""

    pool: PoolNumbers
    holders: tuple[HolderView, ...]
    db: DbView
    budget: ConnectionBudget
    trigger: Trigger
    leak_threshold_s: float = 0.0

"""Capped exponential backoff with jitter: how every retry in every process waits."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, base: float, cap: float, jitter: float = 0.2,
                  rng: random.Random | None = None) -> float:
    """Delay before retry number ``attempt`` (1-based): ``base * 2**(attempt-1)``, capped, ± jitter.

    Jitter spreads out replicas that failed together (a database restart), so they do
    not all retry in the same instant.
    """
    # The exponent is bounded: from attempt 1025 (8½ hours of restarts at a 30 s cap)
    # base * 2**attempt no longer fits a float (OverflowError); 2**64 exceeds any cap.
    raw = min(cap, base * (2 ** min(64, max(0, attempt - 1))))
    spread = raw * jitter
    pick = (rng or random).uniform(-spread, spread)
    return float(max(0.0, min(cap, raw + pick)))

"""Pure arithmetic for the reports: medians, percentiles, ratios, interleaving orders."""

from __future__ import annotations

import statistics
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def median(values: Sequence[float | None]) -> float | None:
    """Median of the values that exist; None when there are none."""
    present = [v for v in values if v is not None]
    return float(statistics.median(present)) if present else None


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile (``pct`` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return float(ordered[rank - 1])


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """``ours / theirs``, or None when either is missing or the baseline is zero."""
    if ours is None or theirs is None or theirs == 0:
        return None
    return ours / theirs


def interleaved(reps: int, runners: Sequence[T]) -> Iterator[tuple[int, T]]:
    """(rep, runner) pairs, alternating the order every repetition (ABBA...).

    Alternating cancels slow drifts (page cache, CPU frequency, a neighbour's
    load) that a fixed order would charge to whichever runner goes second.
    """
    for rep in range(reps):
        order = list(runners) if rep % 2 == 0 else list(reversed(runners))
        for runner in order:
            yield rep, runner


def pooled_rate(runs: Sequence[dict[str, Any]], label: str, count: str = "requests") -> float | None:
    """``label``'s ``count`` per second over all its runs (slices of every repetition pooled), or None.

    On shared cores one-second slices of the same server vary by ±20 %: more slices, not
    a median of fewer figures, is what narrows a comparison.
    """
    mine = [r for r in runs if r["contender"] == label]
    seconds = sum(r["seconds"] for r in mine)
    return sum(r[count] for r in mine) / seconds if seconds else None

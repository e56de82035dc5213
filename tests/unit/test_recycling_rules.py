"""Specifications of the pure recycling rules: request limits with jitter, memory streaks, leak suspicion."""

from __future__ import annotations

import random

from supervisor.supervision import recycling


class TestRequestLimit:
    """Each process gets MAX_REQUESTS plus its own 0..jitter; 0 turns recycling off."""

    def test_off(self) -> None:
        assert recycling.request_limit(0, 50) is None

    def test_without_jitter(self) -> None:
        assert recycling.request_limit(1000, 0) == 1000

    def test_jitter_spreads_the_limits_within_range(self) -> None:
        rng = random.Random(7)
        limits = {recycling.request_limit(1000, 50, rng) for _ in range(200)}
        assert all(limit is not None and 1000 <= limit <= 1050 for limit in limits)
        assert len(limits) > 10  # processes started together do not all go at once

    def test_due(self) -> None:
        assert recycling.due_for_requests(20, 20)
        assert not recycling.due_for_requests(19, 20)
        assert not recycling.due_for_requests(10**6, None)


class TestMemoryStreak:
    """Only memory held above the limit for several reads in a row counts, not one spike."""

    def test_a_spike_resets(self) -> None:
        streak = 0
        for rss in (300, 300, 100, 300, 300):
            streak = recycling.memory_streak(streak, rss, 200)
        assert streak == 2 and not recycling.due_for_memory(streak)

    def test_held_above_is_due(self) -> None:
        streak = 0
        for _ in range(recycling.MEMORY_CHECKS):
            streak = recycling.memory_streak(streak, 250.0, 200)
        assert recycling.due_for_memory(streak)

    def test_off_or_unreadable(self) -> None:
        assert recycling.memory_streak(2, 10_000, 0) == 0
        assert recycling.memory_streak(2, None, 200) == 0


class TestLeakWatch:
    """Three memory recycles within ten minutes: a leak is suspected; spread out, they are not."""

    def test_three_within_the_window(self) -> None:
        watch = recycling.LeakWatch(count=3, window=600)
        assert watch.record(0) is None and watch.record(200) is None
        assert watch.record(400) == 3

    def test_spread_out(self) -> None:
        watch = recycling.LeakWatch(count=3, window=600)
        assert [watch.record(t) for t in (0, 500, 1200, 1900)] == [None, None, None, None]

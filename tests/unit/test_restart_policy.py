"""Specifications of ``supervisor.supervision.restart_policy``: capped exponential backoff and the restart policy."""

from __future__ import annotations

import random

import pytest

from supervisor.supervision.restart_policy import GiveUp, Restart, RestartPolicy
from supervisor.system.backoff import backoff_delay


def rng() -> random.Random:
    return random.Random(1234)


def policy(limit: int = 5, cap: float = 30.0) -> RestartPolicy:
    return RestartPolicy(crash_loop_limit=limit, backoff_max=cap, rng=rng())


def restart(decision: Restart | GiveUp) -> Restart:
    assert isinstance(decision, Restart), decision
    return decision


class TestBackoffDelay:
    """Delays double from the base, stop at the cap, and jitter stays within its fraction."""

    def test_doubles_without_jitter(self) -> None:
        assert [backoff_delay(n, 0.5, 100, jitter=0) for n in range(1, 6)] == [0.5, 1, 2, 4, 8]

    def test_capped(self) -> None:
        assert backoff_delay(10, 0.5, 30, jitter=0) == 30
        assert backoff_delay(10, 0.5, 30, jitter=0.2, rng=rng()) <= 30

    def test_attempt_zero_or_negative_is_the_base(self) -> None:
        assert backoff_delay(0, 0.5, 30, jitter=0) == 0.5
        assert backoff_delay(-3, 0.5, 30, jitter=0) == 0.5

    def test_huge_attempt_numbers_stay_at_the_cap(self) -> None:
        # A slot restarted every 30 s for a day reaches attempt ~2900: no OverflowError.
        assert backoff_delay(5000, 0.5, 30, jitter=0) == 30
        assert 24 <= backoff_delay(10**6, 0.5, 30, rng=rng()) <= 30

    @pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5])
    def test_jitter_bounded(self, attempt: int) -> None:
        r = rng()
        raw = 0.5 * 2 ** (attempt - 1)
        delays = [backoff_delay(attempt, 0.5, 100, jitter=0.2, rng=r) for _ in range(200)]
        assert all(raw * 0.8 <= d <= raw * 1.2 for d in delays)
        assert len(set(delays)) > 100  # jitter actually spreads replicas apart

    def test_seeded_rng_is_reproducible(self) -> None:
        assert backoff_delay(3, 0.5, 30, rng=rng()) == backoff_delay(3, 0.5, 30, rng=rng())

    def test_never_negative(self) -> None:
        assert backoff_delay(1, 0.5, 30, jitter=5.0, rng=rng()) >= 0


class TestCrashLoop:
    """Deaths before readiness count toward crash_loop_limit; any process becoming ready resets the count."""

    def test_gives_up_at_the_limit(self) -> None:
        p = policy(limit=3)
        restart(p.on_exit(0, was_ready=False, uptime=0.2))
        restart(p.on_exit(0, was_ready=False, uptime=0.2))
        assert p.on_exit(0, was_ready=False, uptime=0.2) == GiveUp(deaths=3)

    def test_limit_of_one_gives_up_at_once(self) -> None:
        assert isinstance(policy(limit=1).on_exit(0, was_ready=False, uptime=0.1), GiveUp)

    def test_unready_deaths_count_across_slots(self) -> None:
        p = policy(limit=3)
        restart(p.on_exit(0, was_ready=False, uptime=0.1))
        restart(p.on_exit(1, was_ready=False, uptime=0.1))
        assert isinstance(p.on_exit(2, was_ready=False, uptime=0.1), GiveUp)

    def test_ready_process_resets_the_count(self) -> None:
        p = policy(limit=3)
        restart(p.on_exit(0, was_ready=False, uptime=0.1))
        restart(p.on_exit(0, was_ready=False, uptime=0.1))
        p.on_ready(0)
        assert p.unready_deaths == 0
        restart(p.on_exit(0, was_ready=False, uptime=0.1))
        restart(p.on_exit(0, was_ready=False, uptime=0.1))
        assert isinstance(p.on_exit(0, was_ready=False, uptime=0.1), GiveUp)

    def test_deaths_after_readiness_never_give_up(self) -> None:
        p = policy(limit=2)
        for _ in range(50):
            restart(p.on_exit(0, was_ready=True, uptime=1.0))

    def test_unready_deaths_back_off(self) -> None:
        p = RestartPolicy(crash_loop_limit=10, backoff_max=30, rng=rng())
        delays = [restart(p.on_exit(0, was_ready=False, uptime=0.1)).delay for _ in range(4)]
        assert all(0.8 * 0.5 * 2**i <= d <= 1.2 * 0.5 * 2**i for i, d in enumerate(delays))

    def test_crash_loop_with_defaults_ends_well_under_a_minute(self) -> None:
        p = RestartPolicy(crash_loop_limit=5, backoff_max=30, rng=rng())
        total = 0.0
        while isinstance(decision := p.on_exit(0, was_ready=False, uptime=0.5), Restart):
            total += decision.delay
        assert decision == GiveUp(deaths=5)
        assert total < 15  # 0.5 + 1 + 2 + 4 = 7.5 s, ± 20 % jitter


class TestRestartsAfterReadiness:
    """A ready process that dies is restarted: at once the first time, then with per-slot backoff."""

    def test_first_death_after_a_stable_run_restarts_at_once(self) -> None:
        decision = restart(policy().on_exit(0, was_ready=True, uptime=3600))
        assert decision == Restart(delay=0.0, restarts=1)

    def test_repeated_deaths_back_off(self) -> None:
        p = policy(cap=30)
        delays = [restart(p.on_exit(0, was_ready=True, uptime=5)).delay for _ in range(8)]
        assert delays[0] == 0.0
        assert 0.4 <= delays[1] <= 0.6
        assert all(later >= earlier * 0.8 / 1.2 for earlier, later in zip(delays[1:], delays[2:], strict=False))
        assert 24 <= delays[-1] <= 30

    def test_slots_back_off_independently(self) -> None:
        p = policy()
        for _ in range(5):
            p.on_exit(0, was_ready=True, uptime=5)
        assert restart(p.on_exit(1, was_ready=True, uptime=5)).delay == 0.0
        assert p.restarts(0) == 5 and p.restarts(1) == 1 and p.restarts(7) == 0

    def test_stable_period_resets_the_backoff(self) -> None:
        p = policy()
        for _ in range(6):
            p.on_exit(0, was_ready=True, uptime=5)
        assert restart(p.on_exit(0, was_ready=True, uptime=p.stable_after)).delay == 0.0
        assert 0.4 <= restart(p.on_exit(0, was_ready=True, uptime=5)).delay <= 0.6

    def test_restart_count_keeps_growing(self) -> None:
        p = policy()
        p.on_exit(0, was_ready=True, uptime=5)
        assert restart(p.on_exit(0, was_ready=True, uptime=600)).restarts == 2

    def test_delays_are_rounded_to_milliseconds(self) -> None:
        p = policy()
        p.on_exit(0, was_ready=True, uptime=5)
        delay = restart(p.on_exit(0, was_ready=True, uptime=5)).delay
        assert delay == round(delay, 3)

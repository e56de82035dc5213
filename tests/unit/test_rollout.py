"""Specifications of ``supervisor.supervision.rollout``: a reload's decisions, without a process."""

from __future__ import annotations

from supervisor.supervision.rollout import End, Replace, Rollout, Wait


class Proc:
    """Stands for a server process: the rollout only compares identities."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


def rollout(slots: int = 2) -> tuple[Rollout[Proc], dict[int, Proc]]:
    spares = {slot: Proc(f"spare{slot}") for slot in range(slots)}
    return Rollout(range(slots), spares), spares


class TestHappyPath:
    """Migrated, then each slot replaced in order by its spare, the next only once the previous is ready."""

    def test_slots_replaced_one_by_one_then_reloaded(self) -> None:
        plan, spares = rollout(2)
        first = plan.migrated(ok=True)
        assert first == Replace(0, spares[0])
        plan.started(0, spares[0])
        assert plan.ready(1, spares[1]) is None, "a spare not yet released is not a replacement"
        second = plan.ready(0, spares[0])
        assert second == Replace(1, spares[1])
        plan.started(1, spares[1])
        assert plan.ready(1, spares[1]) == End(reloaded=True)
        assert plan.processes() == []

    def test_without_a_spare_the_arbiter_spawns(self) -> None:
        """A slot whose spare is gone gets ``Replace(slot, None)``: spawn a fresh process."""
        plan = Rollout[Proc]([0], {})
        assert plan.migrated(ok=True) == Replace(0, None)

    def test_new_processes_are_known(self) -> None:
        plan, spares = rollout(1)
        old = Proc("old")
        assert plan.is_new(spares[0]) and not plan.is_new(old)


class TestAborts:
    """A failed migration or a new process dying ends the reload; old processes keep serving."""

    def test_failed_migration_ends_without_replacing(self) -> None:
        plan, spares = rollout(2)
        assert plan.migrated(ok=False) == End(reloaded=False)
        assert sorted(plan.take_spares(), key=repr) == [spares[0], spares[1]]

    def test_spare_dying_during_the_migration_waits_for_it(self) -> None:
        """Aborted while migrating: nothing to do until the migration ends, which then ends the reload."""
        plan, spares = rollout(2)
        assert plan.new_process_died(spares[0]) == Wait()
        assert plan.take_spares() == [spares[1]]
        assert plan.migrated(ok=True) == End(reloaded=False)

    def test_replacement_dying_ends_at_once(self) -> None:
        plan, spares = rollout(2)
        plan.migrated(ok=True)
        plan.started(0, spares[0])
        assert plan.new_process_died(spares[0]) == End(reloaded=False)
        assert plan.queue == [] and not plan.is_new(spares[0])

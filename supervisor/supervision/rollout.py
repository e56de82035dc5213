"""Pure reload state: the migration, then the server processes replaced one slot at a time.

A reload (SIGHUP) goes: the ``reload`` plan runs in a phase process while a *spare*
per slot imports the new code; then, slot by slot, a new process (the spare, else a
fresh one) is released and, once ready, takes the slot while the old one drains.  A
failed migration or a new process that dies before becoming ready aborts it: the old
processes keep serving, and the spares are discarded.  A reload aborted while its
migration still runs ends when the migration does, so that a new SIGHUP waits for it.

``Rollout`` decides; the arbiter spawns, releases, drains and kills.  It holds the
processes it was given without looking into them (``P`` is opaque here), so the rules
are unit-tested without a process (tests/unit/test_rollout.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

P = TypeVar("P")


@dataclass(frozen=True)
class Replace(Generic[P]):
    """Release ``spare`` (or spawn a process, when there is none) to replace ``slot``."""

    slot: int
    spare: P | None


@dataclass(frozen=True)
class End:
    """The reload is over: ``reloaded`` when every slot runs the new code."""

    reloaded: bool


@dataclass(frozen=True)
class Wait:
    """Nothing to do until the reload's migration ends."""


class Rollout(Generic[P]):
    """One reload's progress; created when the reload starts."""

    def __init__(self, slots: Iterable[int], spares: dict[int, P]) -> None:
        self.queue = sorted(slots)
        self.spares = dict(spares)
        self.replacing: dict[int, P] = {}
        self.migrating = True
        self.aborted = False

    def processes(self) -> list[P]:
        """The new processes: being released to replace a slot, or spares importing the new code."""
        return list(self.replacing.values()) + list(self.spares.values())

    def is_new(self, proc: P) -> bool:
        return any(p is proc for p in self.processes())

    def migrated(self, ok: bool) -> Replace[P] | End:
        """The reload's migration ended (``ok``: the schema is at the new head)."""
        self.migrating = False
        if self.aborted or not ok:
            return End(reloaded=False)
        return self._next()

    def started(self, slot: int, proc: P) -> None:
        """The arbiter released ``proc`` to replace ``slot`` (after a ``Replace``)."""
        self.replacing[slot] = proc

    def ready(self, slot: int, proc: P) -> Replace[P] | End | None:
        """``proc`` became ready: if it is ``slot``'s replacement, it takes the slot; then the next one."""
        if self.replacing.get(slot) is not proc:
            return None
        del self.replacing[slot]
        return self._next()

    def new_process_died(self, proc: P) -> End | Wait:
        """A new process died before becoming ready: the new code cannot start; abort."""
        self.forget(proc)
        self.aborted = True
        self.queue.clear()
        # Its migration may finish (harmless: the schema is at the new head either way).
        return Wait() if self.migrating else End(reloaded=False)

    def forget(self, proc: P) -> None:
        """``proc`` is gone (exited); it is no longer one of ours."""
        self.replacing = {s: p for s, p in self.replacing.items() if p is not proc}
        self.spares = {s: p for s, p in self.spares.items() if p is not proc}

    def take_spares(self) -> list[P]:
        """The spares not released, to discard (an abort or the end): they never served."""
        spares, self.spares = list(self.spares.values()), {}
        return spares

    def _next(self) -> Replace[P] | End:
        if not self.queue:
            return End(reloaded=True)
        slot = self.queue.pop(0)
        return Replace(slot, self.spares.pop(slot, None))

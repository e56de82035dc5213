"""Pure restart policy: when to restart a dead server process, and when a crash loop means give up."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from supervisor.system.backoff import backoff_delay


@dataclass(frozen=True)
class Restart:
    """Restart the process after ``delay`` seconds; ``restarts`` counts this slot's restarts."""

    delay: float
    restarts: int


@dataclass(frozen=True)
class GiveUp:
    """Too many processes died before becoming ready: stop supervising (exit 70)."""

    deaths: int


@dataclass
class RestartPolicy:
    """Decides what follows a server process's death.

    * Deaths before readiness, while no process has become ready since the last
      success, count toward ``crash_loop_limit``; reaching it gives up.
    * Each worker slot backs off exponentially on repeated deaths; a run that lasted
      ``stable_after`` seconds resets that slot's backoff.
    """

    crash_loop_limit: int
    backoff_max: float
    base: float = 0.5
    stable_after: float = 60.0
    rng: random.Random = field(default_factory=random.Random)
    unready_deaths: int = 0
    _failures: dict[int, int] = field(default_factory=dict)
    _restarts: dict[int, int] = field(default_factory=dict)

    def on_ready(self, slot: int) -> None:
        """A process became ready: the app can start, so earlier deaths were not a crash loop."""
        self.unready_deaths = 0

    def on_exit(self, slot: int, was_ready: bool, uptime: float) -> Restart | GiveUp:
        if not was_ready:
            self.unready_deaths += 1
            if self.unready_deaths >= self.crash_loop_limit:
                return GiveUp(self.unready_deaths)
        if was_ready and uptime >= self.stable_after:
            self._failures[slot] = 0
        failures = self._failures.get(slot, 0) + 1
        self._failures[slot] = failures
        self._restarts[slot] = self._restarts.get(slot, 0) + 1
        if was_ready and failures == 1:
            # First death after a stable run: come back at once, connections are queueing.
            delay = 0.0
        else:
            delay = backoff_delay(failures - (1 if was_ready else 0), self.base, self.backoff_max,
                                  rng=self.rng)
        return Restart(delay=round(delay, 3), restarts=self._restarts[slot])

    def restarts(self, slot: int) -> int:
        return self._restarts.get(slot, 0)

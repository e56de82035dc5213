"""JARLPM_STANDBY: one server process kept in reserve, the app imported, waiting for ``go``.

A replacement's cost is mostly importing the app (issue #17: gunicorn without
``--preload`` pays it on every restart).  The standby pays it in advance: it is a
prespawned process (``Arbiter.prespawn``'s mechanism) that is never released until a
slot needs a process; then it opens its pool and serves at once, and a new standby
imports in the background.  Until released it holds no database connection and
serves nothing (the worker waits for ``go`` before lifespan startup; the kernel may
hand it no connection because it never accepts).

It never counts as a server death: a standby that dies before release is logged and
respawned with backoff (``RESTART_BACKOFF_MAX``) but the crash-loop rule only sees
released processes, which the standby becomes once taken.  A reload discards it (it
imported the old code) and the loop makes a new one once the reload is over.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from supervisor.supervision.server_process import ServerProcess
from supervisor.system.backoff import backoff_delay

if TYPE_CHECKING:
    from supervisor.supervision.arbiter import Arbiter

UNASSIGNED = -1  # a standby's slot until it takes one


def wanted(arb: Arbiter) -> bool:
    """A standby is kept while the service runs normally (not starting, reloading or stopping)."""
    return arb.settings.jarlpm_standby and arb.state == "running" and arb.announced_ready


def maintain(arb: Arbiter) -> None:
    """Start a standby when none is there and its backoff (after a standby died) is over.

    Not while a slot's process is still starting: a new standby importing the app would
    take CPU from the replacement's lifespan startup, which is what clients wait for.
    """
    if not wanted(arb) or arb.standby is not None:
        return
    if not all(proc is not None and proc.ready for proc in arb.slots.values()):
        return  # the loop wakes on the replacement's ``ready`` and comes back here
    if arb.standby_due is not None and arb.standby_due > time.monotonic():
        return
    arb.standby_due = None
    arb.standby = arb.spawn(UNASSIGNED, release=False)


def imported(arb: Arbiter, proc: ServerProcess, now: float) -> None:
    """The standby has imported the app: from now on a replacement costs only lifespan startup."""
    arb.log.info("child.standby", pid=proc.pid, imported_ms=round((now - proc.spawned_at) * 1000))


def next_due(arb: Arbiter) -> float | None:
    """When ``maintain`` must run again on its own (a standby's respawn backoff)."""
    return arb.standby_due if wanted(arb) and arb.standby is None else None


def take(arb: Arbiter, slot: int) -> ServerProcess | None:
    """Release the standby into ``slot`` (None when there is none to take)."""
    proc = arb.standby
    if proc is None or not proc.alive:
        return None
    arb.standby = None
    arb.standby_deaths = 0
    proc.slot = slot
    arb.log.info("child.spawned", pid=proc.pid, worker=slot, standby=True,
                 imported_for_ms=round((time.monotonic() - proc.spawned_at) * 1000))
    proc.release()
    return proc


def discard(arb: Arbiter) -> None:
    """Stop the standby (a reload: it imported the code being replaced)."""
    proc, arb.standby = arb.standby, None
    if proc is None or not proc.alive:
        return
    proc.stop_requested = True
    proc.kill_group()  # never released: it never served, nothing to drain
    arb.retiring.append(proc)  # reaped and logged like any other


def died(arb: Arbiter, proc: ServerProcess) -> None:
    """A standby died before release: respawn it after a backoff; it is no server death."""
    arb.standby = None
    if proc.stop_requested or not wanted(arb):
        return
    arb.standby_deaths += 1
    delay = backoff_delay(arb.standby_deaths, arb.policy.base, arb.settings.restart_backoff_max)
    arb.standby_due = time.monotonic() + delay
    arb.log.warning("child.standby_restarting", previous_pid=proc.pid, delay_s=round(delay, 3),
                    deaths=arb.standby_deaths)

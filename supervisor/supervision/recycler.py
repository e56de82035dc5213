"""Recycling: replace a healthy server process that reached MAX_REQUESTS or held too much memory.

The replacement goes the way of a reload's rollout: a new process is spawned for the
slot, becomes ready, takes the slot, and only then does the old one drain (readiness
503, stop accepting, SIGTERM), so even with one worker no request is refused.  A
replacement that dies before becoming ready leaves the old process serving and is
retried later; recycling never counts toward the crash loop.  The rules are the
pure ``recycling``'s; ``code_changed`` recycles are whole reloads (``reloading``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from supervisor.supervision import recycling
from supervisor.supervision.reloading import retire
from supervisor.supervision.server_process import ServerProcess
from supervisor.system.memory import rss_mb

if TYPE_CHECKING:
    from supervisor.supervision.arbiter import Arbiter

RETRY_AFTER = 30.0  # seconds before a slot whose replacement died is recycled again


def next_due(arb: Arbiter) -> float | None:
    """When the next memory read is due (None: MAX_WORKER_MEMORY_MB is off): the loop wakes for it."""
    return arb.next_memory_check if arb.settings.max_worker_memory_mb > 0 else None


def check(arb: Arbiter) -> None:
    """Start the recycles that are due (only while running: a reload replaces everything anyway)."""
    if arb.state != "running":
        return
    now = time.monotonic()
    read_memory = arb.settings.max_worker_memory_mb > 0 and now >= arb.next_memory_check
    if read_memory:
        arb.next_memory_check = now + recycling.MEMORY_CHECK_INTERVAL
    for slot, proc in arb.slots.items():
        if proc is None or not proc.ready or proc.stop_requested or slot in arb.recycling:
            continue
        if now < arb.recycle_after.get(slot, 0.0):
            continue
        if recycling.due_for_requests(proc.requests, proc.request_limit):
            recycle(arb, slot, proc, "max_requests", requests=proc.requests, limit=proc.request_limit)
        elif read_memory:
            rss = rss_mb(proc.pid)
            proc.memory_streak = recycling.memory_streak(proc.memory_streak, rss, arb.settings.max_worker_memory_mb)
            if rss is not None and recycling.due_for_memory(proc.memory_streak):
                recycle(arb, slot, proc, "memory", rss_mb=round(rss, 1), limit_mb=arb.settings.max_worker_memory_mb,
                        checks=proc.memory_streak)
                suspect_leak(arb, now)


def recycle(arb: Arbiter, slot: int, proc: ServerProcess, reason: str, **figures: Any) -> None:
    arb.log.info("child.recycling", pid=proc.pid, worker=slot, reason=reason, **figures)
    arb.metrics.restart(reason)
    arb.recycling[slot] = arb.spawn(slot)


def suspect_leak(arb: Arbiter, now: float) -> None:
    recycles = arb.leaks.record(now)
    if recycles is not None:
        arb.log.warning(
            "child.memory_leak_suspected", recycles=recycles, window_s=round(arb.leaks.window),
            limit_mb=arb.settings.max_worker_memory_mb,
            hint="server processes keep outgrowing MAX_WORKER_MEMORY_MB: the app probably leaks (a cache "
                 "without a bound, objects kept per request); recycling hides it for now. Profile one "
                 "process (tracemalloc, memray) or raise the limit if its working set really grew")


def ready(arb: Arbiter, proc: ServerProcess) -> bool:
    """A replacement became ready: it takes its slot and the old process drains."""
    if arb.recycling.get(proc.slot) is not proc:
        return False
    del arb.recycling[proc.slot]
    old = arb.slots.get(proc.slot)
    arb.slots[proc.slot] = proc
    arb.restart_due.pop(proc.slot, None)  # the old one died meanwhile: this one fills the slot
    if old is not None:
        retire(arb, old)
    return True


def replacement_died(arb: Arbiter, proc: ServerProcess) -> None:
    """The replacement never became ready: the old process keeps serving; try again later."""
    arb.recycle_after[proc.slot] = time.monotonic() + RETRY_AFTER
    if arb.slots.get(proc.slot) is None and proc.slot not in arb.restart_due:
        arb.restart_due[proc.slot] = time.monotonic()  # the old one is gone too: start one now


def cancel(arb: Arbiter) -> None:
    """A reload replaces every slot: replacements under way are dropped (they never served)."""
    for proc in arb.recycling.values():
        proc.stop_requested = True
        proc.kill_group()
        arb.retiring.append(proc)  # reaped and logged like any other
    arb.recycling.clear()

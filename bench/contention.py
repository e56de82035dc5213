"""Busy loops that keep the cores occupied during a run (``--busy N``), to see the figures on a busy machine.

A deploy often lands on a machine whose cores are busy (other containers, a CI
neighbour).  Then overlapping work gains nothing and what counts is the CPU each
contender spends.  Each loop runs in a session of its own, at normal priority, for
the whole run, and is killed at the end.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def busy_loops(count: int) -> Iterator[list[int]]:
    """``count`` processes spinning on a core each; their pids."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL,
                              start_new_session=True) for _ in range(max(0, count))]
    try:
        yield [proc.pid for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait(30)

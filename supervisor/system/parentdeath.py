"""Ending with the parent: Linux's parent-death signal, with the race it leaves closed.

A process the supervisor started must not outlive it, even when the supervisor is
killed with SIGKILL and can run no clean-up of its own (the design's "nothing the
supervisor started outlives it").  ``PR_SET_PDEATHSIG`` asks the kernel to signal us
when the parent dies; a thread of ours waits for that signal synchronously (never a
handler: the main thread may be blocked inside libpq for minutes), runs the caller's
clean-up and ends the process.  The parent may have died before ``prctl`` was called,
so the parent's pid is checked once armed.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
# Not SIGTERM: that one means "stop gracefully" (finish the current revision); the
# parent's death means nobody is left to wait for the result.
PARENT_DIED = signal.SIGUSR2


def arm(expected_parent: int, cleanup: Callable[[], None], exit_code: int) -> None:
    """When ``expected_parent`` dies (or already has), run ``cleanup`` and ``_exit(exit_code)``.

    Call from the main thread before starting any other thread: the signal is blocked
    in every thread so that only the waiting thread receives it.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, {PARENT_DIED})
    libc = ctypes.CDLL(None, use_errno=True)
    if int(libc.prctl(PR_SET_PDEATHSIG, int(PARENT_DIED), 0, 0, 0)) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")

    def wait_for_death() -> None:
        while os.getppid() == expected_parent:
            # A stray SIGUSR2 (someone signalled the process group) is not a death: check.
            signal.sigwait({PARENT_DIED})
        try:
            cleanup()
        finally:
            os._exit(exit_code)

    threading.Thread(target=wait_for_death, name="parent-death", daemon=True).start()

"""Signals read synchronously: handlers only record the signal; the loop acts on it.

Like tini and uvicorn's supervisors, no work happens in a handler.  A self-pipe
(``signal.set_wakeup_fd``) wakes the loop's ``select`` the moment a signal arrives.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from collections import deque
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGCHLD)


class SignalQueue:
    """Pending signals in arrival order, plus a file descriptor that becomes readable on one."""

    def __init__(self) -> None:
        self._pending: deque[int] = deque()
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._previous: dict[int, object] = {}
        self._previous_wakeup = -1
        self.stop_signal: int | None = None

    @property
    def fileno(self) -> int:
        return self._read_fd

    def install(self) -> None:
        self._previous_wakeup = signal.set_wakeup_fd(self._write_fd)
        for sig in HANDLED:
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        signal.set_wakeup_fd(self._previous_wakeup)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        # deque.append is atomic; the wakeup fd has already been written by CPython.
        self._pending.append(signum)

    def _empty_pipe(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._read_fd, 512):
                pass

    def drain(self) -> list[int]:
        """Take every pending signal (and empty the wakeup pipe)."""
        self._empty_pipe()
        taken = []
        while self._pending:
            sig = self._pending.popleft()
            if sig in STOP_SIGNALS and self.stop_signal is None:
                self.stop_signal = sig
            taken.append(sig)
        return taken

    def stop_pending(self) -> bool:
        """True once any stop signal has arrived (remembered after ``drain``)."""
        if self.stop_signal is None:
            for sig in list(self._pending):
                if sig in STOP_SIGNALS:
                    self.stop_signal = sig
                    break
        return self.stop_signal is not None

    def sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; return early (True) as soon as a stop is requested."""
        deadline = time.monotonic() + seconds
        while True:
            if self.stop_pending():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with contextlib.suppress(InterruptedError):
                select.select([self._read_fd], [], [], remaining)
            self._empty_pipe()

    @staticmethod
    def name(sig: int) -> str:
        return signal.Signals(sig).name

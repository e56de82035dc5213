"""A server process's heartbeat: one timestamp in a page of memory both processes map.

The server process writes ``time.monotonic()`` into it from its event loop once a
second; the supervisor reads it only when that process's heartbeat deadline comes.
A heartbeat sent as a message would wake the supervisor every second for every
process (issue #17: at rest it must sleep like supervisord); a write into shared
memory wakes nobody.  gunicorn does the same with a file whose ctime the worker
touches (``workertmp.py``); a mapping avoids a system call per beat and reads the
monotonic clock, which no wall-clock step can move.  CLOCK_MONOTONIC is one clock
for every process of the machine, so the two ends compare directly.
"""

from __future__ import annotations

import mmap
import os
import struct
import tempfile
import time

_FORMAT = struct.Struct("=d")  # seconds on time.monotonic()'s clock
SIZE = mmap.PAGESIZE


class HeartbeatCell:
    """The shared timestamp; ``create`` on the supervisor's side, ``attach`` in the server process."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._map = mmap.mmap(fd, SIZE)

    @classmethod
    def create(cls) -> HeartbeatCell:
        """A fresh cell in an anonymous file (no path to clean up), readable as "never beat" (0.0)."""
        try:
            fd = os.memfd_create("jarlpm-heartbeat", os.MFD_CLOEXEC)
        except (AttributeError, OSError):  # not Linux, or an old kernel: an unlinked file does too
            with tempfile.TemporaryFile() as handle:
                fd = os.dup(handle.fileno())
        os.ftruncate(fd, SIZE)
        return cls(fd)

    @classmethod
    def attach(cls, fd: int) -> HeartbeatCell:
        return cls(fd)

    def beat(self, now: float | None = None) -> None:
        _FORMAT.pack_into(self._map, 0, time.monotonic() if now is None else now)

    def last(self) -> float:
        """The last beat (0.0 if none); read until two reads agree, so a write half-seen is never used."""
        previous = _FORMAT.unpack_from(self._map, 0)[0]
        while True:
            current = _FORMAT.unpack_from(self._map, 0)[0]
            if current == previous:
                return float(current)
            previous = current

    def close(self) -> None:
        if not self._map.closed:
            self._map.close()
        try:
            os.close(self.fd)
        except OSError:
            pass

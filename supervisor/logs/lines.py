"""Splitting a process's output into bounded lines, in linear time whatever its shape.

An app that printed 200 MiB of tqdm-style progress (``\r`` and no newline) once made
the relay buffer all of it, re-scanning it on every read: a core for over a minute,
RSS swinging by 100 MB, and one 147 MB log line (issue #16).
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator
from typing import IO

MAX_LINE = 64 * 1024  # bytes of one line of output; the rest is cut with a marker
READ_BYTES = 65536
# Room for what a server writes while the relay lingers (the default pipe holds 64 KiB:
# 2.6 MB/s over 25 ms): 1 MiB, Linux's default ceiling for an unprivileged process.
RELAY_PIPE_BYTES = 1 << 20
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class LineSplitter:
    """Complete lines of a pipe, in groups of whatever one read returned, each at most MAX_LINE.

    Linear in the output however it is shaped: a carriage return overwrites the line so
    far (what a terminal shows of tqdm-style progress), so only the last segment is
    kept; a line that reaches MAX_LINE goes out at once with a marker and the rest of it
    is counted, not buffered.

    With ``linger``, after a read that emptied the pipe (it returned less than a full
    buffer) the next read waits that long, so what a busy server writes meanwhile comes
    in one read: one wake-up of the reader for many lines instead of one per line
    (issue #17: a server answering 300 requests a second woke the relay 300 times a
    second, then the log writer as often, each wake-up costing more than the line).
    A full read is followed at once (more is waiting), and an idle pipe is waited on
    in ``read`` as before: no timer runs at rest.  The pipe must hold what a server
    writes during ``linger`` (``RELAY_PIPE_BYTES``), or its writes would block.
    """

    def __init__(self, pipe: IO[bytes], linger: float = 0.0) -> None:
        self._read = getattr(pipe, "read1", pipe.read)
        self._linger = linger
        self._pending = bytearray()
        self._overwrite = False  # the last byte seen was a carriage return
        self._cutting = False  # the current line reached MAX_LINE: drop the rest of it
        self._skipped = 0  # bytes of it dropped so far

    def __iter__(self) -> Iterator[list[bytes]]:
        while True:
            data = self._read(READ_BYTES)
            if not data:
                if self._pending or self._cutting:
                    yield self._end_line()
                return
            lines: list[bytes] = []
            *complete, partial = data.split(b"\n")
            for piece in complete:
                lines.extend(self._feed(piece))
                lines.extend(self._end_line())
            lines.extend(self._feed(partial))
            if lines:
                yield lines
            if self._linger and len(data) < READ_BYTES:
                time.sleep(self._linger)

    def _feed(self, piece: bytes) -> list[bytes]:
        if b"\r" in piece:
            stripped = piece.rstrip(b"\r")
            cut = stripped.rfind(b"\r")
            last = stripped[cut + 1:]
            if cut >= 0 or (self._overwrite and last):
                self._restart_line()
            self._overwrite = len(stripped) < len(piece) or (self._overwrite and not last)
            piece = last
        elif piece and self._overwrite:
            self._restart_line()
            self._overwrite = False
        if not piece:
            return []
        if self._cutting:
            self._skipped += len(piece)
            return []
        room = MAX_LINE - len(self._pending)
        if len(piece) < room:
            self._pending += piece
            return []
        head = bytes(self._pending) + piece[:room]
        self._pending.clear()
        self._cutting = True
        self._skipped = len(piece) - room
        return [head + b" \xe2\x80\xa6[line cut at %d bytes]" % MAX_LINE]

    def _restart_line(self) -> None:
        self._pending.clear()
        self._cutting = False
        self._skipped = 0

    def _end_line(self) -> list[bytes]:
        self._overwrite = False
        if self._cutting:
            skipped = self._skipped
            self._restart_line()
            return [b"\xe2\x80\xa6[%d more bytes of the line above dropped]" % skipped] if skipped else []
        line = bytes(self._pending)
        self._pending.clear()
        return [line]


def enlarge_pipe(pipe: IO[bytes], size: int = RELAY_PIPE_BYTES) -> None:
    """Give the pipe room for ``size`` bytes, or as much as the system allows; a file or a refusal is left be."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        fd = pipe.fileno()
        try:
            fcntl.fcntl(fd, F_SETPIPE_SZ, size)
        except PermissionError:  # above fs.pipe-max-size (or the user's pipe pages): take the ceiling
            with open("/proc/sys/fs/pipe-max-size") as limit:
                fcntl.fcntl(fd, F_SETPIPE_SZ, min(size, int(limit.read())))

"""Read the code location out of faulthandler stack dumps and Python tracebacks.

A hang is explained by the innermost frame of the thread that was stuck (the one
running the event loop, not the supervisor's control-reader thread); a crash by
the traceback's last line, the exception, and the innermost frame in the app's own
files rather than in the standard library or site-packages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_THREAD = re.compile(r"^(Current thread|Thread) (0x[0-9a-fA-F]+)")
_DUMP_FRAME = re.compile(r'^\s*File "(?P<file>[^"]*)", line (?P<line>\d+) in (?P<func>\S+)')
_TB_FRAME = re.compile(r'^\s*File "(?P<file>[^"]*)", line (?P<line>\d+), in (?P<func>\S+)')
_EXCEPTION = re.compile(r"^(?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt|Warning|"
                        r"Failure|Timeout|NotFound)(?::.*)?$")
# Frames of the machinery around the app: the supervisor's own threads, threading's bootstrap.
_BOOKKEEPING = ("supervisor/worker.py", "/threading.py", "/selectors.py", "concurrent/futures/thread.py")


@dataclass(frozen=True)
class Frame:
    """One stack frame: where and in which function."""

    file: str
    line: int
    func: str

    @property
    def short(self) -> str:
        return f"{self.func} ({self.file.rsplit('/', 1)[-1]}:{self.line})"

    @property
    def is_app(self) -> bool:
        """Not the standard library, site-packages or a frozen module: the code a team can change."""
        f = self.file
        return not (f.startswith("<") or "site-packages" in f or "dist-packages" in f
                    or re.search(r"/lib/python\d\.\d+/", f) is not None)


@dataclass(frozen=True)
class Stall:
    """Where a stalled event loop was: the innermost frame and the app's endpoint around it."""

    frame: Frame
    app_frame: Frame | None
    endpoint: Frame | None
    thread: str

    def describe(self) -> str:
        text = self.frame.short
        if self.app_frame is not None and self.app_frame != self.frame:
            text += f", called from {self.app_frame.short}"
        if self.endpoint is not None and self.endpoint not in (self.frame, self.app_frame):
            text += f" in endpoint {self.endpoint.func}"
        return text


def _threads(lines: list[str]) -> list[tuple[str, list[Frame]]]:
    threads: list[tuple[str, list[Frame]]] = []
    for line in lines:
        if not isinstance(line, str):
            continue
        head = _THREAD.match(line)
        if head:
            threads.append((head.group(1), []))
            continue
        frame = _DUMP_FRAME.match(line) or _TB_FRAME.match(line)
        if frame and threads:
            threads[-1][1].append(Frame(frame["file"], int(frame["line"]), frame["func"]))
    return threads


def _is_bookkeeping(frames: list[Frame]) -> bool:
    return not frames or any(frames[0].file.endswith(b) or b in frames[0].file for b in _BOOKKEEPING)


def stalled_frame(stacks: object) -> Stall | None:
    """The stuck thread's innermost frame: the current thread unless it is bookkeeping, else the main one."""
    if not isinstance(stacks, list):
        return None
    threads = _threads(stacks)
    current = [t for t in threads if t[0] == "Current thread" and not _is_bookkeeping(t[1])]
    others = [t for t in threads if t[0] != "Current thread" and not _is_bookkeeping(t[1])]
    # faulthandler lists the main thread last; it runs the event loop.
    chosen = current[0] if current else (others[-1] if others else None)
    if chosen is None:
        return None
    frames = chosen[1]
    app = next((f for f in frames if f.is_app and "supervisor/" not in f.file), None)
    endpoint = None
    if app is not None:
        start = frames.index(app)
        run = frames[start:]
        for frame in run:
            if not frame.is_app:
                break
            endpoint = frame
    return Stall(frames[0], app, endpoint, chosen[0])


def exception_line(lines: object) -> str | None:
    """The last ``SomeError: message`` line of a traceback (a list of lines or one string)."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    if not isinstance(lines, list):
        return None
    for line in reversed(lines):
        if isinstance(line, str) and line and not line[0].isspace() and _EXCEPTION.match(line.strip()):
            return line.strip()
    return None


def innermost_app_frame(lines: object) -> Frame | None:
    """The deepest traceback frame in the app's own files (where the fix goes)."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    if not isinstance(lines, list):
        return None
    found = None
    for line in lines:
        match = _TB_FRAME.match(line) if isinstance(line, str) else None
        if match:
            frame = Frame(match["file"], int(match["line"]), match["func"])
            if frame.is_app and "supervisor/" not in frame.file:
                found = frame
    return found

"""Where a connection was taken: a cheap capture of the calling frames, formatted only when reported.

Capturing keeps ``(code object, line number)`` pairs, not frames: a frame would
keep the request's locals alive for as long as the connection stays out, and
``traceback.extract_stack`` reads source lines on every call.
"""

from __future__ import annotations

import functools
import os
import sys
import sysconfig
from types import CodeType, FrameType

RawStack = tuple[tuple[CodeType, int], ...]

MAX_FRAMES = 40
# Frames from these directories tell how, not where, a connection was taken.
_STDLIB_DIRS = tuple(
    {os.path.realpath(path) + os.sep for key in ("stdlib", "platstdlib")
     if (path := sysconfig.get_paths().get(key))}
)
_PACKAGE_DIRS = tuple(
    {os.path.realpath(path) + os.sep for key in ("purelib", "platlib")
     if (path := sysconfig.get_paths().get(key))}
)
_FRAMEWORKS = ("sqlalchemy", "starlette", "fastapi", "anyio", "uvicorn", "pydantic", "psycopg2")
_FRAMEWORK_DIRS = tuple(base + name + os.sep for base in _PACKAGE_DIRS for name in _FRAMEWORKS)
_OWN_DIR = os.path.dirname(os.path.realpath(__file__)) + os.sep


def capture(skip: int = 1) -> RawStack:
    """The caller's stack, innermost first, at most MAX_FRAMES frames; a few microseconds."""
    frame: FrameType | None = sys._getframe(skip + 1)
    frames: list[tuple[CodeType, int]] = []
    while frame is not None and len(frames) < MAX_FRAMES:
        frames.append((frame.f_code, frame.f_lineno))
        frame = frame.f_back
    return tuple(frames)


@functools.lru_cache(maxsize=1024)
def is_framework(filename: str) -> bool:
    """True for the standard library, the web and database stack, and this package itself."""
    path = os.path.realpath(filename)
    return filename.startswith("<") or path.startswith(_STDLIB_DIRS + _FRAMEWORK_DIRS + (_OWN_DIR,))


@functools.lru_cache(maxsize=1024)
def is_library(filename: str) -> bool:
    """True for frameworks and any other installed package: not the application's own code."""
    return is_framework(filename) or os.path.realpath(filename).startswith(_PACKAGE_DIRS)


def display_path(filename: str) -> str:
    """``filename`` relative to the working directory when inside it (shorter, still unique)."""
    try:
        relative = os.path.relpath(filename)
    except ValueError:
        return filename
    return filename if relative.startswith("..") else relative


def describe(code: CodeType, lineno: int) -> str:
    """``path:line in function``, as a person searches for it."""
    return f"{display_path(code.co_filename)}:{lineno} in {code.co_name}"


def format_stack(raw: RawStack, limit: int = 12) -> list[str]:
    """The application's frames, outermost first, as ``path:line in function``.

    Library frames (SQLAlchemy, Starlette, the thread pool) are dropped; an
    application installed as a package keeps its frames outside the frameworks.
    """
    own = [(code, line) for code, line in raw if not is_library(code.co_filename)]
    chosen = own or [(code, line) for code, line in raw if not is_framework(code.co_filename)]
    return [describe(code, line) for code, line in reversed(chosen[:limit])]


def where(raw: RawStack) -> str | None:
    """The innermost application frame: the line that took the connection."""
    for test in (is_library, is_framework):
        for code, line in raw:
            if not test(code.co_filename):
                return describe(code, line)
    return None

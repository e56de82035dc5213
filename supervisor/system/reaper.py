"""Zombie reaping and descendant clean-up: the duties of PID 1 and of a child subreaper.

As PID 1 (a container entrypoint) the supervisor inherits every orphan in its PID
namespace; elsewhere it asks Linux to make it their *subreaper*, so a helper process
that the app started and abandoned is reparented to the supervisor, not to init,
and can be reaped and, at shutdown, stopped.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37


def become_subreaper() -> bool:
    """Make this process the subreaper of its descendants (no-op and True as PID 1)."""
    if os.getpid() == 1:
        return True
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def is_subreaper() -> bool:
    """Whether orphaned descendants come back to this process (PID 1, or ``become_subreaper`` worked)."""
    if os.getpid() == 1:
        return True
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        value = ctypes.c_int(0)
        return int(libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(value), 0, 0, 0)) == 0 and value.value != 0
    except (OSError, AttributeError):
        return False


def reap_any() -> list[tuple[int, int]]:
    """Collect every exited child without blocking: ``[(pid, wait status), ...]``."""
    reaped = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        reaped.append((pid, status))
    return reaped


def parent_map() -> dict[int, int]:
    """pid -> parent pid for every live process, from /proc (zombies included)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: split after the last ')'.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1:
            parents[int(entry.name)] = int(fields[1])
    return parents


_STATES = {"R": "running", "S": "sleeping", "D": "disk_sleep", "T": "stopped", "t": "tracing_stop",
           "Z": "zombie", "X": "dead", "I": "idle"}


def process_state(pid: int) -> str | None:
    """The process's scheduler state from /proc (``stopped`` for SIGSTOP), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return _STATES.get(fields[0], fields[0]) if fields else None


def direct_children() -> list[int]:
    """PIDs whose parent is this process (adopted orphans included)."""
    me = os.getpid()
    return [pid for pid, parent in parent_map().items() if parent == me]


def descendants(root: int) -> list[int]:
    """Every process below ``root`` in the process tree, even those in other sessions."""
    children: dict[int, list[int]] = {}
    for pid, parent in parent_map().items():
        children.setdefault(parent, []).append(pid)
    found, stack = [], list(children.get(root, []))
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


# Set in each server process's environment, with a value of its own; every process it
# starts inherits it, even one that double-forks and calls setsid to escape its group
# and its parent (a daemonising helper), so the helper can still be found (issue #16).
TAG_VARIABLE = "JARLPM_PROCESS_TAG"


def tagged(tag: str) -> list[int]:
    """PIDs of the processes started with ``JARLPM_PROCESS_TAG=tag`` in their environment."""
    needle = f"{TAG_VARIABLE}={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or another user's
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def kill_tagged(tag: str, exclude: frozenset[int] | set[int] = frozenset()) -> list[int]:
    """SIGKILL every process carrying ``tag`` (see ``TAG_VARIABLE``) except ``exclude``; return whom."""
    killed = []
    for pid in tagged(tag):
        if pid in exclude:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return killed


def kill_children(exclude: set[int]) -> list[int]:
    """SIGKILL every direct child (and its group) except ``exclude``; return whom."""
    killed = []
    for pid in direct_children():
        if pid in exclude:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return killed

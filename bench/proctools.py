"""Reading /proc: process trees, resident memory and CPU time; stopping whole trees."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may contain spaces)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[-1].split()


def parent_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def comm(pid: int) -> str:
    """The process's name (``/proc/PID/comm``): a forked server process renames itself."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (not ``root`` itself), from one scan of /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent = parent_of(int(entry))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry))
    found: list[int] = []
    queue = [root]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


FORKED_SERVER_NAME = "jarlpm-server"  # the comm of a process the supervisor's fork server forked


def is_server_process(argv: list[str], name: str = "") -> bool:
    """A uvicorn server: the supervisor's worker, or the ``uvicorn`` or ``gunicorn`` script (not a shell
    naming it).  gunicorn's master has its workers' command line: ``Server.server_pids`` leaves it out.
    A server process forked by the supervisor's fork server has the fork server's command line
    but its own ``name`` (comm)."""
    if "supervisor.server.worker" in argv:
        return True
    if "supervisor.server.forkserver" in argv:
        return name == FORKED_SERVER_NAME
    return any(os.path.basename(arg) in ("uvicorn", "gunicorn") for arg in argv[:2])


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time the process has used so far."""
    fields = _stat_fields(pid)
    if not fields:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tree_cpu_seconds(root: int) -> float:
    """CPU time of ``root`` and its live descendants, including what they spent in children they reaped.

    The shell chain's ``alembic`` and the supervisor's phase runner have exited by the
    first 200: each is counted in its parent's cutime/cstime.
    """
    total = 0
    for pid in [root, *descendants(root)]:
        fields = _stat_fields(pid)
        if fields:
            total += sum(int(value) for value in fields[11:15])
    return total / CLOCK_TICKS


def switches_in_status(text: str) -> int:
    """voluntary + nonvoluntary context switches in the text of one /proc/.../status (pure)."""
    total = 0
    for line in text.splitlines():
        if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
            total += int(line.split()[1])
    return total


def thread_switches(pid: int) -> dict[str, int] | None:
    """Context switches so far of each live thread of ``pid``, by ``TID name``; None once it is gone."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    found = {}
    for tid in tids:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except OSError:
            continue  # the thread exited between the listing and the read
        name = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Name:")), "?")
        found[f"{tid} {name}"] = switches_in_status(text)
    return found


def context_switches(pid: int) -> int | None:
    """Context switches of every live thread of ``pid`` so far: each one is a time it woke up or was preempted.

    Summed over /proc/PID/task/*/status, because /proc/PID/status counts the main
    thread only.  A thread that exits takes its count with it: a window that spans
    a thread's exit undercounts (the supervising processes' threads are long-lived).
    """
    by_thread = thread_switches(pid)
    return None if by_thread is None else sum(by_thread.values())


def rss_kb(pid: int) -> int | None:
    """VmRSS of this one process, in KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def kill_all(pids: list[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def wait_gone(pids: list[int], timeout: float) -> bool:
    """Poll until none of ``pids`` is alive (zombies count as gone); False at the deadline."""
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True

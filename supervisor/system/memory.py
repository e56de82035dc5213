"""A process's resident memory, read from /proc/PID/status as its supervisor sees it."""

from __future__ import annotations


def rss_mb(pid: int) -> float | None:
    """``VmRSS`` of ``pid`` in MiB; None when the process is gone (or /proc does not show it)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024  # the kernel writes kB
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None  # a zombie has no VmRSS line

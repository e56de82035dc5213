"""systemd's journal: a syslog priority prefix on each line when stdout is the journal's stream.

journald strips a leading ``<N>`` and files the line at that priority, so
``journalctl -p err -u jarlpm`` finds the errors while ``journalctl -o cat`` still
shows pure JSON.  systemd sets ``JOURNAL_STREAM=DEVICE:INODE`` for a service whose
stdout it connected to the journal; the variable is inherited by children whose
stdout is something else (a pipe), so the prefix is used only when our stdout *is*
that stream (sd-daemon(3) asks for exactly this check).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# sd-daemon(3)'s SD_ERR, SD_WARNING, SD_INFO, SD_DEBUG (and SD_CRIT).
PRIORITIES = {"critical": "<2>", "error": "<3>", "warning": "<4>", "info": "<6>", "debug": "<7>"}


def stream_is_journal(env: Mapping[str, str], fd: int) -> bool:
    """True when ``fd`` is the stream named by ``JOURNAL_STREAM`` (``device:inode``)."""
    device, _, inode = (env.get("JOURNAL_STREAM") or "").partition(":")
    try:
        stat = os.fstat(fd)
        return (stat.st_dev, stat.st_ino) == (int(device), int(inode))
    except (ValueError, OSError):
        return False


def prefix(level: object) -> str:
    """The priority prefix for a level name; info for anything unknown."""
    return PRIORITIES.get(str(level), "<6>")

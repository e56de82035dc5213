"""Where this process's cgroup v2 directory is, and how ours are named: pure text, no file system.

``cgroups`` does the effects; this module only reads the text of ``/proc/self/cgroup``
and ``/proc/self/mountinfo`` (passed in, so unit tests feed it samples of every setup:
unified, hybrid, v1 only, a systemd unit, a container's cgroup namespace).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

# A supervisor's own directory: its pid (to recognise a dead one's at the next start) and
# a random part (replicas on one host may share a parent cgroup, and pids are reused).
RUN_PREFIX = "jarlpm-"
_RUN_NAME = re.compile(r"^jarlpm-(\d+)-[0-9a-f]+$")
_OCTAL = re.compile(r"\\([0-7]{3})")


def v2_path(proc_cgroup: str) -> str | None:
    """The cgroup v2 path of ``/proc/<pid>/cgroup`` (the ``0::<path>`` line), None if not in v2.

    A v1-only system has no such line; on a hybrid one it is there beside the v1 lines.
    A path outside our cgroup namespace reads ``/..`` and cannot be ours to manage.
    """
    for line in proc_cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, sep, path = rest.partition(":")
        if hierarchy == "0" and sep and controllers == "" and path.startswith("/"):
            if path.endswith(" (deleted)") or ".." in path.split("/"):
                return None
            return path
    return None


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def cgroup2_mounts(mountinfo: str) -> list[tuple[str, str]]:
    """Every cgroup2 mount of ``/proc/self/mountinfo``: ``(root inside the hierarchy, mount point)``."""
    mounts = []
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if "-" not in fields[6:]:
            continue
        separator = fields.index("-", 6)  # optional fields before it vary in number
        if len(fields) > separator + 1 and fields[separator + 1] == "cgroup2" and len(fields) > 4:
            mounts.append((_unescape(fields[3]), _unescape(fields[4])))
    return mounts


def own_directory(proc_cgroup: str, mountinfo: str) -> PurePosixPath | None:
    """The directory of this process's cgroup v2, or None (no cgroup2 mount, not in v2, not visible).

    The mount whose root contains our path is used (a container may mount only a subtree);
    the most specific such root wins.
    """
    path = v2_path(proc_cgroup)
    if path is None:
        return None
    best: tuple[int, PurePosixPath] | None = None
    for root, mountpoint in cgroup2_mounts(mountinfo):
        if root == "/" or path == root or path.startswith(root.rstrip("/") + "/"):
            relative = path[len(root.rstrip("/")):].lstrip("/")
            candidate = PurePosixPath(mountpoint) / relative if relative else PurePosixPath(mountpoint)
            if best is None or len(root) > best[0]:
                best = (len(root), candidate)
    return best[1] if best else None


def run_name(pid: int, token: str) -> str:
    """The directory of one supervisor's run: ``jarlpm-<pid>-<random hex>``."""
    return f"{RUN_PREFIX}{pid}-{token}"


def run_pid(name: str) -> int | None:
    """The supervisor pid in a run directory's name, None if the name is not one of ours."""
    match = _RUN_NAME.match(name)
    return int(match.group(1)) if match else None


def leaf_name(kind: str, slot: int | None, sequence: int) -> str:
    """A process's own leaf: ``server-<slot>-<n>``, or ``server-<n>`` without a slot (a standby's
    is negative); ``n`` never repeats in a run, so a replacement never meets its predecessor's leaf."""
    return f"{kind}-{slot}-{sequence}" if slot is not None and slot >= 0 else f"{kind}-{sequence}"


def populated(events: str) -> bool:
    """``cgroup.events`` says a process is still in the cgroup or below it."""
    for line in events.splitlines():
        key, _, value = line.partition(" ")
        if key == "populated":
            return value.strip() != "0"
    return True  # unreadable as expected: assume someone is still there

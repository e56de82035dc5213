"""This supervisor's cgroup v2 directory and one leaf per server process: a kill nothing escapes.

A helper that double-forks, calls ``setsid`` and clears its environment (``env -i``)
leaves the server's process group, its parentage and its ``JARLPM_PROCESS_TAG``, but
not its cgroup: only a write to a ``cgroup.procs`` moves a process, and a cgroup's
``cgroup.kill`` (Linux 5.14) kills every process in it at once.  So where the
supervisor's own cgroup v2 directory is writable (systemd with ``Delegate=yes``, a
container with a writable cgroup namespace, root on a host), each run gets a
directory ``jarlpm-<pid>-<random>`` below it and each server process a leaf in it
(as systemd does for a unit's processes, and runc for a container's).  No controller is
ever enabled: cgroup v2's "no internal processes" rule only binds once one is, so the
supervisor may stay in its own cgroup, beside the directory it creates.

Elsewhere nothing changes: ``reaper``'s tags still find daemonised helpers.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import time
from pathlib import Path

from supervisor.system import cgrouppath

# Set in a server process's environment: the leaf it runs in.  It joins it itself before
# importing the app, and kills it when the supervisor is gone (even by SIGKILL).
LEAF_VARIABLE = "JARLPM_LEAF_CGROUP"

# Not ours to use: no write access, a read-only mount (ProtectControlGroups=), a
# seccomp filter or a missing capability, or cgroup.max.descendants/max.depth reached
# (EAGAIN).  Anything else is a bug and propagates.
_UNAVAILABLE = (errno.EACCES, errno.EPERM, errno.EROFS, errno.EAGAIN)
# A killed leaf empties within milliseconds (zombies do not count); a process stuck in
# the kernel (D state) can take longer: retry its removal with backoff, never in a loop.
RETRY_S = 0.05
RETRY_MAX_S = 5.0
REFUSED_HINT = ("this server process runs in the supervisor's cgroup, its helpers found by their "
                "JARLPM_PROCESS_TAG only; see docs/deployment.md, or JARLPM_CGROUP=off")


def own_directory() -> Path | None:
    """This process's cgroup v2 directory, None when there is none we can see."""
    try:
        proc_cgroup = Path("/proc/self/cgroup").read_text()
        mountinfo = Path("/proc/self/mountinfo").read_text()
    except FileNotFoundError:  # no /proc/self/cgroup: a kernel without cgroups
        return None
    found = cgrouppath.own_directory(proc_cgroup, mountinfo)
    return Path(found) if found is not None else None


def members(cgroup: Path) -> list[int]:
    """The pids in ``cgroup`` (not below it); [] once it is gone."""
    try:
        return [int(pid) for pid in (cgroup / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


def is_populated(cgroup: Path) -> bool:
    try:
        return cgrouppath.populated((cgroup / "cgroup.events").read_text())
    except FileNotFoundError:
        return False


def _write(path: Path, text: str) -> None:
    """Write an existing interface file: never O_CREAT, which cgroupfs refuses with EACCES, not ENOENT."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def join(cgroup: Path, pid: int = 0) -> None:
    """Move ``pid`` (0: the calling process) into ``cgroup``; OSError if not allowed."""
    _write(cgroup / "cgroup.procs", str(pid))


def kill(cgroup: Path, spare: int | None = None) -> None:
    """SIGKILL everything in ``cgroup`` and below: ``cgroup.kill``, else each member once.

    The fallback (kernels before 5.14) is one pass; a process forked during it is caught
    by the next call (``RunCgroup.collect`` calls again until the leaf is empty).  A
    ``spare`` pid (the caller, on the fallback path) is left alone.
    """
    try:
        _write(cgroup / "cgroup.kill", "1")
        return
    except FileNotFoundError:  # before Linux 5.14, or the cgroup is gone
        if not cgroup.exists():
            return
    for pid in members(cgroup):
        if pid != spare:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def kill_until_empty(cgroup: Path, spare: int | None = None, timeout: float = 1.0) -> None:
    """``kill`` again until nothing but ``spare`` is left (the fallback's forks), up to ``timeout``."""
    deadline = time.monotonic() + timeout
    kill(cgroup, spare)
    while set(members(cgroup)) - {spare} and time.monotonic() < deadline:
        time.sleep(0.01)
        kill(cgroup, spare)


def remove(cgroup: Path) -> bool:
    """rmdir ``cgroup`` once it is empty; True when it is gone."""
    try:
        cgroup.rmdir()
    except FileNotFoundError:
        return True
    except OSError as exc:
        if exc.errno in (errno.EBUSY, errno.ENOTEMPTY):  # still populated, or has a child
            return False
        raise
    return True


def remove_stale(parent: Path, keep: Path | None = None) -> list[str]:
    """Remove the empty directories of supervisors that are gone (killed by SIGKILL); return their names.

    Only ours (``jarlpm-<pid>-<hex>``), only when that pid is not running and nothing is
    left in them: a replica in another PID namespace sharing this parent keeps its own.
    ``keep`` is the caller's own directory; another one with the caller's pid is a dead
    supervisor's whose pid was reused (by the caller).
    """
    removed = []
    for entry in sorted(parent.iterdir()):
        pid = cgrouppath.run_pid(entry.name)
        if pid is None or entry == keep or not entry.is_dir() or is_populated(entry):
            continue
        if pid != os.getpid() and _running(pid):
            continue
        leaves = [leaf for leaf in entry.iterdir() if leaf.is_dir()]
        if all(remove(leaf) for leaf in leaves) and remove(entry):
            removed.append(entry.name)
    return removed


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


class Unavailable(Exception):
    """No cgroup of our own here; the message says why (the tags stay in force)."""


class RunCgroup:
    """One supervisor run's directory and the leaves of its children, until they are removed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sequence = 0
        self.leaves: set[Path] = set()  # holding a live child
        self.dying: set[Path] = set()  # killed, removed once empty (``collect``)
        self.retry_delay = RETRY_S
        self.retry_at: float | None = None  # when ``collect`` has work again (monotonic)
        self.refusal: str | None = None  # why a move into a leaf was refused, until told
        self.refusal_told = False

    @classmethod
    def create(cls) -> tuple[RunCgroup, list[str]]:
        """A directory of our own below our cgroup, and the stale ones removed; ``Unavailable`` if not possible."""
        own = own_directory()
        if own is None:
            raise Unavailable("no cgroup v2 hierarchy is mounted, or this process is not in it (cgroup v1 only)")
        if not (own / "cgroup.procs").exists():
            raise Unavailable(f"{own} is not a cgroup v2 directory")
        # Moving a process needs write access to cgroup.procs of the common ancestor too.
        if not os.access(own / "cgroup.procs", os.W_OK):
            raise Unavailable(f"{own}/cgroup.procs is not writable (under systemd: Delegate=yes)")
        path = own / cgrouppath.run_name(os.getpid(), secrets.token_hex(4))
        try:
            path.mkdir()
        except OSError as exc:
            if exc.errno in _UNAVAILABLE:
                raise Unavailable(f"cannot create a cgroup in {own}: {exc.strerror}") from None
            raise
        try:
            stale = remove_stale(own, keep=path)
        except PermissionError:  # a neighbour's directory we may not touch: theirs to clean
            stale = []
        return cls(path), stale

    def leaf(self, kind: str, slot: int | None = None) -> Path | None:
        """A new, empty leaf for one child; None if it cannot be made (the tags still work)."""
        self.sequence += 1
        path = self.path / cgrouppath.leaf_name(kind, slot, self.sequence)
        try:
            path.mkdir()
        except OSError:
            return None
        self.leaves.add(path)
        return path

    def join(self, leaf: Path, pid: int) -> bool:
        """Move a just-spawned child into its leaf; False (and the leaf dropped) if refused."""
        try:
            join(leaf, pid)
        except ProcessLookupError:  # it died already; its leaf is killed and removed as usual
            return True
        except OSError as exc:  # any refusal (EBUSY, EOPNOTSUPP, EACCES...): this child runs on with tags only
            self.refusal = self.refusal or f"cannot move a process into {leaf}: {exc.strerror}"
            self.leaves.discard(leaf)
            remove(leaf)
            return False
        return True

    def untold_refusal(self) -> str | None:
        """The first refused move, once (to be logged), then None."""
        if self.refusal is None or self.refusal_told:
            return None
        self.refusal_told = True
        return self.refusal

    def kill(self, leaf: Path, unlisted_group: int | None = None) -> list[int]:
        """Kill everything left in a child's leaf; return whom, except members of process group ``unlisted_group``.

        Removal follows in ``collect``.  (Those of ``unlisted_group`` are killed too; the
        caller only does not need to hear of them.)
        """
        pids = [pid for pid in members(leaf) if unlisted_group is None or _group_of(pid) not in (unlisted_group, None)]
        kill(leaf)
        self.leaves.discard(leaf)
        self.dying.add(leaf)
        self.retry_delay = RETRY_S  # a fresh kill: look again soon, whatever an older leaf made us wait
        self.collect(force=True)
        return pids

    def collect(self, force: bool = False) -> None:
        """Remove the killed leaves that are empty now; kill again what is still in the others.

        Called from the loop on every pass: it does nothing before ``next_due`` unless ``force``.
        """
        now = time.monotonic()
        if not self.dying or (not force and self.retry_at is not None and now < self.retry_at):
            return
        for leaf in list(self.dying):
            if not is_populated(leaf) and remove(leaf):
                self.dying.discard(leaf)
            else:
                kill(leaf)
        if self.dying:
            self.retry_at, self.retry_delay = now + self.retry_delay, min(self.retry_delay * 2, RETRY_MAX_S)
        else:
            self.retry_at, self.retry_delay = None, RETRY_S

    def next_due(self) -> float | None:
        """When ``collect`` has work again (monotonic), None if nothing waits for removal."""
        return self.retry_at if self.dying else None

    def close(self, timeout: float = 2.0) -> list[int]:
        """Kill every leaf and remove them and the run's directory: the supervisor is exiting."""
        killed = []
        for leaf in list(self.leaves):
            killed += self.kill(leaf)
        kill(self.path)  # anything moved straight into the run's directory
        deadline = time.monotonic() + timeout
        while self.dying and time.monotonic() < deadline:
            time.sleep(0.01)
            self.collect(force=True)
        if not self.dying:
            remove(self.path)
        return killed

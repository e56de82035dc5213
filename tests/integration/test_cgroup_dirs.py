"""``system.cgroups`` against the real cgroup file system and real processes, without a supervisor."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from procs import pids_alive, wait_for

from supervisor.system import cgrouppath, cgroups

# A process that escapes all but its cgroup: double fork, setsid, an empty environment.
ESCAPE = """
import os, sys
sys.stdin.readline()  # joined its leaf: go
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execve("/bin/sleep", ["sleep", "600"], {})
    os._exit(0)
os.wait()
sys.stdout.write("escaped\\n")
"""


def writable() -> bool:
    own = cgroups.own_directory()
    if own is None or not os.access(own / "cgroup.procs", os.W_OK):
        return False
    probe = own / f"jarlpm-probe-{os.getpid()}"
    try:
        probe.mkdir()
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return False
        raise
    probe.rmdir()
    return True


needs_cgroup = pytest.mark.skipif(not writable(), reason="no writable cgroup v2 here (v1 only, or not root "
                                                          "nor delegated)")


@pytest.fixture
def run() -> Iterator[cgroups.RunCgroup]:
    run, _ = cgroups.RunCgroup.create()
    try:
        yield run
    finally:
        run.close()


def command_of(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except FileNotFoundError:  # exited meanwhile
        return None


def sleepers_in(leaf: Path) -> list[int]:
    return [pid for pid in cgroups.members(leaf) if command_of(pid) == "sleep"]


@needs_cgroup
class TestRunCgroup:
    """A run's directory, its leaves, their kill and removal."""

    def test_kill_reaches_an_escaped_process_and_the_leaf_goes(self, run: cgroups.RunCgroup) -> None:
        """A process that double-forked with an empty environment is killed with its leaf; the leaf is removed."""
        leaf = run.leaf("server", 0)
        assert leaf is not None
        child = subprocess.Popen([sys.executable, "-c", ESCAPE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 start_new_session=True)
        assert run.join(leaf, child.pid)
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(b"go\n")
        child.stdin.close()
        assert child.stdout.readline() == b"escaped\n"
        child.wait(10)
        [helper] = wait_for(lambda: sleepers_in(leaf), 10, "the escaped sleep in the leaf")
        try:
            assert run.kill(leaf) == [helper]
            wait_for(lambda: not pids_alive([helper]), 10, "the escaped process killed")
            wait_for(lambda: (run.collect(), not leaf.exists())[1], 10, "the leaf removed")
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(helper, signal.SIGKILL)

    def test_close_removes_every_directory(self) -> None:
        """close kills every leaf and removes them and the run's directory."""
        run, _ = cgroups.RunCgroup.create()
        leaf = run.leaf("server", 1)
        assert leaf is not None
        sleeper = subprocess.Popen(["sleep", "600"])
        try:
            assert run.join(leaf, sleeper.pid)
            assert run.close() == [sleeper.pid]
            assert sleeper.wait(10) == -signal.SIGKILL
            assert not run.path.exists()
        finally:
            sleeper.kill()

    def test_a_dead_supervisors_directory_with_our_pid_is_stale(self, run: cgroups.RunCgroup) -> None:
        """Our pid reused: an empty directory with our pid that is not ours belongs to a dead supervisor."""
        reused = run.path.parent / cgrouppath.run_name(os.getpid(), "0ddba11")
        reused.mkdir()
        try:
            assert reused.name in cgroups.remove_stale(run.path.parent, keep=run.path)
            assert run.path.exists()
        finally:
            with contextlib.suppress(FileNotFoundError):
                reused.rmdir()

    def test_stale_directories_of_dead_supervisors_only(self, run: cgroups.RunCgroup) -> None:
        """An empty directory whose supervisor pid is gone is removed; a live supervisor's is kept."""
        dead = subprocess.Popen(["true"])
        dead.wait(10)
        stale = run.path.parent / cgrouppath.run_name(dead.pid, "0badc0de")
        stale.mkdir()
        (stale / "server-0-1").mkdir()
        try:
            removed = cgroups.remove_stale(run.path.parent, keep=run.path)
            assert stale.name in removed and not stale.exists()
            assert run.path.exists() and run.path.name not in removed  # ours
        finally:
            with contextlib.suppress(FileNotFoundError):
                (stale / "server-0-1").rmdir()
                stale.rmdir()


class TestRefusedMove:
    """A move the kernel refuses leaves the child with the tags only, and is told once."""

    def test_refusal_is_recorded_once(self, tmp_path: Path) -> None:
        """join on a directory that is no cgroup fails; the reason is handed out once; the leaf is dropped."""
        run = cgroups.RunCgroup(tmp_path)
        leaf = run.leaf("server", 0)
        assert leaf is not None
        assert run.join(leaf, os.getpid()) is False
        reason = run.untold_refusal()
        assert reason is not None and str(leaf) in reason
        assert run.untold_refusal() is None
        assert leaf not in run.leaves and not leaf.exists()


class TestKillWithoutCgroupKill:
    """Before Linux 5.14 there is no cgroup.kill: every member is killed one by one."""

    def test_members_are_killed_when_cgroup_kill_is_missing(self, tmp_path: Path) -> None:
        """A directory without cgroup.kill (as on an old kernel): its cgroup.procs members get SIGKILL,
        and no cgroup.kill file is created (cgroupfs would refuse O_CREAT with EACCES)."""
        sleeper = subprocess.Popen(["sleep", "600"])
        try:
            (tmp_path / "cgroup.procs").write_text(f"{sleeper.pid}\n")
            cgroups.kill(tmp_path)
            assert sleeper.wait(10) == -signal.SIGKILL
            assert not (tmp_path / "cgroup.kill").exists()
        finally:
            sleeper.kill()

"""A cgroup of its own per server process (issue #16): a helper that escapes everything else still dies.

The helper of ``/escape`` double-forks, calls ``setsid`` and execs with an empty
environment: it leaves the server's process group, its parentage and its
``JARLPM_PROCESS_TAG``, but not its cgroup.  These tests need a writable cgroup v2
(root on a host, systemd's ``Delegate=yes``, a container with its own cgroup
namespace) and are skipped, saying so, where there is none.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from procs import APPS, Supervisor, base_env, pids_alive, running, wait_for

from supervisor.system import cgrouppath, cgroups

SAMPLE = {"JARLPM_APP": "sampleapp:app", "JARLPM_APP_DIR": str(APPS)}


def writable_cgroup() -> Path | None:
    """Our cgroup v2 directory if a child can be created in it (as the supervisor will try)."""
    own = cgroups.own_directory()
    if own is None:
        return None
    probe = own / f"jarlpm-probe-{os.getpid()}"
    try:
        probe.mkdir()
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return None
        raise
    probe.rmdir()
    return own


OWN = writable_cgroup()
pytestmark = pytest.mark.skipif(OWN is None, reason="no writable cgroup v2 here (cgroup v1 only, or not "
                                                    "root nor delegated): the process tags are all there is")


def run_directories(supervisor_pid: int) -> list[Path]:
    """The cgroup directories of the supervisor with this pid, next to our own cgroup."""
    assert OWN is not None
    return [entry for entry in OWN.iterdir() if cgrouppath.run_pid(entry.name) == supervisor_pid]


def escape(sup: Supervisor) -> int:
    """Have the server start a helper that escapes group, parent and tag; return its pid."""
    helper = int(json.loads(sup.get("/escape")[2])["helper_pid"])
    # It tells its pid just before its exec: read its environment once the exec is done.
    wait_for(lambda: Path(f"/proc/{helper}/comm").read_text().strip() == "sleep", 10, "the helper's exec")
    environ = Path(f"/proc/{helper}/environ").read_bytes()
    assert b"JARLPM_PROCESS_TAG" not in environ, "the helper must have left its tag behind"
    return helper


@contextlib.contextmanager
def killed_at_the_end(pid: int) -> Iterator[None]:
    """The test's own clean-up, should the supervisor have failed to kill the helper."""
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def worker_pids(sup: Supervisor) -> list[int]:
    ready = {e["pid"] for e in sup.find("child.ready")}
    exited = {e["pid"] for e in sup.find("child.exited")}
    return sorted(ready - exited)


class TestCgroupPerServerProcess:
    """Each server process runs in a leaf of this run's cgroup; its exit kills the whole leaf."""

    def test_a_crash_kills_the_escaped_helper_and_a_stop_leaves_no_cgroup(self, app_db: str) -> None:
        """The server dies: its helper dies through the cgroup, the supervisor serves on; after SIGTERM
        no directory of this run remains."""
        with running(base_env(app_db, **SAMPLE)) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            run_dir = Path(sup.wait_event("supervisor.cgroup", timeout=10)["path"])
            assert run_dir.is_dir() and run_dir in run_directories(sup.pid)
            helper = escape(sup)
            with killed_at_the_end(helper):
                server = worker_pids(sup)[0]
                leaf = Path(Path(f"/proc/{server}/cgroup").read_text().strip().split("::", 1)[1])
                assert leaf.parent.name == run_dir.name, "the server process is in a leaf of the run"
                with contextlib.suppress(OSError):
                    sup.get("/crash")
                sup.wait_event("child.exited", timeout=30, pid=server)
                wait_for(lambda: not pids_alive([helper]), 10, "the escaped helper gone with its server")
                killed = sup.wait_event("supervisor.orphans_killed", timeout=10, of_pid=server)
                assert killed["via"] == "cgroup" and helper in killed["pids"], killed
                wait_for(lambda: len(sup.find("child.ready")) >= 2, 60, "a replacement ready")
                assert sup.proc.poll() is None, "the supervisor serves on"
                wait_for(lambda: not (run_dir / leaf.name).exists(), 10, "the dead process's leaf removed")
                sup.signal(signal.SIGTERM)
                assert sup.wait_exit(60) == 0
                assert not run_dir.exists(), "every cgroup of the run removed at the stop"

    def test_sigkill_of_the_supervisor_kills_the_escaped_helper(self, app_db: str) -> None:
        """The supervisor is SIGKILLed: each server process kills its own leaf, helper included; the
        empty directory left behind is removed at the next start (``remove_stale``)."""
        with running(base_env(app_db, **SAMPLE)) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            helper = escape(sup)
            with killed_at_the_end(helper):
                os.kill(sup.pid, signal.SIGKILL)
                sup.proc.wait(10)
                wait_for(lambda: not pids_alive([helper]), 10, "the escaped helper gone")
                assert OWN is not None
                # Nobody was left to remove its directory: the next start does.  (Another
                # supervisor starting on this host meanwhile may have done it already.)
                stale = run_directories(sup.pid)
                wait_for(lambda: not any(cgroups.is_populated(d) for d in stale), 10, "its leaves emptied")
                removed = cgroups.remove_stale(OWN)
                assert all(d.name in removed or not d.exists() for d in stale)
                assert run_directories(sup.pid) == []

    def test_giving_up_removes_every_cgroup(self, app_db: str) -> None:
        """Giving up on a crash loop (exit 70) removes this run's cgroups as a stop does."""
        env = base_env(app_db, **{**SAMPLE, "JARLPM_APP": "sampleapp:no_such_app", "CRASH_LOOP_LIMIT": "1"})
        with running(env) as sup:
            path = Path(sup.wait_event("supervisor.cgroup", timeout=30)["path"])
            assert sup.wait_exit(60) == 70
            assert not path.exists(), "the run's cgroup removed"

    def test_phase_process_has_a_leaf_and_failed_phases_remove_every_cgroup(self) -> None:
        """The phase process runs in a leaf of its own; failed phases (exit 69) remove every cgroup."""
        env = base_env("postgresql://nobody@127.0.0.1:9/none", DB_WAIT_TIMEOUT="3", **SAMPLE)
        with running(env) as sup:
            path = Path(sup.wait_event("supervisor.cgroup", timeout=30)["path"])
            leaf = wait_for(lambda: next((d for d in path.glob("phases-*") if cgroups.members(d)), None), 10,
                            "the phase process in its leaf")
            [pid] = cgroups.members(leaf)
            assert "supervisor.supervision.phase_process" in Path(f"/proc/{pid}/cmdline").read_text()
            assert sup.wait_exit(60) == 69
            assert not path.exists(), "the run's cgroup removed"

    def test_off_leaves_cgroups_alone(self, app_db: str) -> None:
        """JARLPM_CGROUP=off: no cgroup is created and nothing is said about cgroups."""
        env = base_env(app_db, JARLPM_CGROUP="off", DATABASE_URL="postgresql://nobody@127.0.0.1:9/none",
                       DB_WAIT_TIMEOUT="1", **SAMPLE)
        with running(env) as sup:
            sup.wait_event("phase.started", timeout=30, phase="wait_for_db")  # the processes prespawned
            assert run_directories(sup.pid) == []
            assert sup.wait_exit(60) == 69
            assert not sup.find("supervisor.cgroup") and not sup.find("supervisor.cgroup_unavailable")

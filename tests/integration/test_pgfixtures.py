"""The tests' own PostgreSQL clusters do not outlive a test run that is killed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from procs import REPO, wait_for

pytestmark = pytest.mark.timeout(180)

OWNER = """
import sys, time
sys.path[:0] = [{tests!r}]
from pgfixtures import throwaway_cluster
with throwaway_cluster() as cluster:
    pid = (cluster.datadir / "postmaster.pid").read_text().split()[0]
    print(pid, cluster.datadir, flush=True)
    time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_cluster_stopped_when_the_run_is_killed() -> None:
    """SIGKILL the process that started a cluster: its guard stops the postmaster."""
    owner = subprocess.Popen([sys.executable, "-c", OWNER.format(tests=str(REPO / "tests"))],
                             stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert owner.stdout is not None
    try:
        pid_text, datadir = owner.stdout.readline().split()
        postmaster = int(pid_text)
        assert alive(postmaster)
        owner.send_signal(signal.SIGKILL)
        owner.wait(30)
        wait_for(lambda: not alive(postmaster), timeout=60, what="the orphaned postmaster to stop")
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(30)
    shutil.rmtree(Path(datadir).parent, ignore_errors=True)

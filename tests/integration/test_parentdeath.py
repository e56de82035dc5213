"""``system.parentdeath``: a child ends, after its clean-up, when its parent dies, even by SIGKILL.

Real processes: a parent that starts a child and is then killed; no database needed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from procs import REPO, pids_alive, wait_for

CHILD = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from supervisor.system import parentdeath
    marker = Path(sys.argv[1])
    expected = int(sys.argv[2]) if len(sys.argv) > 2 else os.getppid()
    parentdeath.arm(expected, lambda: marker.write_text("cleaned up"), 42)
    print(os.getpid(), flush=True)
    time.sleep(60)
""")

PARENT = textwrap.dedent("""
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]], stdout=subprocess.PIPE)
    print(child.stdout.readline().decode().strip(), flush=True)
    time.sleep(60)
""")


def run_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


class TestParentDeath:
    """The clean-up runs and the process exits, however the parent went."""

    def test_parent_killed_with_sigkill(self, tmp_path: Path) -> None:
        """SIGKILL of the parent: the child runs its clean-up and is gone within seconds."""
        marker = tmp_path / "marker"
        parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD, str(marker)], env=run_env(),
                                  stdout=subprocess.PIPE, start_new_session=True)
        try:
            assert parent.stdout is not None
            child = int(parent.stdout.readline())
            assert pids_alive([child]) and not marker.exists()
            os.kill(parent.pid, signal.SIGKILL)
            parent.wait(10)
            wait_for(lambda: not pids_alive([child]), 10, "the child to end with its parent")
            assert marker.read_text() == "cleaned up"
        finally:
            if pids_alive([parent.pid]):
                os.killpg(parent.pid, signal.SIGKILL)

    def test_parent_already_gone_when_armed(self, tmp_path: Path) -> None:
        """Armed after the parent died (the race prctl leaves): the clean-up runs at once; exit code as asked."""
        marker = tmp_path / "marker"
        not_our_parent = os.getpid() + 1_000_000  # no process has this pid: "the parent is gone"
        child = subprocess.run([sys.executable, "-c", CHILD, str(marker), str(not_our_parent)], env=run_env(),
                               capture_output=True, timeout=30)
        assert child.returncode == 42
        assert marker.read_text() == "cleaned up"

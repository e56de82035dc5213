"""Stops a PostgreSQL cluster we started if we die without stopping it.

``pg_ctl start`` daemonises the server, so killing its owner (development mode's
supervisor, or a test run) with SIGKILL would leave it running.  The owner starts
this guard (``watch``) in its own session with a pipe on standard input; the pipe
reaches end of file when the owner exits in any way, and then the guard runs the
stop command (a no-op after an orderly stop).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from supervisor.contract.paths import package_root

if TYPE_CHECKING:
    from supervisor.database.pgcluster import LocalPostgres


def watch(cluster: LocalPostgres) -> subprocess.Popen[bytes]:
    """Start the guard of ``cluster``; close its stdin (or exit) to let it go."""
    return subprocess.Popen(
        [sys.executable, "-m", "supervisor.database.pgguard", str(cluster.datadir / "postmaster.pid"),
         json.dumps(cluster.stop_command())],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, cwd="/",
        env={**os.environ, "PYTHONPATH": str(package_root())},
    )


def main(argv: list[str]) -> int:
    pidfile, command = Path(argv[0]), json.loads(argv[1])
    while sys.stdin.buffer.read(4096):
        pass
    if pidfile.exists():
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
                       check=False, cwd="/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

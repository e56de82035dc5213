"""Stops development mode's embedded PostgreSQL if the supervisor dies without stopping it.

``pg_ctl start`` daemonises the server, so killing the supervisor with SIGKILL would
leave it running.  The supervisor starts this guard in its own session with a pipe
on standard input; the pipe reaches end of file when the supervisor exits in any
way, and then the guard runs the stop command (a no-op after an orderly stop).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


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

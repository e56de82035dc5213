"""The backend served the way people run it without the supervisor: ``uvicorn server:app --app-dir backend``."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import httpx
from procs import REPO, wait_for

from supervisor.database.pgcluster import free_port


class Served:
    """A uvicorn process serving the backend; every line it writes is kept for assertions."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "uvicorn", "server:app", "--app-dir", str(REPO / "backend"),
                   "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log"]
        self.proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = f"http://127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_healthy(self, timeout: float = 30) -> None:
        def healthy() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited ({self.proc.returncode}):\n{self.output()}")
            with contextlib.suppress(httpx.TransportError):
                return httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200
            return False

        wait_for(healthy, timeout, "the server to answer /api/health")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._reader.join(5)


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    """A clean environment: nothing inherited but PATH and HOME."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "PYTHONPATH": str(REPO),
        "DATABASE_URL": database_url,
    }
    env.update(extra)
    return env


@contextlib.contextmanager
def served(database_url: str, **extra: str) -> Iterator[Served]:
    """Serve the backend on ``database_url`` until the block ends; stopped (and reaped) on every path."""
    server = Served(server_env(database_url, **extra))
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()

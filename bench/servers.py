"""Starting the contenders as real process trees, and stopping them without leaving anything behind.

Every contender runs in a session of its own with a clean environment, listens on
loopback only, and writes its output to a log file (or a pipe the caller reads).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench import probe, proctools
from bench.paths import BIN, PYTHON, REPO


@dataclass
class ServerSpec:
    """What to run: a label for the reports, the command, its environment, its port."""

    label: str
    argv: list[str]
    env: dict[str, str]
    port: int
    cwd: Path = REPO
    ctl: list[str] = field(default_factory=list)  # supervisorctl command prefix, for supervisord
    # The root is a pre-fork master (gunicorn's arbiter): it holds the socket and its
    # children serve, so it is never one of the server processes, although its command
    # line is theirs.
    master: bool = False


# Below Linux's ephemeral range (32768-60999): the thousands of client connections
# the scenarios (and any test run next door) open cannot be holding the port.
PORT_RANGE = (20000, 32000)


def pick_port() -> int:
    """A loopback port outside the ephemeral range that nothing listens on right now."""
    for _ in range(200):
        port = random.randrange(*PORT_RANGE)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORT_RANGE}")


class PortTaken(RuntimeError):
    """The contender could not listen: someone else took the port between the pick and the bind."""


def clean_env(port: int, **extra: str) -> dict[str, str]:
    """Nothing inherited but PATH (with the venv's scripts first) and HOME."""
    env = {
        "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "PORT": str(port),
    }
    env.update(extra)
    return env


class Server:
    """One running contender: its process tree, its log, and how to stop it."""

    def __init__(self, spec: ServerSpec, log_path: Path | None, capture: bool = False) -> None:
        self.spec = spec
        self.log_path = log_path
        self._log: IO[bytes] | None = None
        if capture:
            stdout: Any = subprocess.PIPE
        else:
            assert log_path is not None
            self._log = open(log_path, "wb")  # noqa: SIM115 (closed in stop())
            stdout = self._log
        self.started = time.monotonic()
        self.proc = subprocess.Popen(spec.argv, env=spec.env, cwd=spec.cwd, stdin=subprocess.DEVNULL,
                                     stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True)
        self._seen: set[int] = set()
        self.ready_s: float | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def port(self) -> int:
        return self.spec.port

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_http(self, path: str = "/api/health", timeout: float = 90) -> float:
        """Seconds from launch to the first 200 on ``path``, from this contender and no other.

        Raises PortTaken when the contender died because its port was taken: the 200 (if
        any) came from a stranger on that port.
        """
        try:
            answered = probe.first_200(self.port, path, timeout, self.running)
        except RuntimeError as exc:
            if self._port_taken():
                raise PortTaken(f"{self.spec.label}: port {self.port} taken") from None
            raise RuntimeError(f"{self.spec.label}: {exc}\n{self.tail()}") from None
        if not self.running() or not self.server_pids():
            if self._port_taken():
                raise PortTaken(f"{self.spec.label}: port {self.port} taken")
            raise RuntimeError(f"{self.spec.label}: a 200 on port {self.port}, but no server of ours\n"
                               f"{self.tail()}")
        return answered - self.started

    def _port_taken(self) -> bool:
        text = self.tail(200).lower()
        return "address already in use" in text

    # -- the process tree ----------------------------------------------------------------
    def tree(self) -> list[int]:
        pids = proctools.descendants(self.pid)
        self._seen.update(pids)
        return pids

    def server_pids(self) -> list[int]:
        """The uvicorn processes in the tree (the supervisor's workers count as such)."""
        candidates = self.tree() if self.spec.master else [self.pid, *self.tree()]
        return [pid for pid in candidates
                if proctools.is_server_process(proctools.cmdline(pid), proctools.comm(pid))]

    def wait_server_pid(self, timeout: float = 30, exclude: set[int] | None = None) -> int:
        deadline = time.monotonic() + timeout
        while True:
            pids = [pid for pid in self.server_pids() if pid not in (exclude or set())]
            if pids:
                return pids[0]
            if time.monotonic() > deadline or not self.running():
                raise RuntimeError(f"{self.spec.label}: no server process found\n{self.tail()}")
            time.sleep(0.02)

    # -- stopping -----------------------------------------------------------------------
    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def wait_exit(self, timeout: float) -> float | None:
        """Seconds until the root process exits, or None at the deadline."""
        started = time.monotonic()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return time.monotonic() - started

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM, wait, then SIGKILL the group and every process ever seen in the tree."""
        self.tree()
        if self.running():
            self.signal(signal.SIGTERM)
            if self.wait_exit(timeout) is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.wait_exit(10)
        leftovers = [pid for pid in self._seen if proctools.alive(pid)]
        proctools.kill_all(leftovers)
        proctools.wait_gone(leftovers, 10)
        if self._log is not None:
            self._log.close()

    # -- the log ------------------------------------------------------------------------
    def tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_size(self) -> int:
        """Bytes in the log so far: a mark for ``wait_text``."""
        try:
            return self.log_path.stat().st_size if self.log_path is not None else 0
        except FileNotFoundError:
            return 0

    def wait_text(self, text: str, timeout: float, since: int = 0) -> float:
        """Poll the log beyond byte ``since`` until ``text`` appears; the monotonic time it was seen.

        Reads only what was appended since the last poll: under load the log grows by
        thousands of access lines a second.
        """
        assert self.log_path is not None
        deadline = time.monotonic() + timeout
        needle = text.encode()
        carry = b""
        with open(self.log_path, "rb") as log:
            log.seek(since)
            while True:
                chunk = carry + log.read()
                if needle in chunk:
                    return time.monotonic()
                carry = chunk[-len(needle):]
                if time.monotonic() > deadline or not self.running():
                    raise RuntimeError(f"{self.spec.label}: no {text!r} within {timeout}s\n{self.tail()}")
                time.sleep(0.01)

    def count_text(self, text: str) -> int:
        """Lines of the log that contain ``text``."""
        if self.log_path is None or not self.log_path.exists():
            return 0
        needle = text.encode()
        with open(self.log_path, "rb") as log:
            return sum(needle in line for line in log)

    def events(self) -> list[dict[str, Any]]:
        """The JSON objects in the log (the supervisor's stream)."""
        if self.log_path is None or not self.log_path.exists():
            return []
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    value = json.loads(line)
                    if isinstance(value, dict):
                        found.append(value)
        return found

    def wait_event(self, name: str, timeout: float, after: int = 0) -> dict[str, Any]:
        """The first ``name`` event beyond the first ``after`` of them; polls the log file."""
        deadline = time.monotonic() + timeout
        while True:
            hits = [e for e in self.events() if e.get("event") == name]
            if len(hits) > after:
                return hits[after]
            if time.monotonic() > deadline or not self.running():
                raise RuntimeError(f"{self.spec.label}: no {name} event within {timeout}s\n{self.tail()}")
            time.sleep(0.02)


# -- the contenders -------------------------------------------------------------------------
def supervisor(port: int, database_url: str, state_dir: Path, extra: Mapping[str, str] | None = None) -> ServerSpec:
    """``python -m supervisor run``: the JarlPM supervisor."""
    env = clean_env(port, DATABASE_URL=database_url, HOST="127.0.0.1", LOG_FORMAT="json",
                    PYTHONPATH=str(REPO), JARLPM_STATE_DIR=str(state_dir), **(extra or {}))
    return ServerSpec("supervisor", [PYTHON, "-m", "supervisor", "run"], env, port)


def uvicorn_command(port: int, app: str = "server:app", app_dir: str = "backend") -> str:
    return f"uvicorn {app} --app-dir {app_dir} --host 127.0.0.1 --port {port}"


def shell_chain(port: int, database_url: str, ini: Path | None = None, loop: bool = False,
                extra: Mapping[str, str] | None = None) -> ServerSpec:
    """``sh -c "alembic upgrade head && uvicorn ..."``: what the deployment guide says, typed in a shell.

    With ``loop``, the chain is restarted by ``while true; do ...; done`` (no sleep:
    the fastest such a loop can come back).
    """
    alembic = f"alembic -c {ini} upgrade head" if ini else "alembic upgrade head"
    chain = f"{alembic} && {uvicorn_command(port)}"
    script = f"while true; do {chain}; done" if loop else chain
    env = clean_env(port, DATABASE_URL=database_url, **(extra or {}))
    if ini:
        env["JARLPM_ALEMBIC_INI"] = str(ini)
    return ServerSpec("shell loop" if loop else "shell chain", ["sh", "-c", script], env, port)


def plain_uvicorn(port: int, app: str, app_dir: str, extra: Mapping[str, str] | None = None) -> ServerSpec:
    """``uvicorn APP --app-dir DIR``: no supervision at all."""
    env = clean_env(port, **(extra or {}))
    argv = [str(BIN / "uvicorn"), app, "--app-dir", app_dir, "--host", "127.0.0.1", "--port", str(port)]
    return ServerSpec("uvicorn", argv, env, port)


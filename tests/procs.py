"""Running the real supervisor in tests: a process in its own session, its JSON lines, HTTP calls."""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from supervisor.database.pgcluster import free_port

REPO = Path(__file__).resolve().parent.parent
APPS = REPO / "tests" / "apps"
# Set by conftest for each test: False refuses to start a supervisor in a test not marked
# ``slow`` (end-to-end tests live in tests/e2e or carry the marker), None outside pytest.
SLOW_TEST_RUNNING: bool | None = None
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ, named only from Python 3.10 on some platforms


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Supervisor:
    """A supervisor process under test; collects every stdout line (all must be JSON)."""

    def __init__(self, env: dict[str, str], args: tuple[str, ...] = ("run",),
                 command: list[str] | None = None, cwd: Path = REPO, log_reader: bool = False) -> None:
        """``log_reader``: stdout goes through a ``cat`` process (``self.reader``) over a one-page
        pipe, so a test can stall the log's reader with SIGSTOP as a stopped journald would."""
        if SLOW_TEST_RUNNING is False:
            raise AssertionError("a test that starts a real supervisor is end-to-end: put it in tests/e2e "
                                 "or mark it @pytest.mark.slow")
        self.env = env
        self.json_only = env.get("LOG_FORMAT", "json") == "json"
        self.port = int(env.get("PORT", "0") or 0)
        cmd = command or [sys.executable, "-m", "supervisor", *args]
        self.reader: subprocess.Popen[bytes] | None = None
        if log_reader:
            read_end, write_end = os.pipe()
            fcntl.fcntl(write_end, F_SETPIPE_SZ, 4096)
            self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=write_end,
                                         stderr=subprocess.PIPE, start_new_session=True)
            self.reader = subprocess.Popen(["cat"], stdin=read_end, stdout=subprocess.PIPE,
                                           start_new_session=True)
            os.close(read_end)
            os.close(write_end)
            stdout = self.reader.stdout
        else:
            self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, start_new_session=True)
            stdout = self.proc.stdout
        self.lines: list[str] = []
        self.stderr_lines: list[str] = []
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._read, args=(stdout, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr_lines), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read(self, pipe: Any, into: list[str]) -> None:
        for raw in iter(pipe.readline, b""):
            with self._lock:
                into.append(raw.decode("utf-8", "replace").rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def events(self) -> list[dict[str, Any]]:
        """Every stdout line as an event; with LOG_FORMAT=json a line that is not a JSON object fails."""
        with self._lock:
            lines = list(self.lines)
        out = []
        for line in lines:
            try:
                value = json.loads(line)
            except ValueError:
                value = None
            if isinstance(value, dict):
                out.append(value)
            elif self.json_only:
                raise AssertionError(f"not a JSON object on stdout: {line[:300]!r}")
        return out

    def check_json_only(self) -> None:
        """With LOG_FORMAT=json, stdout and stderr carry nothing but JSON objects (the contract)."""
        if not self.json_only:
            return
        self.events()
        with self._lock:
            bad = [line for line in self.stderr_lines if not _is_json_object(line)]
        if bad:
            raise AssertionError(f"not a JSON object on stderr: {bad[0][:300]!r}")

    def find(self, event: str, **match: Any) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == event
                and all(e.get(k) == v for k, v in match.items())]

    def wait_event(self, event: str, timeout: float = 60, **match: Any) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            hits = self.find(event, **match)
            if hits:
                return hits[0]
            if self.proc.poll() is not None:
                self._drain()  # what it wrote before exiting may still be in the pipe
                hits = self.find(event, **match)
                if hits:
                    return hits[0]
                raise AssertionError(f"supervisor exited ({self.proc.returncode}) before {event}:\n"
                                     + self.dump())
            return None
        try:
            return wait_for(found, timeout, f"event {event} {match}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.dump()}") from None

    def wait_exit(self, timeout: float = 60) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"supervisor did not exit within {timeout}s\n{self.dump()}") from None
        self._drain()
        return code

    def _drain(self, timeout: float = 5) -> None:
        """Wait until the readers have read the pipes to their end (bounded: a leftover may hold them)."""
        for thread in self._threads:
            thread.join(timeout)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def dump(self) -> str:
        with self._lock:
            return "\n".join(self.lines[-80:] + ["--- stderr ---"] + self.stderr_lines[-40:])

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        if self.reader is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.reader.pid, signal.SIGCONT)  # a stalled reader drains, then ends
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.reader.wait(10)

    def get(self, path: str, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
        return http_get(self.port, path, timeout)


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def http_get(port: int, path: str, timeout: float = 10, host: str = "127.0.0.1",
             method: str = "GET", body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def base_env(database_url: str | None, **extra: str) -> dict[str, str]:
    """A clean environment for a supervisor under test (nothing inherited but PATH and HOME)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "PYTHONPATH": str(REPO),
        "PORT": str(free_port()),
        "HOST": "127.0.0.1",
        "LOG_FORMAT": "json",
        "GRACEFUL_TIMEOUT": "10",
        "DB_WAIT_TIMEOUT": "20",
        # Each supervisor under test gets its own status socket directory.
        "JARLPM_STATE_DIR": tempfile.mkdtemp(prefix="jarlpm-state-"),
    }
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    env.update(extra)
    return env


@contextlib.contextmanager
def running(env: dict[str, str], args: tuple[str, ...] = ("run",), **kwargs: Any) -> Iterator[Supervisor]:
    """A supervisor for the ``with`` block; on a clean exit, every line it wrote must have been JSON."""
    sup = Supervisor(env, args, **kwargs)
    try:
        yield sup
    finally:
        sup.kill()
    sup._drain(2)
    sup.check_json_only()


def pids_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                state = handle.read().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive

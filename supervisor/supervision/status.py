"""``jarlpm status`` and ``jarlpm reload``: a Unix socket in the runtime directory, one JSON answer per request.

A socket in systemd's ``RuntimeDirectory`` (``$RUNTIME_DIRECTORY``) works under the
unit's hardening (no /proc of other users, no network); mode 0600 keeps it to the
service's user.  The protocol: the client sends one request line (``status`` or
``reload``), the supervisor writes one JSON object on one line and closes.  A client
that sends nothing within ``REQUEST_WAIT`` gets the status snapshot (the protocol of
earlier releases, whose client only read).  The supervisor serves it from its own
loop and never blocks on a client: accepted clients wait in the loop's select set
until their line arrives or their short deadline passes; a ``reload`` client is kept
until the reload's outcome is known.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from supervisor.contract.exitcodes import ExitCode, SupervisorError
from supervisor.contract.paths import data_dir
from supervisor.supervision import reloading

if TYPE_CHECKING:
    from supervisor.supervision.arbiter import Arbiter

SOCKET_NAME = "jarlpm.sock"
# A process heartbeats every second: one silent for longer is not answering now, even if
# HEARTBEAT_TIMEOUT has not yet run out; `jarlpm status` says so instead of "ready".
RESPONSIVE_WITHIN = 5.0
STATUS = "status"
RELOAD = "reload"
REQUEST_WAIT = 0.5  # seconds a client has to send its request line
MAX_REQUEST = 256  # bytes: a request is one short word


def state_dir() -> Path:
    """Where the socket lives: $JARLPM_STATE_DIR, systemd's $RUNTIME_DIRECTORY, or .jarlpm/run of the project."""
    explicit = os.environ.get("JARLPM_STATE_DIR") or os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    return Path(explicit) if explicit else data_dir() / "run"


def socket_path() -> Path:
    return state_dir() / SOCKET_NAME


class StatusServer:
    """Listening Unix socket; ``serve_pending`` answers every waiting client."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        _refuse_live_socket(path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a stale socket: its supervisor is gone
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            self.sock.bind(str(path))
        finally:
            os.umask(old_umask)
        self.inode = path.stat().st_ino
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.waiting: dict[socket.socket, _Waiting] = {}

    def fileno(self) -> int:
        return self.sock.fileno()

    def pending(self) -> list[socket.socket]:
        """The clients whose request line has not arrived yet (for the loop's select set)."""
        return list(self.waiting)

    def next_deadline(self) -> float | None:
        return min((w.deadline for w in self.waiting.values()), default=None)

    def requests(self, now: float) -> list[tuple[str, socket.socket]]:
        """Accept the waiting clients and return the complete requests, each with its client.

        Called on every turn of the supervision loop, which is idle nearly always; the
        caller answers each client (``answer``) now or later.
        """
        self._accept(now)
        ready: list[tuple[str, socket.socket]] = []
        for client, waiting in list(self.waiting.items()):
            request = waiting.read(client, now)
            if request is None:
                continue
            del self.waiting[client]
            if request == "":  # hung up without asking (the start-up probe of a second supervisor)
                _close(client)
            else:
                ready.append((request, client))
        return ready

    def _accept(self, now: float) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            client.setblocking(False)
            self.waiting[client] = _Waiting(now + REQUEST_WAIT)

    @staticmethod
    def answer(client: socket.socket, payload: dict[str, Any]) -> None:
        """Write one JSON line and close; a client that left meanwhile is not an error."""
        with contextlib.suppress(OSError), client:
            client.settimeout(1.0)
            client.sendall(json.dumps(payload, default=str).encode() + b"\n")

    def close(self) -> None:
        for client in self.waiting:
            _close(client)
        self.waiting.clear()
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(OSError):
            if self.path.stat().st_ino == self.inode:  # still ours, not a successor's
                self.path.unlink()


class _Waiting:
    """A client whose request line is still arriving, and until when we wait for it."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.data = b""

    def read(self, client: socket.socket, now: float) -> str | None:
        """The request once complete; ``""`` when the client hung up; None to keep waiting."""
        try:
            chunk = client.recv(MAX_REQUEST)
        except (BlockingIOError, InterruptedError):
            chunk = None
        except OSError:
            return ""
        if chunk == b"" and not self.data:
            return ""
        if chunk:
            self.data += chunk
        if b"\n" in self.data or chunk == b"" or len(self.data) >= MAX_REQUEST:
            return self.data.split(b"\n", 1)[0].decode(errors="replace").strip() or STATUS
        return STATUS if now >= self.deadline else None


def _close(client: socket.socket) -> None:
    with contextlib.suppress(OSError):
        client.close()


def _refuse_live_socket(path: Path) -> None:
    """A socket that answers belongs to a running supervisor: never take it over.

    Two supervisors sharing a state directory would answer each other's
    ``jarlpm status`` and ``jarlpm reload``; the second one fails at start instead.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            return  # nothing there, or a stale socket whose supervisor is gone
        except TimeoutError:
            pass  # listening, with a full backlog: alive
        except OSError:  # not a socket at all, or unreadable: let bind report it
            return
    raise SupervisorError(
        f"another supervisor is running with the status socket {path}",
        ExitCode.CONFIG,
        "stop it first, or give this one its own state directory (JARLPM_STATE_DIR, or systemd's "
        "RuntimeDirectory= per instance)",
        path=str(path),
    )


def query(path: Path | None = None, timeout: float = 3.0) -> dict[str, Any]:
    """Read the running supervisor's snapshot (raises OSError when none is running)."""
    return request(STATUS, path, timeout)


def request(what: str, path: Path | None = None, timeout: float = 3.0,
            connect_timeout: float = 3.0) -> dict[str, Any]:
    """Send one request line and read the one JSON answer, within ``timeout`` seconds in all.

    Raises OSError when no supervisor answers (TimeoutError past the deadline) and
    ValueError for an answer that is not a JSON object.
    """
    target = path or socket_path()
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(min(connect_timeout, timeout))
        sock.connect(str(target))
        sock.sendall(what.encode() + b"\n")
        chunks: list[bytes] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer within {timeout:g} s")
            sock.settimeout(left)
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    if not chunks:
        raise ConnectionResetError("the supervisor closed the connection without answering")
    value = json.loads(b"".join(chunks))
    if not isinstance(value, dict):
        raise ValueError("unexpected answer")
    return value


def serve_requests(arb: Arbiter) -> None:
    """Answer the requests that arrived: a snapshot now, a reload's outcome when it is known."""
    server = arb.status
    if server is None:
        return
    for what, client in server.requests(time.monotonic()):
        if what == RELOAD:
            reloading.requested(arb, client)
        elif what == STATUS:
            server.answer(client, snapshot(arb))
        else:
            server.answer(client, {"error": f"unknown request {what[:40]!r}", "requests": [STATUS, RELOAD]})


def snapshot(arb: Arbiter) -> dict[str, Any]:
    """What ``jarlpm status`` shows: the state, the phase running (if any), each slot's process."""
    now = time.monotonic()
    workers = []
    for slot in sorted(arb.slots):
        proc = arb.slots[slot]
        workers.append({
            "worker": slot,
            "pid": proc.pid if proc else None,
            "ready": bool(proc and proc.ready),
            "uptime_s": round(proc.uptime(now), 1) if proc else None,
            "heartbeat_age_s": round(now - proc.last_heartbeat, 1) if proc and proc.ready else None,
            "responsive": bool(proc and proc.ready and now - proc.last_heartbeat < RESPONSIVE_WITHIN),
            "restarts": arb.policy.restarts(slot),
            "requests": proc.requests if proc else None,  # what MAX_REQUESTS counts
            "last_exit": arb.last_exit.get(slot),
            "restart_in_s": round(arb.restart_due[slot] - now, 1) if slot in arb.restart_due else None,
        })
    phases = arb.phase_child
    return {"state": arb.state, "ready": arb.announced_ready and arb.healthy(RESPONSIVE_WITHIN),
            "phase": phases.current_phase if phases is not None else None,
            "uptime_s": round(now - arb.started_at, 1), "reloads": arb.reloads,
            "listen": f"{arb.settings.host}:{arb.settings.port}", "workers": workers,
            "standby": arb.standby.pid if arb.standby is not None else None,
            "fork_server": fork.process.pid if (fork := arb.forking.server) is not None and fork.ready else None}

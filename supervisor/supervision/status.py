"""``jarlpm status``: a Unix socket in the runtime directory that answers with a JSON snapshot.

A socket in systemd's ``RuntimeDirectory`` (``$RUNTIME_DIRECTORY``) works under the
unit's hardening (no /proc of other users, no network); mode 0600 keeps it to the
service's user.  The supervisor serves it from its own loop: accept, write, close.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from supervisor.contract.exitcodes import ExitCode, SupervisorError
from supervisor.contract.paths import data_dir

if TYPE_CHECKING:
    from supervisor.supervision.arbiter import Arbiter

SOCKET_NAME = "jarlpm.sock"


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

    def fileno(self) -> int:
        return self.sock.fileno()

    def serve_pending(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        """Answer the clients waiting now; the snapshot is taken only if there is one.

        Called on every turn of the supervision loop, which is idle nearly always.
        """
        payload: bytes | None = None
        while True:
            try:
                client, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            if payload is None:
                payload = json.dumps(snapshot(), default=str).encode() + b"\n"
            with contextlib.suppress(OSError), client:
                client.settimeout(1.0)
                client.sendall(payload)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(OSError):
            if self.path.stat().st_ino == self.inode:  # still ours, not a successor's
                self.path.unlink()


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
    target = path or socket_path()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(target))
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    value = json.loads(b"".join(chunks))
    if not isinstance(value, dict):
        raise ValueError("unexpected status payload")
    return value


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
            "restarts": arb.policy.restarts(slot),
            "last_exit": arb.last_exit.get(slot),
            "restart_in_s": round(arb.restart_due[slot] - now, 1) if slot in arb.restart_due else None,
        })
    phases = arb.phase_child
    return {"state": arb.state, "ready": arb.announced_ready and arb.healthy(),
            "phase": phases.current_phase if phases is not None else None,
            "uptime_s": round(now - arb.started_at, 1), "reloads": arb.reloads,
            "listen": f"{arb.settings.host}:{arb.settings.port}", "workers": workers,
            "standby": arb.standby.pid if arb.standby is not None else None}

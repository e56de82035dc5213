"""One server process as the supervisor sees it: spawn, control channel, output relay, exit status."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from supervisor.contract import control as channel
from supervisor.contract.config import Settings
from supervisor.contract.heartbeat import HeartbeatCell
from supervisor.contract.paths import app_dir, package_root
from supervisor.logs.relay import SERVER_LINGER_S, StackDump, StreamRelay
from supervisor.supervision import handover
from supervisor.system import cgroups, reaper

STDERR_TAIL_LINES = 30


@dataclass(frozen=True)
class ExitStatus:
    """A decoded wait status: an exit code, or the signal that killed the process."""

    code: int | None
    signal: int | None

    @classmethod
    def from_wait_status(cls, status: int) -> ExitStatus:
        # os.WIFSIGNALED/WTERMSIG, not `status >> 8`, which is wrong for signal deaths.
        if os.WIFSIGNALED(status):
            return cls(code=None, signal=os.WTERMSIG(status))
        return cls(code=os.WEXITSTATUS(status) if os.WIFEXITED(status) else None, signal=None)

    @property
    def signal_name(self) -> str | None:
        if self.signal is None:
            return None
        try:
            return signal.Signals(self.signal).name
        except ValueError:
            return f"SIG{self.signal}"

    def as_fields(self) -> dict[str, object]:
        if self.signal is not None:
            return {"signal": self.signal_name}
        return {"exit_code": self.code}

    def describe(self) -> str:
        return f"killed by {self.signal_name}" if self.signal is not None else f"exit {self.code}"


def exit_hint(status: ExitStatus, was_ready: bool, requested: bool) -> str:
    """What an operator should look at after this exit."""
    if requested:
        return "stopped by the supervisor"
    if status.signal == signal.SIGKILL:
        return ("killed by SIGKILL: out of memory? check `dmesg`/`journalctl -k` for the OOM killer "
                "and the container's memory limit")
    if status.signal is not None:
        return f"killed by {status.signal_name} from outside the supervisor"
    if not was_ready:
        if status.code == 3:
            return "the app's lifespan startup failed: see the traceback in stderr_tail"
        return ("the server died before becoming ready: see stderr_tail (import error, bad "
                "JARLPM_APP, missing dependency?)")
    return "the server exited on its own: see stderr_tail and the lines before this event"


def unresponsive_hint(process_state: str | None, has_stacks: bool) -> str:
    """Why a process stopped heartbeating, from its /proc state and whether it printed stacks."""
    if process_state == "stopped":
        return ("the process was stopped (SIGSTOP, a debugger, `docker pause` or a cgroup freezer), "
                "not blocked by its code: it printed no stacks; find who stopped it")
    if not has_stacks:
        return ("the process printed no stacks when asked (SIGUSR1): stuck outside Python (native code, "
                "the kernel: see its state in /proc) or stopped; no Python call can be blamed")
    return ("the event loop was blocked: a blocking call (sync I/O, time.sleep, a lock) in an "
            "async endpoint? Use a def endpoint or run it in a thread; the stacks show where")


@dataclass
class ForkedProcess:
    """What the supervisor holds of a process the fork server forked: ``Popen``'s pid and returncode.

    It is the supervisor's child (reparented to it, a subreaper), reaped by ``reaper.reap_any``.
    """

    pid: int
    returncode: int | None = None


@dataclass
class ServerProcess:
    """A running (or finished) server process and what the supervisor knows of it."""

    slot: int
    process: subprocess.Popen[bytes] | ForkedProcess
    control: socket.socket
    spawned_at: float
    heartbeat: HeartbeatCell
    ready_at: float | None = None
    heartbeat_floor: float = 0.0  # spawn, then ready: a beat older than these does not count
    exited: ExitStatus | None = None
    exited_at: float | None = None
    stop_requested: bool = False
    go_at: float | None = None
    dump_requested_at: float | None = None
    unresponsive: bool = False
    term_due: float | None = None
    tag: str = ""  # its JARLPM_PROCESS_TAG: finds the helpers it started, even daemonised ones
    cgroup: Path | None = None  # its own cgroup v2 leaf (JARLPM_CGROUP), where there is one
    requests: int = 0  # HTTP requests taken, as the process last reported (control.REQUESTS)
    request_limit: int | None = None  # MAX_REQUESTS plus this process's jitter; None: off
    forked: bool = False  # forked by the fork server (``forking``), not spawned
    memory_streak: int = 0  # consecutive VmRSS reads above MAX_WORKER_MEMORY_MB
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=STDERR_TAIL_LINES))
    dump: StackDump = field(default_factory=StackDump)
    relays: list[StreamRelay] = field(default_factory=list)
    _decoder: channel.Decoder = field(default_factory=channel.Decoder)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def ready(self) -> bool:
        return self.ready_at is not None

    @property
    def alive(self) -> bool:
        return self.exited is None

    @property
    def last_heartbeat(self) -> float:
        """When its event loop last beat (read from the shared cell, no message, no wake-up)."""
        return max(self.heartbeat_floor, self.heartbeat.last())

    def uptime(self, now: float | None = None) -> float:
        end = self.exited_at if self.exited_at is not None else (now or time.monotonic())
        return max(0.0, end - self.spawned_at)

    # -- control channel -------------------------------------------------------------
    def release(self) -> None:
        """Tell the process the schema is at head: it may open its pool and serve."""
        self.send(channel.GO)
        self.go_at = time.monotonic()

    def send(self, message: str) -> None:
        with contextlib.suppress(OSError):
            self.control.sendall(channel.encode(message))

    def read_messages(self) -> list[str]:
        """Messages waiting on the control socket (non-blocking); [] at end of file."""
        try:
            data = self.control.recv(65536)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError:
            data = b""
        if not data:
            return []
        return self._decoder.feed(data)

    # -- signals ---------------------------------------------------------------------
    def send_signal(self, sig: int) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, sig)

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        """Signal the process's whole group: the server and any helper it started."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def kill_escaped(self) -> list[int]:
        """SIGKILL helpers that left its group and parentage (double fork + setsid); return whom."""
        return reaper.kill_tagged(self.tag) if self.tag else []

    def mark_exited(self, status: int) -> ExitStatus:
        self.exited = ExitStatus.from_wait_status(status)
        self.exited_at = time.monotonic()
        self.process.returncode = self.exited.code if self.exited.code is not None else -(self.exited.signal or 0)
        return self.exited

    def close(self, relay_timeout: float = 2.0) -> None:
        for relay in self.relays:
            relay.join(relay_timeout)
        with contextlib.suppress(OSError):
            self.control.close()
        self.heartbeat.close()


def worker_command(settings: Settings, listen_fd: int, control_fd: int, heartbeat_fd: int,
                   module: str = "supervisor.server.worker") -> list[str]:
    """The command line of a server process (or, with ``module``, of the fork server)."""
    return [
        sys.executable, "-m", module,
        "--fd", str(listen_fd),
        "--control-fd", str(control_fd),
        "--heartbeat-fd", str(heartbeat_fd),
        "--app", settings.jarlpm_app,
        "--app-dir", str(app_dir(settings.jarlpm_app_dir)),
        "--graceful-timeout", str(settings.graceful_timeout),
        "--keepalive-timeout", str(settings.keepalive_timeout),
        "--forwarded-allow-ips", settings.forwarded_allow_ips,
        "--log-level", settings.log_level,
        "--ready-path", os.environ.get("JARLPM_READY_PATH", "/api/health/ready"),
    ]


def python_env(env: dict[str, str]) -> dict[str, str]:
    """The environment of a server process (or of the fork server) but its own variables."""
    env = dict(env)
    root = str(package_root())
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def process_env(slot: int) -> dict[str, str]:
    """The variables that differ between server processes: its slot and its tag (a fresh one)."""
    return {"JARLPM_WORKER": str(slot), reaper.TAG_VARIABLE: secrets.token_hex(8)}


def spawn(slot: int, settings: Settings, listener: socket.socket, env: dict[str, str],
          run_cgroup: cgroups.RunCgroup | None = None) -> ServerProcess:
    """Start a server process on ``listener`` with its own session (its own process group).

    With ``run_cgroup`` it also gets a cgroup leaf of its own, which every process it
    starts inherits however it daemonises (see ``system.cgroups``).
    """
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    parent_end.setblocking(False)
    listen_fd = listener.fileno()
    own = process_env(slot)
    tag = own[reaper.TAG_VARIABLE]
    env = {**python_env(env), **own}
    leaf = run_cgroup.leaf("server", slot) if run_cgroup is not None else None
    if leaf is not None:
        env[cgroups.LEAF_VARIABLE] = str(leaf)
    cell = HeartbeatCell.create()
    try:
        process = subprocess.Popen(
            worker_command(settings, listen_fd, child_end.fileno(), cell.fd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(listen_fd, child_end.fileno(), cell.fd, *handover.inherited_fds()),
            start_new_session=True,
            env=env,
        )
    finally:
        child_end.close()
    # Popen returns once the exec succeeded: the process is starting the interpreter and
    # cannot have started a helper yet.  The worker also joins its leaf itself, first
    # thing, before importing the app, so no app code ever runs outside it, however
    # late this write comes on a loaded machine.
    if leaf is not None and run_cgroup is not None and not run_cgroup.join(leaf, process.pid):
        leaf = None
    now = time.monotonic()
    child = ServerProcess(slot=slot, process=process, control=parent_end, heartbeat=cell,
                          spawned_at=now, heartbeat_floor=now, tag=tag, cgroup=leaf)
    assert process.stdout is not None and process.stderr is not None
    start_relays(child, process.stdout, process.stderr)
    return child


def start_relays(proc: ServerProcess, stdout: IO[bytes], stderr: IO[bytes]) -> None:
    """Relay a server process's output, however it was started (spawned, released standby, forked).

    Both pipes are read in batches while the server writes (``SERVER_LINGER_S``): a
    wake-up of the relay and of the log writer per access line cost the server's
    throughput (issue #17).  One place for it, because the forked path once built its own
    relays and lost the batching.
    """
    proc.relays = [
        StreamRelay(stdout, proc.process.pid, "stdout", tail=None, linger=SERVER_LINGER_S),
        StreamRelay(stderr, proc.process.pid, "stderr", tail=proc.stderr_tail, dump=proc.dump,
                    linger=SERVER_LINGER_S),
    ]
    for relay in proc.relays:
        relay.start()

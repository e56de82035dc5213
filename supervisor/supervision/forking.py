"""JARLPM_FORK_SERVER (on by default): replacements forked from a process that imported the app (issue #17).

A fresh server process needs ~0.9 s (interpreter, uvicorn, the app's imports) before
its lifespan startup; one forked from the fork server (``server.forkserver``) starts
with all of that done, and shares its pages.  At start the fork server imports during
the phases and the slots are forked from it (``prespawn``: one import instead of one
per process); after a reload a new one imports the new code once the reload is over
(``retire`` drops the old one; nothing of a new generation is ever forked from old
code: the reload's processes are spawned fresh).  Whenever it is not ready, gone or
refuses (``forkserver.unsafe``: the app started threads at import, the supervisor is
no subreaper), server processes are spawned fresh as before.

A forked process is reparented to the supervisor (the fork server forks twice), so it
is reaped, counted (crash loop), heartbeat-checked, recycled and stopped exactly like
a spawned one.  The fork server itself serves nothing: its death is logged and it is
restarted with backoff, and it never counts toward ``CRASH_LOOP_LIMIT``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from supervisor.contract.heartbeat import HeartbeatCell
from supervisor.logs.relay import StreamRelay
from supervisor.supervision import earlyfork, handover
from supervisor.supervision.server_process import (
    STDERR_TAIL_LINES,
    ExitStatus,
    ForkedProcess,
    ServerProcess,
    process_env,
    python_env,
    start_relays,
    worker_command,
)
from supervisor.system import cgroups, reaper
from supervisor.system.backoff import backoff_delay

if TYPE_CHECKING:
    from supervisor.supervision.arbiter import Arbiter

MODULE = "supervisor.server.forkserver"
REPLY_TIMEOUT = 1.0  # the longest the loop waits for a fork; then it spawns instead


@dataclass
class ForkServer:
    """The supervisor's handle on the fork server process."""

    process: subprocess.Popen[bytes]
    control: socket.socket
    started_at: float
    ready: bool = False
    retired: bool = False
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=STDERR_TAIL_LINES))
    relays: list[StreamRelay] = field(default_factory=list)


@dataclass
class Forking:
    """The arbiter's fork-server state: the one running, its restart backoff, or why it is off."""

    enabled: bool
    server: ForkServer | None = None
    due: float | None = None  # no restart before (after a death)
    deaths: int = 0  # deaths since a fork last succeeded
    refused: str | None = None  # why forking is off for this run (``forkserver.unsafe``)
    prespawning: bool = False  # at start: the slots wait for the fork server (``prespawn``)
    early: earlyfork.EarlyForkServer | None = None  # started by ``main`` before the settings, not yet configured

    def fds(self) -> list[socket.socket]:
        """The socket to watch while the fork server imports (its ``ready`` wakes the loop)."""
        return [self.server.control] if self.server is not None and not self.server.ready else []


def wanted(arb: Arbiter) -> bool:
    """A fork server runs while the service serves normally, every slot ready (no start competes with it)."""
    forking = arb.forking
    return (forking.enabled and forking.refused is None and arb.state == "running" and arb.announced_ready
            and all(proc is not None and proc.ready for proc in arb.slots.values()))


def prespawn(arb: Arbiter) -> bool:
    """At start: the fork server imports during the phases, and the slots are forked from it.

    One import instead of one per process leaves more CPU to the phases, and the
    processes share the fork server's pages.  False: spawn them (no fork server).
    """
    if arb.forking.enabled:
        _start(arb)
    arb.forking.prespawning = arb.forking.server is not None
    return arb.forking.prespawning


def importing(arb: Arbiter) -> bool:
    """At start, the fork server is still importing: the empty slots wait for it (``maintain`` fills them)."""
    server = arb.forking.server
    return arb.forking.prespawning and server is not None and not server.ready


def maintain(arb: Arbiter) -> None:
    """Read the importing fork server's answer; start one when wanted and its backoff is over."""
    forking = arb.forking
    if forking.server is not None and not forking.server.ready:
        _read_hello(arb, forking.server)
    if forking.prespawning and not importing(arb):
        _fill_slots(arb)
    if forking.server is None and wanted(arb) and (forking.due is None or forking.due <= time.monotonic()):
        forking.due = None
        _start(arb)


def _fill_slots(arb: Arbiter) -> None:
    """The fork server is ready (or gone, or refused: then spawn): a process for every empty slot."""
    arb.forking.prespawning = False
    if arb.state not in ("starting", "running"):
        return
    for slot, existing in arb.slots.items():
        if existing is None and slot not in arb.restart_due:
            arb.slots[slot] = arb.spawn(slot)  # released at once if the phases are over


def next_due(arb: Arbiter) -> float | None:
    """When ``maintain`` must run on its own (a dead fork server's restart)."""
    return arb.forking.due if arb.forking.server is None and wanted(arb) else None


def _start(arb: Arbiter) -> None:
    if not reaper.is_subreaper():
        earlyfork.discard(arb.forking.early)
        arb.forking.early = None
        # Its children would be reparented to init, out of the supervisor's reach.
        _refuse(arb, "the supervisor is not a child subreaper (prctl refused), so it could not reap forked "
                     "processes", "server processes are spawned fresh for this run; set JARLPM_FORK_SERVER=0 "
                     "to say so")
        return
    assert arb.listener is not None
    listen_fd = arb.listener.fileno()
    # No JARLPM_PROCESS_TAG of its own: /proc/PID/environ of its children would show it,
    # and a tag must name one server process's helpers, never its siblings.
    env = python_env(arb.env)
    early, arb.forking.early = arb.forking.early, None
    adopted = early is not None and earlyfork.configure(
        early, [*worker_command(arb.settings, listen_fd, early.child_end.fileno(), -1)[3:],
                "--supervisor-pid", str(os.getpid())], env, [listen_fd, *handover.inherited_fds()])
    if early is not None and adopted:
        process, parent_end = early.process, early.control
    else:
        earlyfork.discard(early)
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        parent_end.setblocking(False)
        try:
            process = subprocess.Popen(
                [*worker_command(arb.settings, listen_fd, child_end.fileno(), -1, module=MODULE),
                 "--supervisor-pid", str(os.getpid())],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                pass_fds=(listen_fd, child_end.fileno(), *handover.inherited_fds()),
                start_new_session=True, env=env,
            )
        finally:
            child_end.close()
    server = ForkServer(process=process, control=parent_end, started_at=time.monotonic())
    assert process.stdout is not None and process.stderr is not None
    server.relays = [StreamRelay(process.stdout, process.pid, "stdout", tail=None),
                     StreamRelay(process.stderr, process.pid, "stderr", tail=server.stderr_tail)]
    for relay in server.relays:
        relay.start()
    arb.forking.server = server
    arb.log.debug("forkserver.started", pid=process.pid, early=adopted)


def _read_hello(arb: Arbiter, server: ForkServer) -> None:
    try:
        data = server.control.recv(65536)
    except (BlockingIOError, InterruptedError):
        return
    except OSError:
        return  # its death is handled when it is reaped
    try:
        hello: dict[str, Any] = json.loads(data) if data else {}
    except ValueError:
        hello = {}
    if hello.get("ready"):
        server.ready = True
        arb.log.info("forkserver.ready", pid=server.process.pid, imported_ms=hello.get("imported_ms"))
    elif "unsafe" in hello:
        _refuse(arb, str(hello["unsafe"]), IMPORT_HINT if hello.get("import_failed") else THREADS_HINT)


THREADS_HINT = ("server processes are spawned fresh (no faster replacement) for this run; start the app's "
                "threads in its lifespan startup, not at import, or set JARLPM_FORK_SERVER=0 to say so")
IMPORT_HINT = ("server processes are spawned fresh for this run: their child.exited shows the import error "
               "(and the crash-loop rule applies); fix it and start again")


def _refuse(arb: Arbiter, reason: str, hint: str) -> None:
    arb.forking.refused = reason
    arb.log.warning("forkserver.unsafe", reason=reason, hint=hint)
    retire(arb)


def retire(arb: Arbiter) -> None:
    """Stop the fork server (a reload: it holds the old code; a stop); it served nothing, so SIGKILL."""
    server = arb.forking.server
    if server is None or server.retired:
        return
    server.retired = True
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(server.process.pid, signal.SIGKILL)  # its group: a middle process forking now too


def reaped(arb: Arbiter, pid: int, wait_status: int) -> bool:
    """``pid`` was the fork server: log its death, restart it with backoff (no server death); True if so."""
    forking = arb.forking
    server = forking.server
    if server is None or pid != server.process.pid:
        return False
    forking.server = None
    for relay in server.relays:
        relay.join(0.5)
    server.control.close()
    status = ExitStatus.from_wait_status(wait_status)
    server.process.returncode = status.code if status.code is not None else -(status.signal or 0)
    if server.retired:
        arb.log.debug("forkserver.exited", pid=pid, **status.as_fields(), requested=True)
        return True
    delay = _back_off(arb)
    arb.log.warning("forkserver.exited", pid=pid, **status.as_fields(), requested=False,
                    delay_s=round(delay, 3), deaths=forking.deaths, stderr_tail=list(server.stderr_tail)[-20:],
                    hint="server processes are spawned fresh until a new fork server has imported the app; "
                         "no server process died and none counts toward CRASH_LOOP_LIMIT")
    return True


def _back_off(arb: Arbiter) -> float:
    """One more failure: the next fork server starts after an exponential delay; return it."""
    forking = arb.forking
    forking.deaths += 1
    delay = backoff_delay(forking.deaths, arb.policy.base, arb.settings.restart_backoff_max)
    forking.due = time.monotonic() + delay
    return delay


def spawn(arb: Arbiter, slot: int) -> ServerProcess | None:
    """A server process forked by the fork server, or None (none ready, or it failed: then spawn)."""
    server = arb.forking.server
    if server is None or not server.ready or server.retired:
        return None
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    parent_end.setblocking(False)
    cell = HeartbeatCell.create()
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    own = process_env(slot)
    run_cgroup = arb.cgroup
    leaf = run_cgroup.leaf("server", slot) if run_cgroup is not None else None
    if leaf is not None:
        own[cgroups.LEAF_VARIABLE] = str(leaf)  # the forked process joins it before it serves
    started = time.monotonic()
    try:
        pid = _request(server, own, [child_end.fileno(), cell.fd, out_write, err_write])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        for fd in (out_read, err_read):
            os.close(fd)
        parent_end.close()
        cell.close()
        arb.log.error("forkserver.fork_failed", pid=server.process.pid, worker=slot, error=repr(exc)[:300],
                      hint="the process is spawned fresh instead; the fork server is restarted after a backoff")
        retire(arb)
        _back_off(arb)  # a fork server that keeps failing must not be restarted (an import) at once
        return None
    finally:
        child_end.close()
        os.close(out_write)
        os.close(err_write)
    arb.forking.deaths = 0
    if leaf is not None and run_cgroup is not None and not run_cgroup.join(leaf, pid):
        leaf = None
    now = time.monotonic()
    proc = ServerProcess(slot=slot, process=ForkedProcess(pid), control=parent_end, heartbeat=cell,
                         spawned_at=now, heartbeat_floor=now, tag=own[reaper.TAG_VARIABLE], forked=True,
                         cgroup=leaf)
    arb.log.debug("forkserver.forked", pid=pid, worker=slot, fork_ms=round((now - started) * 1000, 1))
    start_relays(proc, os.fdopen(out_read, "rb"), os.fdopen(err_read, "rb"))
    return proc


def _request(server: ForkServer, env: dict[str, str], fds: list[int]) -> int:
    """Send one fork request; wait at most REPLY_TIMEOUT for the new process's pid."""
    server.control.settimeout(REPLY_TIMEOUT)
    try:
        socket.send_fds(server.control, [json.dumps({"env": env}).encode()], fds)
        data = server.control.recv(65536)
    finally:
        server.control.setblocking(False)
    if not data:
        raise OSError("the fork server closed its socket")
    reply: dict[str, Any] = json.loads(data)
    if "error" in reply:
        raise OSError(str(reply["error"]))
    return int(reply["pid"])

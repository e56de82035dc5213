"""The server process: uvicorn serving any ASGI app on the socket the supervisor hands over.

Run as ``python -m supervisor.server.worker``.  It imports the app at once (so imports
overlap the supervisor's phases), then waits for ``go`` on its control socket before
lifespan startup opens any pool: the schema must be at head first.  It reports
``ready`` once lifespan startup is done and it serves, then beats from its event
loop every second into a shared cell (``contract.heartbeat``) the supervisor reads
when that process's deadline comes.  Nothing here needs the app's cooperation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import os
import signal
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, Generator, MutableMapping
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.importer import import_from_string

from supervisor.contract import control
from supervisor.contract.heartbeat import HeartbeatCell
from supervisor.server import serverlog
from supervisor.system import cgroups, reaper

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"
HEARTBEAT_TICKS = 10  # uvicorn ticks every 0.1 s: one heartbeat a second


class ControlChannel:
    """The worker's end of the socketpair to the supervisor.

    A reader thread takes ``go``, ``drain`` and ``close`` (``contract.control``); end of file means the supervisor is
    gone (even killed with SIGKILL), and then this process and everything it started
    is killed, so nothing keeps serving unsupervised.
    """

    def __init__(self, fd: int) -> None:
        self.sock = socket.socket(fileno=fd)
        self.go = threading.Event()
        self.draining = threading.Event()
        self.on_go: list[Callable[[], None]] = []  # wakes the event loop waiting for ``go``
        self.on_close: list[Callable[[], None]] = []
        self._write_lock = threading.Lock()
        threading.Thread(target=self._read, name="control-reader", daemon=True).start()

    def _read(self) -> None:
        decoder = control.Decoder()
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                self._supervisor_gone()
                return
            for message in decoder.feed(data):
                if message == control.GO:
                    self.go.set()
                    for callback in self.on_go:
                        callback()
                elif message == control.DRAIN:
                    self.draining.set()
                elif message == control.CLOSE:
                    for callback in self.on_close:
                        callback()

    @staticmethod
    def _supervisor_gone() -> None:
        # Helpers may have left our process group (setsid): find them through the tree, and
        # those that daemonised out of it too (double fork: reparented to init) by our tag.
        tag = os.environ.get(reaper.TAG_VARIABLE)
        if tag:
            reaper.kill_tagged(tag, exclude={os.getpid()})
        for pid in reaper.descendants(os.getpid()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        # Our cgroup leaf (JARLPM_CGROUP) holds what the above misses: a helper that cleared
        # its environment and daemonised.  cgroup.kill takes us too, as the group's kill does
        # (we lead our group): each comes last, once the others are done.
        leaf = os.environ.get(cgroups.LEAF_VARIABLE)
        if leaf:
            with contextlib.suppress(OSError):
                cgroups.kill_until_empty(Path(leaf), spare=os.getpid())
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(os.getpgrp(), signal.SIGKILL)
        os._exit(1)

    def send(self, message: str) -> None:
        with self._write_lock, contextlib.suppress(OSError):
            self.sock.sendall(control.encode(message))


class DrainGate:
    """Answers the readiness path with 503 once the supervisor starts draining this process.

    Load balancers then stop sending new requests during ``DRAIN_DELAY`` while the
    process still serves the ones in flight; the app itself needs no hook for it.
    """

    def __init__(self, app: ASGIApp, channel: ControlChannel, ready_path: str) -> None:
        self.app = app
        self.channel = channel
        self.ready_path = ready_path
        self.requests = 0  # HTTP requests taken, reported to the supervisor (MAX_REQUESTS)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.requests += 1
        if (scope["type"] == "http" and self.channel.draining.is_set()
                and scope.get("path") == self.ready_path):
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"application/json"), (b"retry-after", b"5")]})
            await send({"type": "http.response.body", "body": b'{"status":"stopping"}'})
            return
        await self.app(scope, receive, send)


class SupervisedServer(uvicorn.Server):
    """uvicorn's server, reporting readiness and heartbeats and exiting 0 after a requested stop."""

    def __init__(self, config: uvicorn.Config, channel: ControlChannel, gate: DrainGate,
                 heartbeat: HeartbeatCell) -> None:
        super().__init__(config)
        self.channel = channel
        self.gate = gate
        self.heartbeat = heartbeat
        self.reported_requests = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: Callable[[], None] | None = None  # ends the wait for ``go`` (see ``_wait_for_go``)
        channel.on_close.append(self._close_from_thread)

    def _close_from_thread(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.stop_accepting)

    def stop_accepting(self) -> None:
        """Stop taking connections from the shared socket; the ones taken are still served.

        Sent before SIGTERM on a reload or a stop: uvicorn's shutdown closes connections
        that were accepted but whose request had not arrived yet, so the supervisor first
        lets the other processes (or the backlog) take new connections.

        Only the socket's reader is removed: closing the asyncio server here made a
        connection accepted in the same loop iteration fail its transport creation
        (``Server._attach`` asserts the server is open) and leak, unanswered, until the
        process exited and the kernel reset it (issue #16).  uvicorn's shutdown closes
        the server later, when every accepted connection has its transport.

        With uvloop (uvicorn[standard]) the listener is a libuv handle, not a reader of
        the loop: ``remove_reader`` finds nothing and the process went on accepting, so a
        connection taken after "close" was reset by the shutdown.  There, closing the
        server stops the listening at once, and connections already accepted keep their
        transports.
        """
        loop = self._loop
        for server in getattr(self, "servers", []):
            removed = False
            for sock in server.sockets or ():
                if loop is not None:
                    removed = loop.remove_reader(sock.fileno()) or removed
            if not removed:
                server.close()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        # Hold lifespan startup (which opens the app's pool) until the schema is at head.
        if not self.channel.go.is_set():
            self.channel.send(control.IMPORTED)  # what is left to do on ``go`` is lifespan startup
            await self._wait_for_go()
            if not self.channel.go.is_set():
                return  # a stop signal came first
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            self.channel.send(control.READY)

    async def _wait_for_go(self) -> None:
        """Sleep until ``go`` or a stop signal wakes the loop: no polling (issue #17).

        A 20 ms poll here cost up to 20 ms on every release and 50 wake-ups a second in a
        waiting process (a prespawned one, the standby).  The control reader thread and the
        signal handler wake the loop through ``call_soon_threadsafe`` instead.
        """
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()

        def resolve() -> None:
            if not woken.done():
                woken.set_result(None)

        def wake() -> None:
            loop.call_soon_threadsafe(resolve)

        self._wake = wake
        self.channel.on_go.append(wake)
        try:
            # Registered before this check: a ``go`` arriving in between still wakes us.
            if not self.channel.go.is_set() and not self.should_exit:
                await woken
        finally:
            self._wake = None
            self.channel.on_go.remove(wake)

    async def on_tick(self, counter: int) -> bool:
        if counter % HEARTBEAT_TICKS == 0:
            self.heartbeat.beat()  # a write to shared memory: the supervisor reads it when due
        if self.gate.requests != self.reported_requests:  # every 0.1 s at most, only when busy
            self.reported_requests = self.gate.requests
            self.channel.send(control.counted(control.REQUESTS, self.reported_requests))
        return await super().on_tick(counter)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # uvicorn re-raises the captured signal after shutdown, so the process would die
        # "by SIGTERM"; a stop the supervisor asked for should end with exit 0.
        handlers = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)}
        try:
            yield
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)

    def _on_signal(self, sig: int, _frame: object) -> None:
        if sig == signal.SIGQUIT or (self.should_exit and sig == signal.SIGINT):
            self.force_exit = True
        self.should_exit = True
        if self._wake is not None:  # waiting for ``go``: the handler's flag alone would not wake the loop
            self._wake()


def parse(argv: list[str]) -> argparse.Namespace:
    """The options of a server process, and of the fork server (``forkserver``), which forks them."""
    parser = argparse.ArgumentParser(prog="python -m supervisor.server.worker")
    parser.add_argument("--fd", type=int, required=True, help="listening socket's descriptor")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--heartbeat-fd", type=int, default=-1, help="shared heartbeat cell")
    parser.add_argument("--app", required=True)
    parser.add_argument("--app-dir", default="")
    parser.add_argument("--ready-path", default="/api/health/ready")
    parser.add_argument("--graceful-timeout", type=float, default=30)
    parser.add_argument("--keepalive-timeout", type=int, default=5)
    parser.add_argument("--forwarded-allow-ips", default="127.0.0.1")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--supervisor-pid", type=int, default=0, help="the fork server dies with it")
    return parser.parse_args(argv)


def join_leaf() -> None:
    """Enter our cgroup leaf before any app code runs (the supervisor also moves us right after spawn).

    Whichever write comes first, every helper the app starts is born inside it.  A leaf
    that cannot be joined leaves us in the supervisor's cgroup: the tags still work.
    """
    leaf = os.environ.get(cgroups.LEAF_VARIABLE)
    if leaf:
        with contextlib.suppress(OSError):
            cgroups.join(Path(leaf))


def enable_faulthandler() -> None:
    faulthandler.enable()
    # The supervisor sends SIGUSR1 to a stalled process to get every thread's stack.
    faulthandler.register(signal.SIGUSR1, all_threads=True)


def load(args: argparse.Namespace) -> ASGIApp:
    """The import half of a server process: done once in the fork server for all its children."""
    serverlog.configure(args.log_level)
    if args.app_dir:
        sys.path.insert(0, os.path.abspath(args.app_dir))
    app: ASGIApp = import_from_string(args.app)
    return app


def serve(args: argparse.Namespace, app: ASGIApp, channel: ControlChannel) -> int:
    """The serving half: wait for ``go``, serve until stopped; the exit code (3: startup failed)."""
    if os.environ.get(METRICS_DIR):  # set by the supervisor when METRICS_PORT is
        from supervisor.server.httpmetrics import HttpMetrics

        app = HttpMetrics(app)
    listener = socket.socket(fileno=args.fd)
    gate = DrainGate(app, channel, args.ready_path)
    config = uvicorn.Config(
        gate,
        log_config=None,
        log_level=args.log_level,
        timeout_keep_alive=args.keepalive_timeout,
        # uvicorn types it as int but hands it to asyncio.timeout(), which takes any float;
        # int() would turn 0.5 into 0 and `or None` into no limit at all.
        timeout_graceful_shutdown=args.graceful_timeout,
        forwarded_allow_ips=args.forwarded_allow_ips,
        proxy_headers=True,
        lifespan="auto",
    )
    server = SupervisedServer(config, channel, gate, HeartbeatCell.attach(args.heartbeat_fd))
    server.run(sockets=[listener])
    return 0 if server.started else 3


def main(argv: list[str] | None = None) -> int:
    join_leaf()
    args = parse(sys.argv[1:] if argv is None else argv)
    enable_faulthandler()
    channel = ControlChannel(args.control_fd)  # first: the supervisor's death kills us even mid-import
    return serve(args, load(args), channel)


if __name__ == "__main__":
    sys.exit(main())

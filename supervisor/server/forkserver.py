"""The fork server: imports uvicorn and the app once, then forks server processes on request (issue #17).

Run as ``python -m supervisor.server.forkserver`` with a server process's options.  A
fresh server process spends ~0.9 s starting an interpreter and importing uvicorn and
the app before it can serve; a process forked from here starts with all of that done
(gunicorn's ``--preload``, but the supervisor, not the server, holds the sockets, and a
reload starts a new fork server with the new code).

What must not cross a fork is checked or avoided: the fork server never runs an event
loop nor opens the app's pool (lifespan startup runs in each child after ``go``), and
it refuses to serve (``unsafe``, then exits) if the app's import started a thread, since
a forked child would inherit that thread's locks but not the thread.  ``random``
reseeds itself in every child (``os.register_at_fork``); ``secrets`` and ``uuid`` read
the kernel's generator.

Protocol on the control socket (a SOCK_SEQPACKET pair, one message per packet):
started with ``--early`` (``supervision.earlyfork``: before the supervisor had its
settings), it first receives ``{"argv": [...], "env": {...}, "fds": [N, ...]}`` with
those descriptors and only then imports the app; then the fork server sends
``{"ready": true, "imported_ms": N}`` or ``{"unsafe": reason}``;
then each request is ``{"env": {...}}`` with four descriptors (the new process's control
socket, heartbeat cell, stdout and stderr), answered ``{"pid": N}`` or ``{"error": ...}``.
The child is forked twice (the middle process exits at once), so it is reparented to
the supervisor, a child subreaper, which reaps it like any server process.  End of
file on the control socket (the supervisor is gone) ends the fork server.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import gc
import importlib
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from argparse import Namespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from supervisor.server.worker import ASGIApp

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
# /proc/PID/comm (what `ps -o comm`, top and pgrep show): a forked server process has the fork
# server's command line, so its name tells them apart.
FORK_SERVER_NAME = b"jarlpm-forksrv"
SERVER_NAME = b"jarlpm-server"
FDS_PER_REQUEST = 4  # control socket, heartbeat cell, stdout, stderr
MAX_HANDED_FDS = 8  # an early fork server's configuration: the listening socket, the URLs' descriptors
EARLY_OPTION = "--early"  # ``supervision.earlyfork``: wait for the configuration before importing the app
# What uvicorn imports lazily in ``Config.load()`` on its first run: imported here once,
# so a child does not pay for it.  Missing extras (no uvloop/httptools) are skipped.
PRELOAD = ("uvicorn.lifespan.on", "uvicorn.loops.auto", "uvicorn.protocols.http.auto",
           "uvicorn.protocols.http.h11_impl", "uvicorn.protocols.http.httptools_impl",
           "uvicorn.protocols.websockets.auto", "uvloop", "httptools")


# What libraries the app already imported load lazily at its first start: anyio's asyncio
# backend on the first ``to_thread``/task group (every Starlette and FastAPI lifespan),
# psycopg2's extras on SQLAlchemy's first connection.  ~20 ms of each child's lifespan
# startup otherwise; imported only when the app has imported the library itself.
PRELOAD_IF_IMPORTED = {"anyio": ("anyio._backends._asyncio",), "psycopg2": ("psycopg2.extras",)}


def preload() -> None:
    """Import here, once, what every child would import on its own at its start."""
    names = [*PRELOAD, *(name for package, lazy in PRELOAD_IF_IMPORTED.items()
                         if package in sys.modules for name in lazy)]
    for name in names:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def unsafe_reason() -> str | None:
    """Why forking from this process would be unsafe now, or None."""
    threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if threads:
        return (f"the app started {len(threads)} thread(s) at import ({', '.join(threads[:5])}): "
                "a forked process would inherit their locks but not the threads")
    return None


def await_configuration(sock: socket.socket) -> list[str] | None:
    """An early fork server's settings (``supervision.earlyfork``): its command line; None: not wanted.

    The message carries the environment to run with (replacing ours: the app's import
    must see exactly what a fork server spawned now would) and descriptors, each placed
    at the number the command line or the environment names.
    """
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, 1 << 20, MAX_HANDED_FDS)
            break
        except InterruptedError:
            continue
        except OSError:
            return None
    if not data:
        return None  # discarded: the settings turned forking off, or the start failed
    message = json.loads(data)
    place_descriptors(fds, [int(n) for n in message["fds"]], keep=sock.fileno())
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in message["env"].items()})
    return [str(a) for a in message["argv"]]


def place_descriptors(received: list[int], targets: list[int], keep: int) -> None:
    """Move each received descriptor to its target number (inheritable); refuse to overwrite one in use.

    They arrive at the lowest free numbers, which may be another one's target: each is
    first moved above every number involved.
    """
    if len(received) != len(targets):
        raise SystemExit(f"fork server: {len(received)} descriptors received, {len(targets)} announced")
    floor = max([*received, *targets, keep, 2]) + 1
    moved = []
    for fd in received:
        moved.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor))
        os.close(fd)
    for target in targets:
        if target == keep or _is_open(target):
            for fd in moved:
                os.close(fd)
            raise SystemExit(f"fork server: descriptor {target} is already in use here")
    for fd, target in zip(moved, targets, strict=True):
        os.dup2(fd, target, inheritable=True)
        os.close(fd)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def freeze_imported() -> None:
    """Move every object the import made to the permanent generation, then collect again as usual.

    The collector in a forked process then never walks (and so never writes to) the
    pages of the imported modules, which stay shared copy-on-write.  No ``gc.collect()``
    first: it would cost ~50 ms on the critical path to free the import's few thousand
    cyclic objects (a few hundred KiB), which instead stay frozen, shared by every process.
    """
    gc.freeze()
    gc.enable()


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        sock.send(json.dumps(message).encode())


def set_name(name: bytes) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when the supervisor dies, even while it imports (it reads no socket then).

    It holds the listening socket: alive, it would keep the port accepting connections
    nobody serves.  The forked processes do not inherit this (Linux clears it at fork);
    they have their control socket's end of file.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the supervisor died before the line above (while Python started)
        os._exit(1)


def supervisor_pid(argv: list[str]) -> int:
    """``--supervisor-pid``, read before ``worker`` (and so uvicorn) is imported."""
    for option, value in zip(argv, argv[1:], strict=False):
        if option == "--supervisor-pid" and value.isdigit():
            return int(value)
    return os.getppid()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    die_with_parent(supervisor_pid(argv))
    set_name(FORK_SERVER_NAME)
    # No cyclic collection while importing: the collector would walk the growing heap
    # dozens of times (~0.1 s of a ~0.9 s import here), and it is on the start's critical
    # path.  ``freeze_imported`` below keeps what little cyclic garbage the import left.
    gc.disable()
    from supervisor.server import worker  # only now: importing uvicorn takes ~0.1 s

    if EARLY_OPTION in argv:  # started before the supervisor knew its settings: wait for them
        sock = socket.socket(fileno=int(argv[argv.index("--control-fd") + 1]))
        configured = await_configuration(sock)
        if configured is None:
            return 0
        args = worker.parse(configured)
        args.control_fd = sock.fileno()
    else:
        args = worker.parse(argv)
        sock = socket.socket(fileno=args.control_fd)
    worker.enable_faulthandler()
    started = time.monotonic()
    try:
        app = worker.load(args)
    except Exception as exc:  # noqa: BLE001 - any error of the app's import: fresh processes will report it
        send(sock, {"unsafe": f"the app failed to import: {type(exc).__name__}: {exc}"[:500], "import_failed": True})
        return 1
    preload()
    reason = unsafe_reason()
    if reason is not None:
        send(sock, {"unsafe": reason})
        return 1
    freeze_imported()
    send(sock, {"ready": True, "imported_ms": round((time.monotonic() - started) * 1000)})
    return serve_requests(sock, args, app)


def serve_requests(sock: socket.socket, args: Namespace, app: ASGIApp) -> int:
    """Fork one server process per request until the supervisor closes the socket."""
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, 65536, FDS_PER_REQUEST)
        except InterruptedError:
            continue
        except OSError:
            return 0
        if not data:
            return 0  # the supervisor is gone; its forked processes notice on their own sockets
        try:
            request = json.loads(data)
            if len(fds) != FDS_PER_REQUEST:
                raise ValueError(f"{len(fds)} descriptors instead of {FDS_PER_REQUEST}")
            send(sock, {"pid": fork_server_process(sock, args, app, request, fds)})
        except (OSError, ValueError) as exc:
            send(sock, {"error": f"{type(exc).__name__}: {exc}"})
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)


def fork_server_process(sock: socket.socket, args: Namespace, app: ASGIApp,
                        request: dict[str, Any], fds: list[int]) -> int:
    """Fork twice; the grandchild becomes a server process; return its pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:  # the middle process: fork the server process, tell its pid, exit
        try:
            os.close(read_end)
            pid = os.fork()
            if pid == 0:
                os.close(write_end)
                become_server_process(sock, args, app, request, fds)
            os.write(write_end, str(pid).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read()
    os.waitpid(middle, 0)
    if not answer:
        raise OSError("the middle process exited without forking")
    return int(answer)


def become_server_process(sock: socket.socket, args: Namespace, app: ASGIApp,
                          request: dict[str, Any], fds: list[int]) -> None:
    """In the forked child: take the descriptors and the environment it was sent, then serve; never returns."""
    from supervisor.server import worker  # imported by ``main`` already

    code = 1
    try:
        set_name(SERVER_NAME)
        os.setsid()  # its own group, as ``start_new_session`` gives a spawned one: killpg(pid) reaches its helpers
        sock.close()
        control_fd, heartbeat_fd, stdout_fd, stderr_fd = fds
        os.dup2(stdout_fd, 1)
        os.dup2(stderr_fd, 2)
        os.close(stdout_fd)
        os.close(stderr_fd)
        os.environ.update({str(k): str(v) for k, v in request.get("env", {}).items()})
        worker.join_leaf()  # before anything of its own runs: every helper it starts is born in its leaf
        args = Namespace(**{**vars(args), "control_fd": control_fd, "heartbeat_fd": heartbeat_fd})
        code = worker.serve(args, app, worker.ControlChannel(control_fd))
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # noqa: BLE001 - the child's top-level guard: say why, as a spawned process would
        traceback.print_exc()
    finally:
        # Never back into the fork server's loop: run what a normal exit would, then leave.
        with contextlib.suppress(Exception):
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    sys.exit(main())

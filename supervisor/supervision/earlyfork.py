"""The fork server, started before the supervisor has imported its own modules (issue #17: start).

From exec to its first event the supervisor spends ~0.1 s starting Python and importing
``service`` and everything it needs, and only then did it start the fork server, whose
own interpreter and uvicorn import took another ~0.1 s before it could begin importing
the app: the longest step of every start.  So ``jarlpm run`` starts the fork server
first (``start``, from ``main``, with the standard library only), and the two get ready
side by side.  The early process imports what does not depend on the configuration
(Python, uvicorn, the server's modules) and then waits.  Once the environment is
validated and the socket bound, ``configure`` sends it what a fork server spawned then
would have had: its command line, its exact environment (the app's import sees nothing
else) and its descriptors (the listening socket, the URLs handed over by descriptor),
placed at the numbers the command line and the environment name.  Only then does it
import the app.

It is a guess made before validation, so it is never trusted beyond that: nothing is
started when ``JARLPM_FORK_SERVER`` is not plainly on or no database URL is set (the
embedded database's start comes first); it is discarded (SIGKILL, reaped) when the
validated settings turn forking off, when the start fails, or when the variables that
shape an interpreter's start (``PYTHON*``) would differ from a fork server spawned now.
A SIGKILLed supervisor takes it along (``PR_SET_PDEATHSIG``, set first thing).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys

MODULE = "supervisor.server.forkserver"
EARLY_OPTION = "--early"  # the fork server waits for ``configure`` before importing the app
_ON = {"1", "true", "yes", "on"}  # contract.variables.TRUE; absent is on too (the default)
_URL_FILES = ("DATABASE_URL_FILE", "DATABASE_DIRECT_URL_FILE")  # replaced by descriptors later


class EarlyForkServer:
    """A fork server started by ``start`` and not yet configured (or discarded)."""

    def __init__(self, process: subprocess.Popen[bytes], control: socket.socket, child_end: socket.socket,
                 env: dict[str, str]) -> None:
        self.process = process
        self.control = control  # the supervisor's end, non-blocking
        # Held open until ``configure``: its number is the fork server's control descriptor, so
        # no descriptor opened meanwhile here (the socket, a URL's memfd) can be given it.
        self.child_end = child_end
        self.env = env


def interpreter_env(environ: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    """The fork server's environment as far as it is known before validation (``server_process.python_env``)."""
    env = {name: value for name, value in environ.items() if name not in _URL_FILES}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wanted(environ: dict[str, str] | os._Environ[str]) -> bool:
    """Would the validated settings most likely use a fork server at start?  Only a plain yes counts."""
    flag = environ.get("JARLPM_FORK_SERVER")
    if flag is not None and flag.strip().lower() not in _ON:
        return False
    return bool(environ.get("DATABASE_URL", "").strip() or environ.get("DATABASE_URL_FILE", "").strip())


def start(environ: dict[str, str] | os._Environ[str] = os.environ) -> EarlyForkServer | None:
    """Start the fork server now, unconfigured; None when it is not wanted or cannot start."""
    if not wanted(environ):
        return None
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    env = interpreter_env(environ)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", MODULE, EARLY_OPTION, "--control-fd", str(child_end.fileno()),
             "--supervisor-pid", str(os.getpid())],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=(child_end.fileno(),), start_new_session=True, env=env,
        )
    except OSError:  # the supervisor starts one the usual way, and says why if that fails too
        parent_end.close()
        child_end.close()
        return None
    parent_end.setblocking(False)
    return EarlyForkServer(process, parent_end, child_end, env)


def same_interpreter(early: EarlyForkServer, env: dict[str, str]) -> bool:
    """Would a fork server spawned with ``env`` start the same interpreter (``sys.path``, flags, hash seed)?"""
    def shaping(values: dict[str, str]) -> dict[str, str]:
        return {name: value for name, value in values.items() if name.startswith("PYTHON")}
    return shaping(early.env) == shaping(env)


def configure(early: EarlyForkServer, argv: list[str], env: dict[str, str], fds: list[int]) -> bool:
    """Send the fork server its command line, environment and descriptors; False: discard it instead.

    ``fds`` are sent with the message and placed by the fork server at these same numbers,
    which ``argv`` (``--fd``) and ``env`` (``/proc/self/fd/N``) name.
    """
    import json

    if early.process.poll() is not None or not same_interpreter(early, env):
        return False
    message = json.dumps({"argv": argv, "env": env, "fds": fds}).encode()
    try:
        socket.send_fds(early.control, [message], fds)
    except OSError:
        return False
    finally:
        early.child_end.close()
    return True


def discard(early: EarlyForkServer | None) -> None:
    """Kill and reap a fork server that will not be configured (it imported nothing of the app)."""
    if early is None:
        return
    if early.process.returncode is None:  # not reaped yet: its group id cannot have been reused
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(early.process.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, subprocess.TimeoutExpired):
            early.process.wait(timeout=5)
    for end in (early.control, early.child_end):
        end.close()
    for stream in (early.process.stdout, early.process.stderr):
        if stream is not None:
            stream.close()

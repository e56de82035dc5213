"""The listening socket, bound once by the supervisor (or handed over by systemd) and passed to every server process.

Because the supervisor keeps it open, connections that arrive while a server
process restarts or reloads wait in the kernel's backlog instead of being refused.
Under socket activation (``systemd/jarlpm.socket``) systemd holds it, so even a
restart of the whole supervisor refuses no connection.
"""

from __future__ import annotations

import os
import socket
from collections.abc import MutableMapping

from supervisor.contract.exitcodes import ExitCode, SupervisorError

BACKLOG = 2048
SD_LISTEN_FDS_START = 3  # sd_listen_fds(3): the first passed descriptor
_ACTIVATION_VARIABLES = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")


def bind(host: str, port: int) -> socket.socket:
    """Bind ``host:port`` (IPv4, IPv6 or a name) with the right family; exit 78 on failure."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise SupervisorError(f"cannot resolve HOST={host!r}: {exc.strerror}", ExitCode.CONFIG,
                              "set HOST to an address such as 0.0.0.0 or ::") from None
    family, socktype, proto, _, address = infos[0]
    sock = socket.socket(family, socktype, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and host in ("::", ""):
            # '::' serves IPv4 too, as people expect from 0.0.0.0.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise SupervisorError(
            f"cannot listen on {host}:{port}: {exc.strerror}", ExitCode.CONFIG,
            "another process holds the port (find it with `ss -ltnp`), or choose another PORT/HOST",
        ) from None
    sock.set_inheritable(True)
    return sock


def activated(env: MutableMapping[str, str], pid: int | None = None) -> socket.socket | None:
    """The listening socket systemd passed (LISTEN_FDS/LISTEN_PID), or None when none was.

    The variables are removed from ``env`` as sd_listen_fds(3) does with
    ``unset_environment``: our children (the phase process, the servers) must not
    think the socket was passed to them.  Exit 78 when what was passed is unusable.
    """
    fds, owner = env.get("LISTEN_FDS", ""), env.get("LISTEN_PID", "")
    for name in _ACTIVATION_VARIABLES:
        env.pop(name, None)
    if not fds or owner != str(os.getpid() if pid is None else pid):
        return None  # not for us: inherited from a parent that was socket-activated
    try:
        count = int(fds)
    except ValueError:
        count = 0
    if count < 1:
        return None
    try:
        sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    except OSError as exc:
        raise SupervisorError(f"LISTEN_FDS={fds} but descriptor 3 is not a socket: {exc.strerror}",
                              ExitCode.CONFIG, "check the socket unit (systemd/jarlpm.socket)") from None
    if sock.type != socket.SOCK_STREAM or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        raise SupervisorError("the socket systemd passed is not a listening stream socket",
                              ExitCode.CONFIG, "use ListenStream= and Accept=no in the socket unit")
    sock.set_inheritable(True)
    return sock


def describe(sock: socket.socket) -> tuple[str, int] | None:
    """(host, port) of an IP socket, for the logs; None for a Unix socket."""
    address = sock.getsockname()
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        return str(address[0]), int(address[1])
    return None

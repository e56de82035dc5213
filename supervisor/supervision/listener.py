"""The listening socket, bound once by the supervisor and handed to every server process.

Because the supervisor keeps it open, connections that arrive while a server
process restarts or reloads wait in the kernel's backlog instead of being refused.
"""

from __future__ import annotations

import socket

from supervisor.contract.exitcodes import ExitCode, SupervisorError

BACKLOG = 2048


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

"""Closing the listening socket without resetting the connections waiting in its accept queue.

The kernel completes a TCP handshake before anyone calls ``accept``: when the
server processes have stopped accepting and the socket closes, every connection
still queued is reset, whatever DRAIN_DELAY is (4–8 per stop under load, issue #16).
So the supervisor accepts what is queued itself, answers each with a 503 that tells
the client to retry (``Retry-After``, ``Connection: close``), and only then closes
the socket.  Only a connection whose handshake races the final close can still be reset.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time

ANSWER_WITHIN = 1.0  # seconds for every queued client to send its request and get the answer
_BODY = b'{"status":"stopping","detail":"the server is shutting down; retry"}'
RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\n"
            b"Content-Type: application/json\r\n"
            b"Retry-After: 1\r\n"
            b"Connection: close\r\n"
            b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY)


def answer_and_close(listener: socket.socket, within: float = ANSWER_WITHIN) -> int:
    """Accept every queued connection, answer it 503, close ``listener``; return how many."""
    conns = _accept_queued(listener)
    # Stop listening at once for every holder of the socket (a server process that has not
    # exited yet still holds it): a connection arriving from now on is refused, which a
    # client retries, instead of queueing until the last holder exits and being reset.
    with contextlib.suppress(OSError):
        listener.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        listener.close()
    if conns:
        _answer(conns, time.monotonic() + within)
    return len(conns)


def _accept_queued(listener: socket.socket) -> list[socket.socket]:
    conns: list[socket.socket] = []
    try:
        listener.setblocking(False)
    except OSError:
        return conns
    while True:
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return conns
        except OSError:  # closed or invalid: nothing more to take
            return conns
        conn.setblocking(False)
        conns.append(conn)


def _answer(conns: list[socket.socket], deadline: float) -> None:
    """Read each request's head (closing with unread data would reset), answer, close."""
    heads: dict[socket.socket, bytes] = {conn: b"" for conn in conns}
    with selectors.DefaultSelector() as selector:
        for conn in conns:
            selector.register(conn, selectors.EVENT_READ, conn)
        while heads and time.monotonic() < deadline:
            for key, _ in selector.select(max(0.0, deadline - time.monotonic())):
                conn = key.data
                try:
                    data = conn.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                heads[conn] += data
                if not data or b"\r\n\r\n" in heads[conn]:
                    selector.unregister(conn)
                    _reply(conn, answered=bool(data))
                    del heads[conn]
    for conn in heads:  # silent past the deadline: answer anyway
        _reply(conn, answered=True)


def _reply(conn: socket.socket, answered: bool) -> None:
    with contextlib.suppress(OSError):
        if answered:
            conn.setblocking(True)
            conn.settimeout(0.1)
            conn.sendall(RESPONSE)
            conn.shutdown(socket.SHUT_WR)
            # Whatever else the client sent (a body) is read, not left to turn close into a reset.
            while conn.recv(65536):
                pass
    with contextlib.suppress(OSError):
        conn.close()

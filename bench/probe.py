"""Single HTTP requests on loopback: one GET, and polling until the first 200."""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable

HOST = "127.0.0.1"


def get(port: int, path: str, timeout: float = 10.0) -> int:
    """Status of one GET on a fresh connection (raises OSError/HTTPException like any client)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def first_200(port: int, path: str, timeout: float, still_running: Callable[[], bool],
              interval: float = 0.01) -> float:
    """Poll ``path`` until it answers 200; return the monotonic time of that answer.

    A refused connection is retried after ``interval``; a connection the kernel
    queued (the supervisor's socket is open before a server accepts) simply waits.
    Raises RuntimeError if the process dies or the deadline passes.
    """
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuntimeError(f"no 200 from {path} on port {port} within {timeout}s")
        try:
            if get(port, path, timeout=remaining) == 200:
                return time.monotonic()
        except (OSError, http.client.HTTPException):
            pass
        if not still_running():
            raise RuntimeError(f"the server exited before {path} answered 200")
        time.sleep(interval)

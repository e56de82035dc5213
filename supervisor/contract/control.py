"""The control channel between the supervisor and a server process, written once for both ends.

A server process gets one end of a socketpair (``--control-fd``); each message is one
ASCII word on its own line (``REQUESTS`` adds a space and a count: ``counted``).  The
supervisor's end (``supervision.server_process``, ``supervision.arbiter``) and the
server's end (``server.worker``) both use these names and this framing, so neither can
send a word the other does not know (tests/unit/test_architecture.py checks that no
other module spells them).
"""

from __future__ import annotations

# Supervisor -> server.
GO = "go"  # the schema is at head: run lifespan startup (open the pool) and serve
DRAIN = "drain"  # answer the readiness path with 503 from now on (load balancers notice)
CLOSE = "close"  # stop accepting new connections; finish the ones taken

# Server -> supervisor.
IMPORTED = "imported"  # the app is imported and uvicorn loaded: waiting for go (a standby is ready to stand in)
READY = "ready"  # lifespan startup is done and the process serves
# The heartbeat is no message: a message would wake the supervisor every second
# (see ``contract.heartbeat``).
# The HTTP requests this process has taken so far, when the count changed (at most ten a
# second, so never at rest): "requests 120".  MAX_REQUESTS recycling reads it; counting
# in the process's ASGI wrapper costs one integer increment per request.
REQUESTS = "requests"

TO_SERVER = frozenset({GO, DRAIN, CLOSE})
TO_SUPERVISOR = frozenset({IMPORTED, READY, REQUESTS})
MESSAGES = TO_SERVER | TO_SUPERVISOR

_SEPARATOR = b"\n"


def encode(message: str) -> bytes:
    """One message as it goes on the wire."""
    if not message or "\n" in message:
        raise ValueError(f"a control message is one non-empty line, not {message!r}")
    return message.encode() + _SEPARATOR


def counted(message: str, count: int) -> str:
    """A message carrying a count: ``requests 120``."""
    return f"{message} {int(count)}"


def count_of(line: str, message: str) -> int | None:
    """The count of ``line`` when it is ``message`` with a count, else None."""
    name, _, value = line.partition(" ")
    return int(value) if name == message and value.isdigit() else None


class Decoder:
    """Splits the bytes read from the channel into messages, keeping a partial line for later."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[str]:
        """The complete messages in what has arrived so far (empty lines are skipped)."""
        self._buffer += data
        *lines, self._buffer = self._buffer.split(_SEPARATOR)
        return [line.decode(errors="replace") for line in lines if line]

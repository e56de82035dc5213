"""The request body limit (``MAX_REQUEST_BODY_BYTES``): a body over it is a 413 before it is read into memory."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from supervisor.contract import envread

MAX_BODY_VARIABLE = "MAX_REQUEST_BODY_BYTES"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024  # = the contract's default (tests/integration/test_http_contract.py)
# The methods whose bodies the API reads; any other body is never read (the
# HTTP server discards it), so it costs no memory and is not refused.
LIMITED_METHODS = frozenset({"POST", "PUT", "PATCH"})


def max_body_bytes(environ: Mapping[str, str] | None = None) -> int:
    """``MAX_REQUEST_BODY_BYTES`` (bytes, default 1 MiB; 0 turns the limit off), by the contract's rule.

    The supervisor validates it before anything starts; under plain uvicorn a bad
    value fails the start-up in the same words (``ConfigError``).
    """
    value: int = envread.read(os.environ if environ is None else environ, [MAX_BODY_VARIABLE])[MAX_BODY_VARIABLE]
    return value


@dataclass
class BodyLimit:
    """The limit in force, in bytes (0 = none): set by the app's lifespan, read by the middleware."""

    max_bytes: int = DEFAULT_MAX_BODY_BYTES


class BodyTooLarge(HTTPException):
    """The request body is over the limit (413).

    An HTTPException, so that raised from ``receive`` while FastAPI reads a body
    it passes through FastAPI's "error parsing the body" (400) unchanged and is
    answered by the 413 handler.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body too large: the limit is {limit} bytes")


class BodySizeLimitMiddleware:
    """Answer 413 for a body over the limit: at once from ``Content-Length``, else while it streams in.

    A declared length is trusted (the HTTP server never delivers more than it),
    so only bodies without one (chunked) pay for counting.  The limit is read
    from the environment by the app's lifespan (a bad value then fails the
    start-up cleanly), not here: Starlette builds middleware on the first
    call, where an exception would make uvicorn take the app for one without
    a lifespan and answer 500 to everything.
    """

    def __init__(self, app: ASGIApp, limit: BodyLimit) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limit.max_bytes
        if scope["type"] != "http" or not limit or scope["method"] not in LIMITED_METHODS:
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None:
            if declared > limit:
                await _refuse(limit, send)
                return
            await self.app(scope, receive, send)
            return
        await self._counted(limit, scope, receive, send)

    async def _counted(self, limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        received, started = 0, False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            # Read outside FastAPI's body parsing (so no handler answered it).
            if started:
                raise
            await _refuse(limit, send)


def _declared_length(scope: Scope) -> int | None:
    """The Content-Length, or None when absent, malformed, or sent with a Transfer-Encoding."""
    length = None
    for name, value in scope["headers"]:
        if name == b"content-length":
            length = value
        elif name == b"transfer-encoding":
            return None
    if length is None or not length.isdigit():
        return None
    return int(length)


async def _refuse(limit: int, send: Send) -> None:
    payload = json.dumps({"detail": BodyTooLarge(limit).detail}).encode()
    await send({
        "type": "http.response.start",
        "status": 413,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close")],
    })
    await send({"type": "http.response.body", "body": payload})

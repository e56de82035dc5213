"""Which request is running: a context variable set by a pure ASGI middleware, read at pool checkout.

The checkout happens deep inside SQLAlchemy, often in a worker thread of the
request thread pool; a context variable reaches it there (Starlette copies the
context into the thread), where an argument could not.  Everything costly
(route template, request id header) is resolved only when a report needs it.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from typing import Any

from jarlpm.pool.options import instrumentation_enabled

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_HEADER = b"x-request-id"
# A request id from a client or proxy is echoed into logs: keep it short and printable.
MAX_REQUEST_ID = 64

_sequence = itertools.count(1)


class RequestContext:
    """One HTTP request as the pool sees it; ``finished_at`` is set once the app has answered."""

    __slots__ = ("scope", "seq", "started_at", "finished_at")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.seq = next(_sequence)
        self.started_at = time.monotonic()
        self.finished_at: float | None = None

    @property
    def method(self) -> str:
        return str(self.scope.get("method", ""))

    @property
    def path(self) -> str:
        return str(self.scope.get("path", ""))

    @property
    def route(self) -> str:
        """The route template (``/api/epics/{epic_id}``), else the raw path when no route matched."""
        return route_template(self.scope) or self.path

    @property
    def request_id(self) -> str:
        """The client's or proxy's ``X-Request-ID``, else ``<pid>-<sequence>`` of this process."""
        for name, value in self.scope.get("headers") or ():
            if name == REQUEST_ID_HEADER:
                text = bytes(value).decode("latin-1").strip()[:MAX_REQUEST_ID]
                if text.isprintable() and text:
                    return text
        return f"{os.getpid()}-{self.seq}"


CURRENT_REQUEST: ContextVar[RequestContext | None] = ContextVar("jarlpm_request", default=None)


def current_request() -> RequestContext | None:
    """The request running in this context (thread pool workers included), if any."""
    return CURRENT_REQUEST.get()


def route_template(scope: Scope) -> str | None:
    """The full path template of the route that matched ``scope``, or None before routing.

    FastAPI may keep an included router's routes unflattened, so the matched
    route's own ``path`` lacks the routers' prefixes.  Its effective route
    context knows the full template; otherwise the prefix is rebuilt from the
    request path, taking as many leading segments as the template lacks
    (prefixes are literal in practice).
    """
    fastapi_scope = scope.get("fastapi")
    if isinstance(fastapi_scope, dict):
        effective = fastapi_scope.get("effective_route_context")
        path_format = getattr(effective, "path_format", None)
        if isinstance(path_format, str) and path_format:
            return path_format
    route = scope.get("route")
    local = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(local, str):
        return None
    return _with_prefix(str(scope.get("path", "")), local)


def _with_prefix(path: str, local: str) -> str:
    local_parts = [part for part in local.split("/") if part]
    parts = [part for part in path.split("/") if part]
    prefix = parts[: max(0, len(parts) - len(local_parts))]
    template = "/" + "/".join(prefix + local_parts)
    if local.endswith("/") and template != "/":
        template += "/"
    return template


class RequestContextMiddleware:
    """Marks each HTTP request's context so pool checkouts can say which request took them.

    Pure ASGI (no BaseHTTPMiddleware): it adds one small object and a context
    variable per request, nothing per message.  ``enabled`` is read when the
    app starts (Starlette builds its middleware on the first call, the lifespan),
    so ``JARLPM_POOL_INSTRUMENTATION=0`` turns it into a pass-through.
    """

    def __init__(self, app: ASGIApp, enabled: bool | None = None) -> None:
        self.app = app
        self.enabled = instrumentation_enabled(os.environ) if enabled is None else enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context = RequestContext(scope)
        token = CURRENT_REQUEST.set(context)
        try:
            await self.app(scope, receive, send)
        finally:
            context.finished_at = time.monotonic()
            CURRENT_REQUEST.reset(token)

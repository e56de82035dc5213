"""Prometheus HTTP metrics for any ASGI app, recorded inside the server process.

The supervisor wraps whatever ``JARLPM_APP`` names in ``HttpMetrics`` when
``METRICS_PORT`` is set, so every app gets ``jarlpm_http_requests_total`` and
``jarlpm_http_request_duration_seconds`` without knowing the supervisor.  Values go
to prometheus_client's multiprocess files in the directory the supervisor owns
(``PROMETHEUS_MULTIPROC_DIR``); the supervisor aggregates them when scraped, so a
process that dies keeps its counts.

Labels stay bounded: ``route`` is the route's template (``/api/epics/{epic_id}``,
as Starlette/FastAPI record it in the scope), never the raw path, and
``unmatched`` for a request no route took (404s of scanners); a method outside
the standard ones is ``other``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
UNMATCHED = "unmatched"
# From 5 ms (a health check) to 30 s (DB_POOL_TIMEOUT's default): where latency SLOs live.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def route_template(scope: Scope) -> str:
    """The template of the route that handled the request, or ``unmatched``.

    Starlette (and FastAPI before nested routers) records the matched route in
    ``scope["route"]``, its path relative to any mount (``root_path``).  FastAPI
    with nested routers records there the innermost route, relative to its router
    (``/{epic_id}``), and the whole template in its own scope entry, read first.
    """
    fastapi = scope.get("fastapi")
    if isinstance(fastapi, dict):
        full = getattr(fastapi.get("effective_route_context"), "path", None)
        if isinstance(full, str) and full:
            return full
    path = getattr(scope.get("route"), "path", None)
    if not isinstance(path, str) or not path:
        return UNMATCHED
    root = scope.get("root_path")
    return f"{root}{path}" if isinstance(root, str) and root and not path.startswith(root) else path


class HttpMetrics:
    """ASGI middleware counting requests by method, route template and status, and timing them."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry = REGISTRY) -> None:
        self.app = app
        self.requests = Counter("jarlpm_http_requests_total", "HTTP requests answered, by route template.",
                                ["method", "route", "status"], registry=registry)
        self.duration = Histogram("jarlpm_http_request_duration_seconds",
                                  "Time from the request's arrival to the end of its response.",
                                  ["method", "route"], buckets=BUCKETS, registry=registry)
        # .labels() takes a lock and builds a key each time; the children are kept here instead,
        # so a request costs two dict look-ups and two increments of shared memory.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.record(scope, status, time.perf_counter() - started)

    def record(self, scope: Scope, status: int, seconds: float) -> None:
        method = scope.get("method", "GET")
        method = method if method in METHODS else "other"
        route = route_template(scope)
        counter = self._counters.get((method, route, status))
        if counter is None:
            counter = self._counters[(method, route, status)] = self.requests.labels(method, route, str(status))
        timer = self._timers.get((method, route))
        if timer is None:
            timer = self._timers[(method, route)] = self.duration.labels(method, route)
        counter.inc()
        timer.observe(seconds)

"""The FastAPI application: routes, error handlers, and a lifespan that owns the database engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from jarlpm import pool
from jarlpm.api import api_router
from jarlpm.api.limits import BodyLimit, BodySizeLimitMiddleware, max_body_bytes
from jarlpm.errors import install_handlers
from jarlpm.runtime import start_runtime
from jarlpm.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; ``settings`` default to the environment, read when the app starts, not now.

    Importing ``server`` therefore opens nothing and reads nothing, so a server
    process can import the app while the supervisor is still migrating.
    """

    body_limit = BodyLimit()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Read first: a malformed MAX_REQUEST_BODY_BYTES fails the start-up, naming it.
        body_limit.max_bytes = max_body_bytes()
        runtime = await anyio.to_thread.run_sync(start_runtime, settings or Settings.from_env())
        app.state.runtime = runtime
        # Sync endpoints run in this thread pool: more threads than connections queue on the pool.
        pool.check_thread_budget(runtime.engine, int(anyio.to_thread.current_default_thread_limiter().total_tokens))
        try:
            yield
        finally:
            runtime.stopping.set()
            await anyio.to_thread.run_sync(runtime.dispose)

    app = FastAPI(title="JarlPM", version="1.0.0", lifespan=lifespan)
    app.include_router(api_router())
    install_handlers(app)
    # Which request (method, route, request id) takes each pooled connection.
    app.add_middleware(pool.RequestContextMiddleware)
    # Outermost (added last): a body over MAX_REQUEST_BODY_BYTES is refused before anything reads it.
    app.add_middleware(BodySizeLimitMiddleware, limit=body_limit)
    return app

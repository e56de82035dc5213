"""The HTTP routes, all under ``/api``."""

from __future__ import annotations

from fastapi import APIRouter

from jarlpm.api import epics, features, health, stories


def api_router() -> APIRouter:
    """Return one router holding every resource, to be mounted at ``/api``."""
    router = APIRouter(prefix="/api")
    for module in (health, epics, features, stories):
        router.include_router(module.router)
    return router

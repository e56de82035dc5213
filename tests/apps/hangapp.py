"""An app whose lifespan startup never finishes, like a pool warm-up stuck on a dead host."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI


def stuck_in_startup() -> None:
    time.sleep(3600)


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    stuck_in_startup()
    yield


app = FastAPI(lifespan=lifespan)

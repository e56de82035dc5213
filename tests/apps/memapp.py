"""A small ASGI app whose memory grows on request, for MAX_WORKER_MEMORY_MB recycling tests.

/grow?mb=N keeps N more MiB for the life of the process (a leak, on purpose); /spike?mb=N
allocates N MiB for one request only; /pid says which server process answered.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

app = FastAPI()
KEPT: list[bytearray] = []


@app.get("/api/health/ready")
async def ready() -> dict[str, str]:
    return {"status": "ready"}


@app.get("/pid")
async def pid() -> dict[str, int]:
    return {"pid": os.getpid()}


@app.get("/grow")
async def grow(mb: int = 10) -> dict[str, int]:
    # bytearray(n) is zero-filled: touched pages, so resident (VmRSS), not only reserved.
    KEPT.append(bytearray(mb * 1024 * 1024))
    return {"pid": os.getpid(), "kept_mb": sum(len(b) for b in KEPT) // (1024 * 1024)}

"""A server that logs N lines as fast as it can: the log relay benchmark's app.

``GET /spam?n=N`` writes N structured (JSON) log records to stdout through the
standard library's logging, one write and flush per record as a StreamHandler
does, and answers when done.  The handler is the app's own, so the app does the
same work whether its stdout goes to the supervisor or straight to a reader.
A plain ``def`` endpoint: it runs in a worker thread, so the event loop (and the
supervisor's heartbeat) keeps running while the pipe pushes back.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from fastapi import FastAPI

MARKER = "bench.spam.line"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
                           "level": record.levelname.lower(), "event": MARKER, "logger": record.name,
                           "message": record.getMessage(), "i": getattr(record, "i", None)})


log = logging.getLogger("bench.spam")
log.propagate = False
log.setLevel(logging.INFO)
_handler = logging.StreamHandler(sys.stdout)
_handler.setFormatter(JsonFormatter())
log.addHandler(_handler)

app = FastAPI()


@app.get("/api/health")
async def health() -> dict[str, str]:
    return {"status": "healthy"}


@app.get("/api/health/ready")
async def ready() -> dict[str, str]:
    return {"status": "ready"}


@app.get("/spam")
def spam(n: int = 1000) -> dict[str, float]:
    started = time.monotonic()
    for i in range(n):
        log.info("request handled: GET /api/epics 200 in 3.2 ms (line %d of %d)", i + 1, n, extra={"i": i})
    return {"lines": n, "seconds": time.monotonic() - started}

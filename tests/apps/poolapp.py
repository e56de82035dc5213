"""The real JarlPM backend plus routes that misuse the pool, for the pool-diagnosis scenarios.

/test/leak checks a connection out and never returns it; /test/query?s=N runs
one N-second statement; /test/idle_tx?s=N opens a transaction, then sleeps N
seconds without using it; /test/release returns what /test/leak kept.  Run with
``JARLPM_APP=poolapp:app JARLPM_APP_DIR=<repo>/tests/apps``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

# The supervisor puts only JARLPM_APP_DIR on the import path; the backend lives beside it.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "backend"))

from jarlpm.api.deps import RuntimeDep, SessionDep  # noqa: E402
from jarlpm.app import create_app  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import Connection  # noqa: E402

app = create_app()
LEAKED: list[Connection] = []


@app.get("/test/leak")
def leak(runtime: RuntimeDep) -> dict[str, int]:
    assert runtime.engine is not None
    connection = runtime.engine.connect()  # the bug under test: never closed
    connection.execute(text("SELECT count(*) FROM epics"))
    LEAKED.append(connection)
    return {"leaked": len(LEAKED)}


@app.get("/test/release")
def release() -> dict[str, int]:
    count = len(LEAKED)
    while LEAKED:
        LEAKED.pop().close()
    return {"released": count}


@app.get("/test/query")
def query(session: SessionDep, s: float = 1.0) -> dict[str, float]:
    session.execute(text("SELECT pg_sleep(:s)"), {"s": s})
    return {"slept": s}


@app.get("/test/idle_tx")
def idle_tx(session: SessionDep, s: float = 5.0) -> dict[str, float]:
    session.execute(text("SELECT count(*) FROM epics"))
    time.sleep(s)  # the transaction stays open, idle, holding its connection
    return {"idled": s}

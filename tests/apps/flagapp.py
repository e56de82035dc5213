"""The sample app, whose lifespan startup fails while the file named by JARLPM_TEST_FAIL_FLAG exists.

It imports cleanly (so a fork server takes it) and its processes then die before
ready on demand: the crash-loop rule must still count them.
"""

from __future__ import annotations

import os
from typing import Any

from sampleapp import app as sample

FLAG = os.environ.get("JARLPM_TEST_FAIL_FLAG", "")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan" and FLAG and os.path.exists(FLAG):
        await receive()  # lifespan.startup
        await send({"type": "lifespan.startup.failed", "message": "the test's flag file exists"})
        return
    await sample(scope, receive, send)

"""The sample app, plus a thread started at import: forking from a process running it is unsafe.

The fork server refuses it (``forkserver.unsafe``) and server processes are spawned fresh.
"""

from __future__ import annotations

import threading

from sampleapp import app

__all__ = ["app"]

_stop = threading.Event()
threading.Thread(target=_stop.wait, name="import-time-poller", daemon=True).start()

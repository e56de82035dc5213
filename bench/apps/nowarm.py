"""The JarlPM backend with its pool warm-up switched off, for the warm-up benchmark.

The backend has no setting to skip warming (its lifespan always calls
``jarlpm.db.warm_pool``), so this module replaces that function with one that
opens nothing, then exposes the backend's own ``app``.  Run it with
``JARLPM_APP=nowarm:app JARLPM_APP_DIR=bench/apps``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "backend"))

from jarlpm import db  # noqa: E402

if not hasattr(db, "warm_pool"):
    raise ImportError("jarlpm.db.warm_pool is gone: update bench/apps/nowarm.py to the backend's new warm-up")


def _no_warmup(engine: object, count: int, deadline_s: float = 0.0) -> int:
    return 0


db.warm_pool = _no_warmup

from server import app  # noqa: E402

__all__ = ["app"]

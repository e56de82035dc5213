"""Where things are: the repository, the bench's apps, the interpreter and its scripts."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
BENCH_APPS = BENCH / "apps"
TEST_APPS = REPO / "tests" / "apps"
RESULTS = BENCH / "results"
SUPERVISORD_VENV = BENCH / ".venv-supervisord"

# The interpreter running the bench is the project's venv (``make bench``); its
# ``uvicorn`` and ``alembic`` scripts are what the shell chain finds on PATH.
PYTHON = sys.executable
BIN = Path(sys.executable).parent

"""Where the repo is: the default home of alembic.ini, backend/ and the .jarlpm/ state."""

from __future__ import annotations

from pathlib import Path


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent

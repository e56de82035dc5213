"""Where the repo is: the default home of alembic.ini, backend/ and the .jarlpm/ state."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def alembic_ini() -> Path:
    """``JARLPM_ALEMBIC_INI``, or the repo's alembic.ini."""
    explicit = os.environ.get("JARLPM_ALEMBIC_INI")
    return Path(explicit) if explicit else repo_root() / "alembic.ini"

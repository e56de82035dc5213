"""Where the project's files are: alembic.ini, the app's directory and the ``.jarlpm/`` state.

Resolved the way alembic, uvicorn and gunicorn resolve them: from the working
directory, where the operator runs ``jarlpm`` beside the app and ``alembic.ini``.
The source checkout that holds this package is only the development fallback
(``scripts/start.sh`` or ``make run`` from elsewhere): an installed package lives in
site-packages, which holds no project file and must never receive state.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ALEMBIC_INI_VARIABLE = "JARLPM_ALEMBIC_INI"


def package_root() -> Path:
    """The directory holding the ``supervisor`` package (put on child processes' import path)."""
    return Path(__file__).resolve().parents[2]


def checkout_root() -> Path | None:
    """The source checkout this package runs from, or None when it is installed."""
    root = package_root()
    return root if (root / "alembic.ini").is_file() and (root / "pyproject.toml").is_file() else None


def project_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The working directory when it holds ``alembic.ini``, else the checkout, else the working directory."""
    cwd = Path.cwd()
    if (cwd / "alembic.ini").is_file():
        return cwd
    return checkout_root() or cwd


def alembic_ini(environ: Mapping[str, str] | None = None) -> Path:
    """``JARLPM_ALEMBIC_INI`` (relative to the working directory), else the project's ``alembic.ini``."""
    env = os.environ if environ is None else environ
    explicit = env.get(ALEMBIC_INI_VARIABLE)
    if explicit:
        return Path(explicit).resolve()
    return project_dir(env) / "alembic.ini"


def data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``JARLPM_DATA_DIR``, else ``.jarlpm`` in the project directory: development mode's database."""
    env = os.environ if environ is None else environ
    explicit = env.get("JARLPM_DATA_DIR")
    return Path(explicit).resolve() if explicit else project_dir(env) / ".jarlpm"


def app_dir(configured: str, environ: Mapping[str, str] | None = None) -> Path:
    """``JARLPM_APP_DIR`` as an absolute path: relative to the working directory, else to the project."""
    path = Path(configured)
    if path.is_absolute() or path.exists():
        return path.resolve()
    return project_dir(environ) / path

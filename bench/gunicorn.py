"""The gunicorn baseline: gunicorn's pre-fork master with one uvicorn worker, from the project's venv.

Unlike supervisord it installs into the project's venv (the ``bench`` extra), so
it serves the very same app with the very same libraries (uvloop, httptools).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path

from bench.paths import BIN
from bench.servers import ServerSpec, clean_env

INSTALL = "pip install -e '.[bench]' (make bench does it)"
WORKER = "uvicorn_worker.UvicornWorker"


def spec(port: int, run_dir: Path, app: str = "server:app", app_dir: str = "backend", preload: bool = False,
         extra: Mapping[str, str] | None = None) -> ServerSpec:
    """``gunicorn APP --chdir DIR -k uvicorn_worker.UvicornWorker -w 1``: the pre-fork baseline.

    One worker, like the supervisor's one server process, running the project venv's
    uvicorn (so uvloop and httptools alike).  ``--access-logfile -`` turns gunicorn's
    access log on, to the same output file the supervisor's relayed log goes to.
    ``uvicorn_worker`` rather than ``uvicorn.workers``, which uvicorn deprecates.
    gunicorn 27's control socket stays on, as by default, but in the run's directory:
    its default path is one per user, which two gunicorns running side by side (the
    footprint scenario) would fight over.
    """
    env = clean_env(port, **(extra or {}))
    argv = [str(BIN / "gunicorn"), app, "--chdir", app_dir, "-k", WORKER, "-w", "1",
            "-b", f"127.0.0.1:{port}", "--access-logfile", "-",
            "--control-socket", str(run_dir / "gunicorn.ctl")]
    if preload:
        argv.append("--preload")
    return ServerSpec("gunicorn --preload" if preload else "gunicorn", argv, env, port, master=True)


def missing() -> str | None:
    """Why the gunicorn baseline cannot run in this venv, or None when it can."""
    for module in ("gunicorn", "uvicorn_worker"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed in this venv: {INSTALL}"
    if not (BIN / "gunicorn").exists():
        return f"no {BIN / 'gunicorn'} script: {INSTALL}"
    return None

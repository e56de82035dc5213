"""The supervisord baseline: PyPI's ``supervisor`` in a venv of its own, configured like JarlPM's.

Its import name (``supervisor``) is the same as this project's package, so it
cannot live in the project's venv.  Only supervisord is installed there: the
program it runs is the project venv's ``uvicorn``, so every contender serves the
very same app with the very same libraries, and only the supervision differs.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from bench.paths import BIN, SUPERVISORD_VENV
from bench.servers import ServerSpec, clean_env, uvicorn_command

CONFIG = """\
[supervisord]
nodaemon=true
logfile={dir}/supervisord.log
pidfile={dir}/supervisord.pid
childlogdir={dir}
loglevel=info

[unix_http_server]
file={dir}/supervisor.sock

[supervisorctl]
serverurl=unix://{dir}/supervisor.sock

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[program:backend]
command={bin}/{command}
directory={cwd}
autostart=true
autorestart=true
stopsignal=TERM
redirect_stderr=true
stdout_logfile={dir}/backend.log
"""


class SupervisordUnavailable(RuntimeError):
    """supervisord could not be installed (no network?); its rows read "not available"."""


def ensure_installed(venv: Path = SUPERVISORD_VENV) -> str:
    """Create the venv and install supervisor once; return supervisord's version."""
    supervisord = venv / "bin" / "supervisord"
    if not supervisord.exists():
        steps = [[sys.executable, "-m", "venv", str(venv)],
                 [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", "supervisor"]]
        for step in steps:
            result = subprocess.run(step, capture_output=True, text=True, timeout=600)
            if result.returncode != 0:
                raise SupervisordUnavailable(f"{' '.join(step[:3])} failed: {result.stderr.strip()[-500:]}")
    result = subprocess.run([str(supervisord), "--version"], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise SupervisordUnavailable(f"supervisord --version failed: {result.stderr.strip()[-500:]}")
    return result.stdout.strip()


def spec(port: int, workdir: Path, cwd: Path, app: str = "server:app", app_dir: str = "backend",
         venv: Path = SUPERVISORD_VENV, extra: Mapping[str, str] | None = None) -> ServerSpec:
    """supervisord in the foreground with one ``[program:backend]``; the app's variables are inherited."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "supervisord.conf"
    conf.write_text(CONFIG.format(dir=workdir, bin=BIN, command=uvicorn_command(port, app, app_dir), cwd=cwd))
    env = clean_env(port, **(extra or {}))
    return ServerSpec("supervisord", [str(venv / "bin" / "supervisord"), "-n", "-c", str(conf)], env, port,
                      cwd=cwd, ctl=[str(venv / "bin" / "supervisorctl"), "-c", str(conf)])

"""The contenders, in one table: their labels, how to start each one, and whether this machine has it.

A scenario names the contenders it compares (a tuple of labels) and asks
``available`` which of them can run here; the others become a note in its
report ("gunicorn not installed: ..."), never an error.  Adding a contender is
one label, one branch in ``spec`` and, if it may be missing, one check in
``unavailable``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from bench import gunicorn, servers, supervisord
from bench.paths import REPO

SUPERVISOR = "supervisor"
# The supervisor with its fast-replacement option (a standby server process kept
# ready): selected by the variable below, which the supervisor does not read yet.
STANDBY = "supervisor (standby)"
STANDBY_VARIABLE = "JARLPM_STANDBY"
# The supervisor with its fork server turned off (on by default): every replacement is a
# fresh interpreter importing the app, as before issue #17; the row shows what the option saves.
NO_FORK_SERVER = "supervisor (no fork server)"
FORK_SERVER_VARIABLE = "JARLPM_FORK_SERVER"
GUNICORN = "gunicorn"
GUNICORN_PRELOAD = "gunicorn --preload"
SUPERVISORD = "supervisord"
SHELL_CHAIN = "shell chain"
SHELL_LOOP = "shell loop"
UVICORN = "uvicorn"


def is_supervisor(label: str) -> bool:
    """This project's supervisor, in any of its modes (not supervisord)."""
    return label in (SUPERVISOR, STANDBY, NO_FORK_SERVER)


def standby_available(code: Path = REPO / "supervisor") -> bool:
    """The supervisor's code reads the standby switch (otherwise the row would measure the default twice)."""
    return any(STANDBY_VARIABLE in path.read_text(errors="replace") for path in code.rglob("*.py"))


def unavailable(label: str, check_supervisord: Callable[[], object]) -> str | None:
    """Why ``label`` cannot run here, or None."""
    if label in (GUNICORN, GUNICORN_PRELOAD):
        return gunicorn.missing()
    if label == STANDBY and not standby_available():
        return f"the supervisor does not read {STANDBY_VARIABLE} yet (fast replacement not built)"
    if label == SUPERVISORD:
        try:
            check_supervisord()
        except supervisord.SupervisordUnavailable as exc:
            return str(exc)
    return None


def available(wanted: Iterable[str], check_supervisord: Callable[[], object], notes: list[str]) -> list[str]:
    """The labels of ``wanted`` that can run here, in order; a note for each one left out."""
    found = []
    for label in wanted:
        reason = unavailable(label, check_supervisord)
        if reason is None:
            found.append(label)
        else:
            notes.append(f"{label} not available: {reason}")
    return found


def spec(label: str, port: int, url: str, run_dir: Path, app: str = "server:app", app_dir: str = "backend",
         extra: Mapping[str, str] | None = None) -> servers.ServerSpec:
    """How to start ``label`` on ``port`` against the database ``url``, serving ``app``."""
    extra = dict(extra or {})
    if is_supervisor(label):
        app_env = {} if app == "server:app" else {"JARLPM_APP": app, "JARLPM_APP_DIR": app_dir}
        if label == STANDBY:
            app_env[STANDBY_VARIABLE] = "1"
        if label == NO_FORK_SERVER:
            app_env[FORK_SERVER_VARIABLE] = "0"
        built = servers.supervisor(port, url, run_dir, {**app_env, **extra})
        built.label = label
        return built
    if label in (GUNICORN, GUNICORN_PRELOAD):
        return gunicorn.spec(port, run_dir, app, app_dir, preload=label == GUNICORN_PRELOAD,
                                extra={"DATABASE_URL": url, **extra})
    if label == SUPERVISORD:
        return supervisord.spec(port, run_dir, REPO, app, app_dir, extra={"DATABASE_URL": url, **extra})
    if label == UVICORN:
        return servers.plain_uvicorn(port, app, app_dir, {"DATABASE_URL": url, **extra})
    if label in (SHELL_LOOP, SHELL_CHAIN):
        return servers.shell_chain(port, url, loop=label == SHELL_LOOP, extra=extra)
    raise ValueError(f"unknown contender {label!r}")

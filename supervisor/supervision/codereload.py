"""RELOAD (development): watch the app's directory and the migrations; on a change, reload.

A thread runs ``watchfiles`` (debounced) and only enqueues what changed, waking the
loop through a pipe of its own; the loop then replaces the server processes through
the supervisor's own reload (``reloading``): the ``reload`` plan migrates first, so a
revision file just added is applied, then each slot's new process is ready before the
old one drains.  A file that does not import kills the new process before it is
ready: the reload fails the usual way and the old processes keep serving.  Changes
arriving during a reload wait for its end.  ``watchfiles`` is imported only when
RELOAD is on (it is uvicorn[standard]'s watcher too).
"""

from __future__ import annotations

import configparser
import contextlib
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from supervisor.contract.config import Settings
from supervisor.contract.paths import app_dir
from supervisor.supervision import reloading

if TYPE_CHECKING:
    from supervisor.supervision.arbiter import Arbiter

DEBOUNCE_MS = 300  # an editor's save is several writes: one reload for them all
READY_TIMEOUT_MS = 1000  # also how often the watching thread (development only) wakes at rest
SHOWN_FILES = 10


def watched_paths(settings: Settings) -> list[Path]:
    """The app's directory and the migrations' script location (from alembic.ini, without Alembic)."""
    paths = [app_dir(settings.jarlpm_app_dir)]
    ini = Path(settings.alembic_ini)
    parser = configparser.ConfigParser(defaults={"here": str(ini.parent)})
    with contextlib.suppress(OSError, configparser.Error):
        parser.read(ini)
        location = parser.get("alembic", "script_location", fallback="")
        if location and ":" not in location:  # "package:path" locations live in site-packages
            script = Path(location)
            paths.append(script if script.is_absolute() else ini.parent / script)
    return [p.resolve() for p in paths if p.is_dir()]


class CodeWatcher:
    """The watching thread and the pipe that wakes the supervision loop."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._changed: set[str] = set()
        self.ready = threading.Event()  # the watches are in place: a change from now on is seen
        self.announced = False
        self._thread = threading.Thread(target=self._watch, name="code-watcher", daemon=True)
        self._thread.start()

    def fileno(self) -> int:
        return self._read_fd

    def _watch(self) -> None:
        from watchfiles import PythonFilter, watch

        # The first yield (a change, or an empty set after READY_TIMEOUT_MS) comes once the
        # watches are in place: only then does ``supervisor.watching`` say so.  An edit made
        # between the start and then was missed (a flaky reload test once the server
        # processes became ready a few milliseconds sooner).
        for changes in watch(*self.paths, watch_filter=PythonFilter(), debounce=DEBOUNCE_MS,
                             stop_event=self._stop, raise_interrupt=False,
                             rust_timeout=READY_TIMEOUT_MS, yield_on_timeout=True):
            if not changes and self.ready.is_set():
                continue
            self.ready.set()
            with self._lock:
                self._changed.update(path for _, path in changes)
            with contextlib.suppress(OSError):
                os.write(self._write_fd, b"!")

    def take(self) -> list[str]:
        """The files changed since the last call (and the pipe emptied)."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read_fd, 512):
                pass
        with self._lock:
            changed, self._changed = sorted(self._changed), set()
        return changed

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for fd in (self._read_fd, self._write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def start(arb: Arbiter) -> None:
    """Once serving with RELOAD on: start watching (changes during the phases are in the code loaded)."""
    if arb.settings.reload and arb.code_watcher is None and arb.listener is not None:
        paths = watched_paths(arb.settings)
        arb.code_watcher = CodeWatcher(paths)  # ``check`` logs supervisor.watching once it is ready


def check(arb: Arbiter) -> None:
    """Files changed: reload now if running, else keep them until the current reload or start ends."""
    watcher = arb.code_watcher
    if watcher is None:
        return
    if watcher.ready.is_set() and not watcher.announced:
        watcher.announced = True
        arb.log.info("supervisor.watching", paths=[str(p) for p in watcher.paths], debounce_ms=DEBOUNCE_MS)
    arb.changed_files.update(watcher.take())
    if not arb.changed_files or arb.state != "running":
        return
    changed = [_shown(path) for path in sorted(arb.changed_files)][:SHOWN_FILES]
    arb.changed_files.clear()
    for slot, proc in sorted(arb.slots.items()):
        if proc is not None:
            arb.log.info("child.recycling", pid=proc.pid, worker=slot, reason="code_changed", changed=changed)
            arb.metrics.restart("code_changed")
    reloading.reload(arb)


def _shown(path: str) -> str:
    with contextlib.suppress(ValueError):
        return str(Path(path).relative_to(Path.cwd()))
    return path

"""Options of a bench run and what every scenario shares (the database, a work directory)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import supervisord, wrk
from bench.paths import RESULTS
from bench.pg import BenchDatabase

SEED_EPICS = 20


@dataclass(frozen=True)
class Options:
    """How much to measure.  The defaults are the full run (``make bench``, < 15 min on 2 cores)."""

    reps: int = 4
    smoke: bool = False
    only: tuple[str, ...] = ()
    out: Path = RESULTS
    admin_url: str | None = None
    with_supervisord: bool = True
    idle_seconds: float = 60.0
    relay_lines: int = 50_000
    throughput_seconds: float = 15.0  # instrumentation: one-second slices per side per repetition
    wrk_seconds: float = 10.0  # throughput: wrk's duration per run
    pending_revisions: int = 10
    busy: int = 0  # busy loops running throughout (bench/contention.py)

    @classmethod
    def smoke_run(cls, **overrides: object) -> Options:
        """One tiny iteration: start-to-first-200 for the supervisor alone, a short relay, one crash of
        gunicorn's worker and a second of wrk against the supervisor and gunicorn (when installed)."""
        values: dict[str, object] = dict(reps=1, smoke=True, only=("startup", "crash", "relay", "throughput"),
                                         with_supervisord=False, idle_seconds=1.0, relay_lines=2000,
                                         throughput_seconds=1.0, wrk_seconds=1.0)
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


@dataclass
class Context:
    options: Options
    db: BenchDatabase
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="jarlpm-bench-")))
    template: str = ""  # at head, stamped and verified by an earlier start: what restarts find
    template_unverified: str = ""  # at head by plain `alembic upgrade head` only
    pg_version: str = ""
    started: float = field(default_factory=time.monotonic)
    loadavg_at_start: tuple[float, float, float] = field(default_factory=os.getloadavg)
    anomalies: list[str] = field(default_factory=list)
    _supervisord: str | Exception | None = None
    _wrk: str | Exception | None = None
    wrk_version: str | None = None
    _counter: int = 0

    def prepare(self) -> None:
        self.pg_version = self.db.version()
        self.template_unverified = self.db.template_at_head(seed_epics=SEED_EPICS)
        self.template = self.db.verified_copy(self.template_unverified)

    @property
    def supervisord_known_version(self) -> str | None:
        """supervisord's version if a scenario installed and used it."""
        return self._supervisord if isinstance(self._supervisord, str) else None

    def run_dir(self, name: str) -> Path:
        """A fresh directory for one run's logs and sockets."""
        self._counter += 1
        path = self.workdir / f"{self._counter:03d}-{name.replace(' ', '_')}"
        path.mkdir(parents=True)
        return path

    def anomaly(self, message: str) -> None:
        """Something odd that does not stop the run but belongs in the report."""
        self.anomalies.append(message)
        self.progress(f"ANOMALY: {message}")

    def progress(self, message: str) -> None:
        print(f"[bench {time.monotonic() - self.started:6.1f}s] {message}", file=sys.stderr, flush=True)

    def supervisord_version(self) -> str:
        """supervisord's version, installing it on first use; raises SupervisordUnavailable."""
        if not self.options.with_supervisord:
            raise supervisord.SupervisordUnavailable("supervisord baseline disabled (--no-supervisord / smoke)")
        if self._supervisord is None:
            self.progress("installing PyPI's supervisor into bench/.venv-supervisord (once)")
            try:
                self._supervisord = supervisord.ensure_installed()
            except (supervisord.SupervisordUnavailable, OSError, subprocess.SubprocessError) as exc:
                self._supervisord = exc
        if isinstance(self._supervisord, Exception):
            raise supervisord.SupervisordUnavailable(str(self._supervisord))
        return self._supervisord

    def wrk(self) -> str:
        """wrk's path; a full run installs it on first use.  Raises wrk.WrkUnavailable."""
        if self._wrk is None:
            try:
                self._wrk = wrk.ensure(install=not self.options.smoke)
                self.wrk_version = wrk.version(self._wrk)
            except (wrk.WrkUnavailable, OSError, subprocess.SubprocessError) as exc:
                self._wrk = exc
        if isinstance(self._wrk, Exception):
            raise wrk.WrkUnavailable(str(self._wrk))
        return self._wrk

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

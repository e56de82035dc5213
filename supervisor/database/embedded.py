"""Development mode's embedded PostgreSQL, kept under ``.jarlpm/`` in the repo between runs.

Data survives restarts (like a real development database); the server runs only
while the supervisor does.  When the repo's path cannot be entered by the
``postgres`` user (we are root in a private home directory), the cluster lives in
/var/tmp instead and ``.jarlpm/pg`` says where.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.contract import paths
from supervisor.contract.exitcodes import ExitCode, SupervisorError
from supervisor.database import pgguard
from supervisor.database.pgcluster import (
    SUPERUSER,
    ClusterError,
    LocalPostgres,
    free_port,
)

APP_USER = "jarlpm"
APP_PASSWORD = "jarlpm-dev"
APP_DATABASE = "jarlpm"


@dataclass
class EmbeddedDatabase:
    cluster: LocalPostgres
    url: str
    log: Any
    guard: subprocess.Popen[bytes] | None = None

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.cluster.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        with contextlib.suppress(ClusterError):
            self.cluster.stop(mode="fast")
        if self.guard is not None and self.guard.stdin is not None:
            self.guard.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.guard.wait(10)
        self.log.info("embedded_db.stopped", datadir=str(self.cluster.datadir))


def _postgres_can_enter(path: Path) -> bool:
    if os.geteuid() != 0:
        return True
    entry = pwd.getpwnam(SUPERUSER)
    for parent in [path, *path.parents]:
        if not parent.exists():
            continue
        st = parent.stat()
        if st.st_uid == entry.pw_uid:
            continue
        if not st.st_mode & 0o001:
            return False
    return True


def data_dir() -> Path:
    base = paths.data_dir()
    base.mkdir(parents=True, exist_ok=True)
    if _postgres_can_enter(base):
        os.chmod(base, 0o755)
        return base / "pg"
    digest = hashlib.sha256(str(base.resolve()).encode()).hexdigest()[:12]
    fallback = Path("/var/tmp") / f"jarlpm-pg-{digest}"
    fallback.mkdir(parents=True, exist_ok=True)
    os.chmod(fallback, 0o755)
    (base / "pg.location").write_text(str(fallback / "pg") + "\n")
    return fallback / "pg"


def start(log: Any) -> EmbeddedDatabase:
    """Create (first time) and start the embedded cluster; return the app's URL."""
    datadir = data_dir()
    port_file = datadir.parent / "pg.port"
    port = int(port_file.read_text()) if port_file.exists() else 0
    try:
        cluster = LocalPostgres(datadir, port=port or free_port())
        first = not cluster.initialised
        if first:
            cluster.init()
        port_file.write_text(str(cluster.port))
        if cluster.is_running():
            # A previous run was killed: clear its leftover server before starting.
            with contextlib.suppress(ClusterError):
                cluster.stop(mode="immediate")
        cluster.start()
        if first:
            cluster.create_database(APP_DATABASE, owner=APP_USER, owner_password=APP_PASSWORD)
    except ClusterError as exc:
        raise SupervisorError(
            f"could not start the embedded PostgreSQL: {exc}", ExitCode.UNAVAILABLE,
            "install PostgreSQL server binaries (apt-get install postgresql) or `pip install pgserver`, "
            f"or set DATABASE_URL; the cluster's log is {datadir / 'server.log'}",
        ) from None
    url = cluster.url(APP_DATABASE, user=APP_USER, password=APP_PASSWORD)
    log.info("embedded_db.started", datadir=str(datadir), port=cluster.port, created=first,
             url=url)
    return EmbeddedDatabase(cluster=cluster, url=url, log=log, guard=pgguard.watch(cluster))

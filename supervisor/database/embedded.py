"""Development mode's embedded PostgreSQL, kept under ``.jarlpm/`` in the project between runs.

Data survives restarts (like a real development database); the server runs only
while the supervisor does.  The app's role gets a random password, created once and
kept in ``.jarlpm/app.password`` (mode 0600).  When the project's path cannot be
entered by the ``postgres`` user (we are root in a private home directory), the
cluster lives in a private directory that ``mkdtemp`` creates under /var/tmp (an
unpredictable name, mode 0700, owned by ``postgres``), and ``.jarlpm/pg.location``
says where; a location that is not private (a symlink, another owner, writable by
others: something another local user could have prepared) is refused, never used.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import stat
import subprocess
import tempfile
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
APP_DATABASE = "jarlpm"
PASSWORD_FILE = "app.password"


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
    """The cluster's data directory: under .jarlpm/ when ``postgres`` can enter it, else a private one."""
    base = paths.data_dir()
    base.mkdir(parents=True, exist_ok=True)
    if _postgres_can_enter(base):
        os.chmod(base, 0o755)
        return base / "pg"
    location = base / "pg.location"
    if location.exists():
        datadir = Path(location.read_text().strip())
        _require_private(datadir.parent, location)
        return datadir
    private = Path(tempfile.mkdtemp(prefix="jarlpm-pg-", dir="/var/tmp"))  # 0700, unpredictable
    entry = pwd.getpwnam(SUPERUSER)
    os.chown(private, entry.pw_uid, entry.pw_gid)
    _write_private(location, str(private / "pg") + "\n")
    return private / "pg"


def _require_private(directory: Path, recorded_in: Path) -> None:
    """Refuse a cluster directory another local user could have prepared or can change."""
    allowed = {0, pwd.getpwnam(SUPERUSER).pw_uid, os.geteuid()}
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        problem = "does not exist"
    else:
        problem = ("is a symbolic link" if stat.S_ISLNK(st.st_mode)
                   else "is not a directory" if not stat.S_ISDIR(st.st_mode)
                   else f"is owned by uid {st.st_uid}" if st.st_uid not in allowed
                   else "is writable by other users" if st.st_mode & 0o022
                   else "")
    if problem:
        raise SupervisorError(
            f"the embedded PostgreSQL's directory {directory} (from {recorded_in}) {problem}",
            ExitCode.CONFIG,
            f"remove {recorded_in} (and {directory} if it is yours) and start again: a new private "
            "directory is created; or set DATABASE_URL",
        )


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file that only its owner can read (never briefly world-readable)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def app_password() -> tuple[str, bool]:
    """The app role's password and whether it was just created (random, kept in a 0600 file)."""
    path = paths.data_dir() / PASSWORD_FILE
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        return path.read_text().strip(), False
    password = secrets.token_urlsafe(24)
    _write_private(path, password + "\n")
    return password, True


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
        password, new_password = app_password()
        if first:
            cluster.create_database(APP_DATABASE, owner=APP_USER, owner_password=password)
        elif new_password:
            # A cluster created before passwords were random (or whose file was deleted).
            cluster.execute(f"ALTER ROLE {APP_USER} PASSWORD '{password}'")
    except ClusterError as exc:
        raise SupervisorError(
            f"could not start the embedded PostgreSQL: {exc}", ExitCode.UNAVAILABLE,
            "install PostgreSQL server binaries (apt-get install postgresql) or `pip install pgserver`, "
            f"or set DATABASE_URL; the cluster's log is {datadir / 'server.log'}",
        ) from None
    url = cluster.url(APP_DATABASE, user=APP_USER, password=password)
    log.info("embedded_db.started", datadir=str(datadir), port=cluster.port, created=first,
             url=url)
    return EmbeddedDatabase(cluster=cluster, url=url, log=log, guard=pgguard.watch(cluster))

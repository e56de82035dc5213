"""A throwaway local PostgreSQL cluster: development mode's embedded database and the tests' own.

PostgreSQL's ``initdb``/``pg_ctl`` refuse to run as root, so when we are root the
cluster is owned by, and its commands run as, the ``postgres`` user.  When no
server binaries are installed, PyPI's ``pgserver`` wheel (which ships them) is used
if it is importable.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "postgres"


class ClusterError(RuntimeError):
    """The local cluster could not be created, started or stopped."""


def find_bin_dir() -> Path:
    """Return the directory holding ``initdb``/``pg_ctl``: system packages first, then pgserver."""
    explicit = os.environ.get("JARLPM_PG_BIN")
    candidates = [explicit] if explicit else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    which = shutil.which("pg_ctl")
    if which:
        candidates.append(str(Path(which).parent))
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    with contextlib.suppress(ImportError):
        import pgserver  # type: ignore[import-not-found, unused-ignore]

        bin_dir = Path(pgserver.__file__).parent / "pginstall" / "bin"
        if (bin_dir / "initdb").exists():
            return bin_dir
    raise ClusterError(
        "no PostgreSQL server binaries found: install PostgreSQL (e.g. apt-get install "
        "postgresql) or `pip install pgserver`, or set DATABASE_URL"
    )


def free_port() -> int:
    """Ask the kernel for a free TCP port on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as_user() -> str | None:
    """The user to run PostgreSQL commands as: ``postgres`` when we are root, else ourselves."""
    return SUPERUSER if os.geteuid() == 0 else None


@dataclass
class LocalPostgres:
    """One PostgreSQL cluster in ``datadir``, listening on loopback ``port``.

    The superuser ``postgres`` authenticates with ``password`` over TCP (scram), so
    tests can exercise real password failures; the Unix socket lives in the data dir.
    """

    datadir: Path
    port: int = 0
    password: str = ""
    max_connections: int = 100
    extra_settings: Sequence[str] = ()

    def __post_init__(self) -> None:
        self.datadir = Path(self.datadir).absolute()
        self.bin_dir = find_bin_dir()
        self.owner = _run_as_user()
        if not self.port:
            self.port = free_port()
        if not self.password:
            self.password = secrets.token_hex(8)

    # -- commands ---------------------------------------------------------------------
    def _cmd(self, name: str, *args: str) -> list[str]:
        cmd = [str(self.bin_dir / name), *args]
        if self.owner:
            return ["runuser", "-u", self.owner, "--", *cmd]
        return cmd

    def _run(self, name: str, *args: str, timeout: float = 60) -> None:
        result = subprocess.run(
            self._cmd(name, *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd="/",
        )
        if result.returncode != 0:
            raise ClusterError(f"{name} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")

    def _chown(self, path: Path) -> None:
        if self.owner:
            entry = pwd.getpwnam(self.owner)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    @property
    def initialised(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def init(self) -> None:
        """Create the cluster (idempotent): scram on TCP, trust on the private Unix socket."""
        if self.initialised:
            return
        self.datadir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.datadir, 0o700)
        self._chown(self.datadir)
        pwfile = self.datadir.parent / f".pw-{os.getpid()}-{secrets.token_hex(4)}"
        # Created 0600 from the start: never readable by others, not even for a moment.
        with os.fdopen(os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(self.password + "\n")
        self._chown(pwfile)
        try:
            self._run(
                "initdb",
                "-D", str(self.datadir),
                "-U", SUPERUSER,
                "--pwfile", str(pwfile),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E", "UTF8",
                "--no-sync",
                "--locale=C",
                timeout=120,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        with os.fdopen(os.open(self.datadir / "jarlpm.password", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600),
                       "w") as handle:
            handle.write(self.password)
        self._chown(self.datadir / "jarlpm.password")

    def _options(self) -> str:
        opts = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.datadir}",
            f"-c max_connections={self.max_connections}",
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
            "-c shared_buffers=32MB",
        ]
        opts += [f"-c {setting}" for setting in self.extra_settings]
        return " ".join(opts)

    def start(self, timeout: float = 60) -> None:
        """Start the server and wait until it accepts connections."""
        if (self.datadir / "jarlpm.password").exists():
            self.password = (self.datadir / "jarlpm.password").read_text().strip()
        logfile = self.datadir / "server.log"
        self._run(
            "pg_ctl", "-D", str(self.datadir), "-l", str(logfile), "-o", self._options(),
            "-w", "-t", str(int(timeout)), "start", timeout=timeout + 10,
        )

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        """Stop the server (``fast`` disconnects clients; ``immediate`` is a crash)."""
        if not (self.datadir / "postmaster.pid").exists():
            return
        self._run(
            "pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "-t", str(int(timeout)),
            "stop", timeout=timeout + 10,
        )

    def stop_command(self, mode: str = "immediate") -> list[str]:
        """The command that stops this server (for a guard process to run later)."""
        return self._cmd("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "-t", "30", "stop")

    def is_running(self) -> bool:
        return (self.datadir / "postmaster.pid").exists()

    def destroy(self) -> None:
        """Stop the server and delete its data directory."""
        with contextlib.suppress(ClusterError, subprocess.TimeoutExpired):
            self.stop(mode="immediate")
        shutil.rmtree(self.datadir, ignore_errors=True)

    # -- URLs and SQL -------------------------------------------------------------------
    def url(self, dbname: str = "postgres", user: str = SUPERUSER, password: str | None = None) -> str:
        pw = self.password if password is None else password
        return f"postgresql://{user}:{pw}@127.0.0.1:{self.port}/{dbname}"

    def execute(self, sql: str, dbname: str = "postgres", autocommit: bool = True) -> list[tuple[object, ...]]:
        """Run one statement as the superuser and return its rows (used for setup)."""
        import psycopg2

        conn = psycopg2.connect(self.url(dbname), connect_timeout=10)
        try:
            conn.autocommit = autocommit
            with conn.cursor() as cur:
                cur.execute(sql)
                rows: list[tuple[object, ...]] = cur.fetchall() if cur.description else []
            if not autocommit:
                conn.commit()
            return rows
        finally:
            conn.close()

    def create_database(self, name: str, owner: str | None = None, owner_password: str | None = None) -> str:
        """Create a database (and its owning role when named) and return its URL."""
        if owner:
            exists = self.execute(f"SELECT 1 FROM pg_roles WHERE rolname = '{owner}'")
            if not exists:
                self.execute(f"CREATE ROLE {owner} LOGIN PASSWORD '{owner_password}'")
        self.execute(f'CREATE DATABASE "{name}"' + (f' OWNER "{owner}"' if owner else ""))
        if owner:
            return self.url(name, user=owner, password=owner_password)
        return self.url(name)

    def wait_ready(self, timeout: float = 30) -> None:
        """Poll until the server answers a query, or raise."""
        import psycopg2

        deadline = time.monotonic() + timeout
        while True:
            try:
                self.execute("SELECT 1")
                return
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

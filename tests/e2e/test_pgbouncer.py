"""Behind PgBouncer in transaction mode: migrations and their lock on DATABASE_DIRECT_URL, the server pooled.

A session advisory lock taken through PgBouncer in transaction mode sits on whichever
server connection ran that statement, which goes back to the pool at once: another
client may inherit it, and the replica's own next statement may land elsewhere.
Hence DATABASE_DIRECT_URL.  The test runs a real PgBouncer (Debian's package),
installed by the test run itself when missing and we are root, as CI is on a fresh
machine:

    apt-get install -y --no-install-recommends pgbouncer   # after apt-get update if that fails

PgBouncer refuses to run as root, so it runs as the ``postgres`` user then.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
from migration_fixtures import make_alembic, query, revisions_in
from procs import base_env, http_get, running, wait_for

from supervisor.database.pgcluster import free_port
from supervisor.migrations import lock

# Installing the package can take a while on a fresh machine (apt-get update first).
pytestmark = pytest.mark.timeout(600)

INSTALL = ["apt-get", "install", "-y", "--no-install-recommends", "pgbouncer"]


def _binary() -> str | None:
    found = shutil.which("pgbouncer")
    if found:
        return found
    return "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None


def _apt(*cmd: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(list(cmd), env=env, capture_output=True, text=True, timeout=400, check=False)


@pytest.fixture(scope="session")
def pgbouncer_binary() -> str:
    """The pgbouncer executable, installed with apt-get when missing and we are root; else skip."""
    found = _binary()
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("pgbouncer is not installed; as root: " + " ".join(INSTALL))
    result = _apt(*INSTALL)
    if result.returncode != 0:
        _apt("apt-get", "update")
        result = _apt(*INSTALL)
    found = _binary()
    if not found:
        pytest.skip(f"could not install pgbouncer ({' '.join(INSTALL)}): {result.stderr.strip()[-500:]}")
    return found


@dataclass
class Bouncer:
    """A running PgBouncer in transaction mode in front of one PostgreSQL server."""

    port: int
    user: str
    password: str

    def pooled(self, direct_url: str) -> str:
        """``direct_url`` with PgBouncer's port instead of PostgreSQL's (same user, password, database)."""
        parts = urlsplit(direct_url)
        netloc = parts.netloc.rsplit("@", 1)[0] + f"@127.0.0.1:{self.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))

    def show(self, what: str) -> list[dict[str, Any]]:
        """A ``SHOW`` command on PgBouncer's admin console, rows as dicts."""
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, dbname="pgbouncer", user=self.user,
                                password=self.password, connect_timeout=5)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f"SHOW {what}")
                names = [d[0] for d in cur.description]
                return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            conn.close()

    def server_pids(self, database: str) -> set[int]:
        """PostgreSQL backend pids of PgBouncer's server connections to ``database``."""
        return {int(row["remote_pid"]) for row in self.show("SERVERS") if row["database"] == database}


def _write_config(base: Path, server: Any, port: int, user: str, password: str) -> Path:
    (base / "userlist.txt").write_text(f'"{user}" "{password}"\n')
    ini = base / "pgbouncer.ini"
    ini.write_text(
        "[databases]\n"
        f"* = host={server.hostname or '127.0.0.1'} port={server.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = scram-sha-256\nauth_file = {base / 'userlist.txt'}\n"
        "pool_mode = transaction\nmax_client_conn = 200\ndefault_pool_size = 20\n"
        f"admin_users = {user}\n"
        # The server's engine sends `options` for its timeouts when configured.
        "ignore_startup_parameters = extra_float_digits,options\n"
        f"logfile = {base / 'pgbouncer.log'}\npidfile = {base / 'pgbouncer.pid'}\n"
    )
    return ini


@pytest.fixture
def bouncer(pgbouncer_binary: str, app_db: str) -> Iterator[Bouncer]:
    """PgBouncer (transaction mode) in front of the test's PostgreSQL, as the app's role."""
    server = urlsplit(app_db)
    user, password = server.username or "", server.password or ""
    base = Path(tempfile.mkdtemp(prefix="jarlpm-pgbouncer-"))
    port = free_port()
    ini = _write_config(base, server, port, user, password)
    cmd = [pgbouncer_binary, str(ini)]
    if os.geteuid() == 0:
        # "PgBouncer should not run as root": run it as postgres, owner of its directory.
        shutil.chown(base, "postgres")
        for path in base.iterdir():
            shutil.chown(path, "postgres")
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    found = Bouncer(port, user, password)
    try:
        wait_for(lambda: _answers(found, proc, base), 20, "PgBouncer to accept connections")
        yield found
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        shutil.rmtree(base, ignore_errors=True)


def _answers(bouncer: Bouncer, proc: subprocess.Popen[bytes], base: Path) -> bool:
    if proc.poll() is not None:
        log = (base / "pgbouncer.log").read_text() if (base / "pgbouncer.log").exists() else ""
        raise AssertionError(f"pgbouncer exited ({proc.returncode}): {log[-2000:]}")
    try:
        bouncer.show("VERSION")
    except psycopg2.OperationalError:
        return False
    return True


def _in_migration(url: str) -> tuple[int, int] | None:
    """(lock holder pid, migrating pid) while the slow fixture revision runs."""
    holder = query(url, "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s"
                        " AND objid = %s", *lock.LOCK_KEYS)
    sleeping = query(url, "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                          " AND state = 'active' AND query ILIKE '%pg_sleep%' AND pid <> pg_backend_pid()")
    if holder and sleeping:
        return int(holder[0][0]), int(sleeping[0][0])  # type: ignore[call-overload]
    return None


class TestPgBouncer:
    """DATABASE_URL at PgBouncer (transaction mode), DATABASE_DIRECT_URL at PostgreSQL."""

    def test_migrations_and_lock_go_direct_and_the_server_through_the_pool(
        self, app_db: str, bouncer: Bouncer, tmp_path: Path
    ) -> None:
        """The lock and the migration are not PgBouncer server connections; the API's queries are."""
        database = urlsplit(app_db).path.lstrip("/")
        ini = make_alembic(tmp_path, "x_sleeps")
        env = base_env(bouncer.pooled(app_db), DATABASE_DIRECT_URL=app_db, JARLPM_ALEMBIC_INI=str(ini),
                       TEST_MIGRATION_SLEEP="1.5")
        with running(env) as sup:
            lock_pid, migrating_pid = wait_for(lambda: _in_migration(app_db), 60, "the migration to run")
            pooled_backends = bouncer.server_pids(database)
            assert lock_pid not in pooled_backends and migrating_pid not in pooled_backends
            sup.wait_event("supervisor.ready", timeout=60)
            status, _, body = http_get(sup.port, "/api/epics", method="POST",
                                       body=json.dumps({"title": "Through the pool"}).encode())
            assert status == 201, body
            epic = json.loads(body)["id"]
            assert http_get(sup.port, f"/api/epics/{epic}")[0] == 200
            assert http_get(sup.port, "/api/health/ready")[0] == 200
            clients = [c for c in bouncer.show("CLIENTS") if c["database"] == database]
            assert any(str(c["application_name"]).startswith("jarlpm-server") for c in clients), clients
            backends = {int(r[0]) for r in query(  # type: ignore[call-overload]
                app_db, "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                        " AND pid <> pg_backend_pid()")}
            assert backends and backends <= bouncer.server_pids(database), "nothing else connects directly"
        assert revisions_in(app_db) == {"x_sleeps"}
        assert any(int(row["total_xact_count"]) > 0 for row in bouncer.show("STATS")
                   if row["database"] == database)

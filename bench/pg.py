"""The bench's PostgreSQL: a throwaway cluster it starts itself (or a server it is given).

Databases are cloned from templates (``CREATE DATABASE ... TEMPLATE``), so every
run starts from the same schema in a few milliseconds instead of re-migrating.
Every database is owned by a non-superuser role, as in production.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2

from bench.paths import BIN, PYTHON, REPO
from supervisor.database.pgcluster import LocalPostgres

APP_ROLE_PREFIX = "jarlpm_bench_"


def _with_credentials(url: str, dbname: str, user: str | None = None, password: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if user is not None:
        netloc = f"{user}:{password}@{netloc.rsplit('@', 1)[-1]}"
    return urlunsplit((parts.scheme, netloc, "/" + dbname, parts.query, ""))


class BenchDatabase:
    """A PostgreSQL server for the bench, its app role, and template databases."""

    def __init__(self, admin_url: str | None = None) -> None:
        self._given_url = admin_url
        self.cluster: LocalPostgres | None = None
        self.admin_url = admin_url or ""
        self.app_password = secrets.token_hex(8)
        # Unique per run, so two runs sharing a server (the test suite's) cannot collide.
        self.app_role = APP_ROLE_PREFIX + secrets.token_hex(4)
        self.created: list[str] = []
        self._role_created = False

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Start the cluster (unless a server URL was given) and create the app role."""
        if not self._given_url:
            base = Path(tempfile.mkdtemp(prefix="jarlpm-bench-pg-"))
            os.chmod(base, 0o755)  # initdb runs as postgres when we are root
            self.cluster = LocalPostgres(base / "data", max_connections=200)
            self.cluster.init()
            self.cluster.start()
            self.admin_url = self.cluster.url()
        self.execute(f"CREATE ROLE {self.app_role} LOGIN PASSWORD '{self.app_password}'")
        self._role_created = True

    def close(self) -> None:
        for name in reversed(self.created):
            with contextlib.suppress(psycopg2.Error):
                self.drop(name)
        if self._role_created and self.cluster is None:
            with contextlib.suppress(psycopg2.Error):
                self.execute(f"DROP ROLE IF EXISTS {self.app_role}")
        if self.cluster is not None:
            self.cluster.destroy()
            with contextlib.suppress(OSError):
                self.cluster.datadir.parent.rmdir()

    def version(self) -> str:
        rows = self.execute("SHOW server_version")
        return str(rows[0][0]) if rows else "?"

    # -- SQL ----------------------------------------------------------------------------
    def execute(self, sql: str, dbname: str = "postgres") -> list[tuple[object, ...]]:
        conn = psycopg2.connect(_with_credentials(self.admin_url, dbname), connect_timeout=10)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall()) if cur.description else []
        finally:
            conn.close()

    def app_url(self, dbname: str) -> str:
        return _with_credentials(self.admin_url, dbname, self.app_role, self.app_password)

    # -- databases ----------------------------------------------------------------------
    def template_at_head(self, seed_epics: int = 0) -> str:
        """Create a template, migrate it to head with the ``alembic`` CLI, seed some epics; its name."""
        name = "bench_template_" + secrets.token_hex(4)
        self.execute(f'CREATE DATABASE "{name}" OWNER {self.app_role}')
        self.created.append(name)
        env = {"PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}", "HOME": os.environ.get("HOME", "/"),
               "DATABASE_URL": self.app_url(name)}
        result = subprocess.run([str(BIN / "alembic"), "-c", str(REPO / "alembic.ini"), "upgrade", "head"],
                                cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"alembic upgrade head failed for the template: {result.stderr[-2000:]}")
        if seed_epics:
            self.execute("INSERT INTO epics (title, description) SELECT 'epic ' || g, 'seeded by the bench' "
                         f"FROM generate_series(1, {int(seed_epics)}) AS g", dbname=name)
        return name

    def verified_copy(self, template: str) -> str:
        """A copy of ``template`` as an earlier start of the supervisor leaves it: stamped, models verified.

        ``jarlpm migrate upgrade`` (to head) runs the migrate phase's full path without a
        server: it stamps the database and records the models as verified (``jarlpm
        check`` is read-only and would leave it as it was).  A restart of the
        same release finds this (and skips the model comparison); the first start on a
        database that plain ``alembic`` migrated does not.
        """
        name = "bench_verified_" + secrets.token_hex(4)
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" OWNER {self.app_role}')
        self.created.append(name)
        with tempfile.TemporaryDirectory(prefix="jarlpm-bench-check-") as state:
            env = {"PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}", "HOME": os.environ.get("HOME", "/"),
                   "DATABASE_URL": self.app_url(name), "PYTHONPATH": str(REPO), "JARLPM_STATE_DIR": state,
                   "LOG_FORMAT": "json"}
            result = subprocess.run([str(PYTHON), "-m", "supervisor", "migrate", "upgrade"], cwd=REPO, env=env,
                                    capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"jarlpm migrate upgrade failed for the verified template: {result.stderr[-2000:]}")
        return name

    def fresh(self, template: str) -> tuple[str, str]:
        """A new database cloned from ``template``; returns (name, app URL)."""
        name = "bench_" + secrets.token_hex(5)
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" OWNER {self.app_role}')
        return name, self.app_url(name)

    def drop(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

"""Throwaway PostgreSQL for the tests: a cluster the run starts itself, or ``TEST_DATABASE_URL``."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2

from supervisor.database import pgguard
from supervisor.database.pgcluster import LocalPostgres

APP_ROLE = "jarlpm_app"
APP_PASSWORD = "s3cret-app-pw"


@contextlib.contextmanager
def throwaway_cluster(**kwargs: object) -> Iterator[LocalPostgres]:
    """A cluster started in a fresh directory under /tmp (traversable by postgres), destroyed after.

    A guard stops it even when the test run itself is killed (SIGKILL, a CI timeout),
    so no PostgreSQL outlives the run.
    """
    base = Path(tempfile.mkdtemp(prefix="jarlpm-test-pg-"))
    os.chmod(base, 0o755)
    cluster = LocalPostgres(base / "data", **kwargs)  # type: ignore[arg-type]
    guard = None
    try:
        cluster.init()
        cluster.start()
        guard = pgguard.watch(cluster)
        yield cluster
    finally:
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)
        if guard is not None:
            assert guard.stdin is not None
            guard.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                guard.wait(10)


class ExternalPostgres:
    """An existing server named by TEST_DATABASE_URL (a superuser or CREATEDB/CREATEROLE role)."""

    def __init__(self, url: str) -> None:
        self.admin_url = url

    def url(self, dbname: str = "postgres", user: str | None = None, password: str | None = None) -> str:
        parts = urlsplit(self.admin_url)
        netloc = parts.netloc
        if user is not None:
            host = netloc.rsplit("@", 1)[-1]
            netloc = f"{user}:{password}@{host}"
        return urlunsplit((parts.scheme, netloc, "/" + dbname, parts.query, ""))

    def execute(self, sql: str, dbname: str | None = None, autocommit: bool = True) -> list[tuple[object, ...]]:
        conn = psycopg2.connect(self.admin_url if dbname is None else self.url(dbname), connect_timeout=10)
        try:
            conn.autocommit = autocommit
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def create_database(self, name: str, owner: str | None = None, owner_password: str | None = None) -> str:
        if owner and not self.execute(f"SELECT 1 FROM pg_roles WHERE rolname = '{owner}'"):
            self.execute(f"CREATE ROLE {owner} LOGIN PASSWORD '{owner_password}'")
        self.execute(f'CREATE DATABASE "{name}"' + (f' OWNER "{owner}"' if owner else ""))
        return self.url(name, user=owner, password=owner_password) if owner else self.url(name)


def new_app_database(server: LocalPostgres | ExternalPostgres) -> tuple[str, str]:
    """Create an empty database owned by the (non-superuser) app role; return (name, url)."""
    name = "t_" + secrets.token_hex(6)
    url = server.create_database(name, owner=APP_ROLE, owner_password=APP_PASSWORD)
    return name, url


def drop_database(server: LocalPostgres | ExternalPostgres, name: str) -> None:
    server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

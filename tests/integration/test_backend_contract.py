"""The backend without the supervisor (plain uvicorn) keeps the supervisor's contract.

Under ``uvicorn server:app --app-dir backend`` nobody validated the environment
first and nobody redacts the output: the backend reads its variables by the
contract's rules (``supervisor.contract.envread``) and redacts with its URL rules
(``supervisor.contract.dburl``).  Real uvicorn processes; the server's real log
formatter (``supervisor.server.serverlog``) for what a server process writes.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from jarlpm.app import create_app
from jarlpm.settings import Settings
from procs import REPO

from supervisor.contract import dburl
from supervisor.contract.config import ConfigError, load_settings
from supervisor.database.pgcluster import free_port
from supervisor.server.serverlog import JsonLineFormatter

BACKEND_VARIABLES = ("DATABASE_URL", "DATABASE_URL_FILE", "DATABASE_DIRECT_URL", "DATABASE_DIRECT_URL_FILE",
                     "DB_POOL_SIZE", "DB_MAX_OVERFLOW", "DB_POOL_TIMEOUT", "DB_POOL_RECYCLE", "DB_STATEMENT_TIMEOUT",
                     "DB_IDLE_IN_TRANSACTION_TIMEOUT", "DB_LEAK_THRESHOLD", "WORKERS", "JARLPM_ENV")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The developer's environment must not leak in; registered secrets are restored afterwards."""
    for name in BACKEND_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    saved = set(dburl._secrets)
    yield
    dburl._secrets.clear()
    dburl._secrets.update(saved)


def plain_uvicorn(**env: str) -> subprocess.CompletedProcess[str]:
    """``uvicorn server:app --app-dir backend`` with ``env``, run until it exits (a failed start exits)."""
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"), **env}
    return subprocess.run(
        [sys.executable, "-m", "uvicorn", "server:app", "--app-dir", "backend", "--host", "127.0.0.1",
         "--port", str(free_port())],
        cwd=REPO, env=clean, capture_output=True, text=True, timeout=60,
    )


def supervisors_words(**env: str) -> list[str]:
    """How ``jarlpm run`` words the problems of ``env`` (the rest of its environment valid)."""
    with pytest.raises(ConfigError) as info:
        load_settings({"DATABASE_URL": "postgresql://app@db/jarlpm", **env}, is_file=lambda _path: True)
    return [str(problem) for problem in info.value.problems]


class TestSameRulesAsTheSupervisor:
    """A value is valid or invalid, in the same words, for the supervisor and for the backend."""

    @pytest.mark.parametrize("env", [
        {"DB_POOL_TIMEOUT": "0.05"},  # the backend once took anything >= 0
        {"DB_POOL_SIZE": "lots"},
        {"DB_MAX_OVERFLOW": "-1"},
        {"DB_POOL_RECYCLE": "1e9"},
        {"DB_STATEMENT_TIMEOUT": "nan"},
        {"DB_LEAK_THRESHOLD": "soon", "WORKERS": "0"},  # the pool options once fell back silently
        {"JARLPM_ENV": "staging"},
    ])
    def test_backend_refuses_what_the_supervisor_refuses(self, env: dict[str, str]) -> None:
        """Settings.from_env raises the supervisor's problems, every one of them, nothing else."""
        with pytest.raises(ConfigError) as info:
            Settings.from_env({"DATABASE_URL": "postgresql://app@db/jarlpm", **env})
        assert [str(problem) for problem in info.value.problems] == supervisors_words(**env)

    def test_defaults_are_the_supervisors(self) -> None:
        """Unset variables take the supervisor's defaults."""
        backend = Settings.from_env({"DATABASE_URL": "postgresql://app@db/jarlpm"})
        supervisor = load_settings({"DATABASE_URL": "postgresql://app@db/jarlpm"}, is_file=lambda _path: True)
        assert (backend.pool_size, backend.max_overflow, backend.pool_timeout_s, backend.pool_recycle_s,
                backend.statement_timeout_s, backend.idle_in_transaction_timeout_s) == (
            supervisor.db_pool_size, supervisor.db_max_overflow, supervisor.db_pool_timeout,
            supervisor.db_pool_recycle, supervisor.db_statement_timeout, supervisor.db_idle_in_transaction_timeout)


class TestPlainUvicorn:
    """``uvicorn server:app --app-dir backend`` refuses a bad environment at start, saying why."""

    def test_invalid_value_stops_the_start_in_the_supervisors_words(self) -> None:
        """DB_POOL_TIMEOUT=0.05: the process exits at start naming the variable, the problem, what is expected."""
        done = plain_uvicorn(DATABASE_URL="postgresql://app:pw@127.0.0.1:1/jarlpm", DB_POOL_TIMEOUT="0.05")
        assert done.returncode != 0
        [words] = supervisors_words(DB_POOL_TIMEOUT="0.05")
        assert words == "DB_POOL_TIMEOUT is 0.05, out of range; expected a number of seconds from 0.1 to 3600"
        assert words in done.stderr

    def test_unencoded_at_in_the_password_stops_the_start_without_a_trace(self) -> None:
        """An '@' in the password is refused, saying how to write it, and the password appears nowhere."""
        done = plain_uvicorn(DATABASE_URL="postgresql://app:hunter@22secret@127.0.0.1:1/jarlpm")
        assert done.returncode != 0
        assert "DATABASE_URL has an '@' that is not percent-encoded" in done.stderr
        assert "%40" in done.stderr
        for trace in ("hunter", "22secret"):
            assert trace not in done.stdout + done.stderr


class CapturedJson(logging.Handler):
    """Every record, formatted as a server process writes it (before any supervisor redacts it)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonLineFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured() -> Iterator[CapturedJson]:
    handler = CapturedJson()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


class TestNoPasswordInTheServersOutput:
    """A server whose database connection fails logs no trace of the URL's password."""

    @pytest.mark.parametrize("password", ["pa/ss-w0rd", "pa#ss-w0rd", "pa?ss-w0rd", "pa@ss-w0rd", "p/a#s?s@w0rd"])
    def test_failed_connections_log_no_password(self, password: str, captured: CapturedJson,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
        """Start, requests and readiness against a closed port: the password (or a piece of it) is never written.

        With "/", "#" or "?" the URL is valid and the connection is refused; with an
        unencoded "@" the start is refused, in words without the password.
        """
        monkeypatch.setenv("DATABASE_URL", f"postgresql://app:{password}@127.0.0.1:{free_port()}/jarlpm")
        monkeypatch.setenv("JARLPM_POOL_INSTRUMENTATION", "0")
        bodies: list[str] = []
        try:
            with TestClient(create_app()) as client:
                for path in ("/api/epics", "/api/health/ready", "/api/health"):
                    bodies.append(client.get(path).text)
        except ConfigError as exc:
            assert "@" in password
            bodies.append(str(exc))
        text = "\n".join(captured.lines + bodies)
        assert captured.lines or bodies
        pieces = [piece for piece in password.replace("/", " ").replace("#", " ").replace("?", " ")
                  .replace("@", " ").split() if len(piece) >= 3]
        for secret in (password, *pieces):
            assert secret not in text, f"{secret!r} appears in the server's output"


class TestWarmPool:
    """Lifespan startup opens the pool's connections in parallel and returns them all to the pool."""

    def test_connections_are_opened_in_parallel_and_returned(self, app_db: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
        """Five connections, opened by more than one thread, all checked in afterwards."""
        import threading

        from jarlpm.db import create_db_engine, warm_pool
        from sqlalchemy import event

        monkeypatch.setenv("DATABASE_URL", app_db)
        monkeypatch.setenv("DB_POOL_SIZE", "5")
        engine = create_db_engine(Settings.from_env())
        threads: set[str] = set()
        event.listen(engine, "connect", lambda *_: threads.add(threading.current_thread().name))
        try:
            assert warm_pool(engine, 5) == 5
            assert engine.pool.checkedin() == 5  # type: ignore[attr-defined]
            assert len(threads) > 1
            assert threading.current_thread().name not in threads
        finally:
            engine.dispose()

    def test_an_unreachable_database_is_logged_not_raised(self, monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
        """Nothing listens: 0 opened, one db.pool.warm_failed, and the start goes on."""
        from jarlpm.db import create_db_engine, warm_pool

        monkeypatch.setenv("DATABASE_URL", f"postgresql://u:secretpw@127.0.0.1:{free_port()}/x")
        engine = create_db_engine(Settings.from_env())
        try:
            with caplog.at_level(logging.INFO, logger="jarlpm.db"):
                assert warm_pool(engine, 3) == 0
            failures = [r for r in caplog.records if r.getMessage() == "db.pool.warm_failed"]
            assert len(failures) == 1
            assert failures[0].wanted == 3  # type: ignore[attr-defined]
            assert "secretpw" not in failures[0].error  # type: ignore[attr-defined]
        finally:
            engine.dispose()

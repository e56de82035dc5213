"""The JarlPM HTTP API on a real PostgreSQL: resources, stage rule, health, database failures."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic.config import Config
from fastapi import FastAPI
from fastapi.testclient import TestClient
from jarlpm.app import create_app
from jarlpm.db import connect_args
from jarlpm.runtime import Runtime
from jarlpm.settings import Settings, SettingsError
from jarlpm.stages import Stage
from pgfixtures import new_app_database  # type: ignore[import-not-found]

from alembic import command
from supervisor.contract import dburl
from supervisor.database.pgcluster import LocalPostgres, free_port

REPO = Path(__file__).resolve().parents[2]
STAGES = [stage.value for stage in Stage]
ENV_VARIABLES = (
    "DATABASE_URL",
    "DATABASE_URL_FILE",
    "DATABASE_DIRECT_URL",
    "DATABASE_DIRECT_URL_FILE",
    "DB_POOL_SIZE",
    "DB_MAX_OVERFLOW",
    "DB_POOL_TIMEOUT",
    "DB_POOL_RECYCLE",
    "DB_STATEMENT_TIMEOUT",
    "DB_IDLE_IN_TRANSACTION_TIMEOUT",
    "JARLPM_ALEMBIC_INI",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets the variables it needs; the developer's environment must not leak in."""
    for name in ENV_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def migrate(url: str, revision: str = "head") -> None:
    config = Config(str(REPO / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", dburl.normalise(url).replace("%", "%%"))
    command.upgrade(config, revision)


def closed_port_url() -> str:
    """A URL nobody listens on: connections are refused at once."""
    return f"postgresql://jarlpm_app:pw@127.0.0.1:{free_port()}/nowhere"


def runtime_of(client: TestClient) -> Runtime:
    app: FastAPI = client.app  # type: ignore[assignment]
    runtime: Runtime = app.state.runtime
    return runtime


@pytest.fixture
def migrated_db(app_db: str) -> str:
    """A fresh database migrated to head."""
    migrate(app_db)
    return app_db


@pytest.fixture
def start_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., TestClient]]:
    """Start an app (lifespan included) with the given environment; stopped on teardown."""
    started: list[TestClient] = []

    def start(**env: str) -> TestClient:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        client = TestClient(create_app())
        client.__enter__()
        started.append(client)
        return client

    yield start
    for client in reversed(started):
        client.__exit__(None, None, None)


@pytest.fixture
def client(migrated_db: str, start_app: Callable[..., TestClient]) -> TestClient:
    """An app on a migrated database."""
    return start_app(DATABASE_URL=migrated_db)


def create_epic(client: TestClient, **fields: Any) -> dict[str, Any]:
    response = client.post("/api/epics", json={"title": "Onboarding", **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def create_feature(client: TestClient, epic_id: int, **fields: Any) -> dict[str, Any]:
    response = client.post(f"/api/epics/{epic_id}/features", json={"title": "Sign-up", **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


STORY = {
    "title": "Sign up with email",
    "as_a": "new user",
    "i_want": "to sign up with my email address",
    "so_that": "I can start without a social account",
}


def create_story(client: TestClient, feature_id: int, **fields: Any) -> dict[str, Any]:
    response = client.post(f"/api/features/{feature_id}/stories", json={**STORY, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


CONTENT = {
    "problem_statement": "New users drop out of sign-up",
    "desired_outcome": "Most new users finish sign-up",
    "description": "A one-page sign-up",
}


def advance_to(client: TestClient, epic_id: int, target: Stage) -> None:
    """Fill in the content the stages confirm, then move the epic up to ``target`` one stage at a time."""
    response = client.patch(f"/api/epics/{epic_id}", json=CONTENT)
    assert response.status_code == 200, response.text
    for stage in STAGES[1 : STAGES.index(target.value) + 1]:
        response = client.put(f"/api/epics/{epic_id}/stage", json={"stage": stage})
        assert response.status_code == 200, response.text


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0


class TestHealth:
    """``GET /api/health`` answers from the process alone."""

    def test_healthy_without_database_configured(self, start_app: Callable[..., TestClient]) -> None:
        """Answers 200 healthy when no database is configured at all."""
        client = start_app()
        response = client.get("/api/health")
        assert response.status_code == 200
        assert response.json() == {"status": "healthy", "service": "jarlpm"}

    def test_healthy_while_database_unreachable(self, start_app: Callable[..., TestClient]) -> None:
        """Answers 200 healthy while DATABASE_URL points at a closed port."""
        client = start_app(DATABASE_URL=closed_port_url())
        response = client.get("/api/health")
        assert response.status_code == 200
        assert response.json() == {"status": "healthy", "service": "jarlpm"}


class TestReadiness:
    """``GET /api/health/ready`` is 200 only when the database answers at the head revision."""

    def test_ready_at_head(self, client: TestClient) -> None:
        """Reports ready once the migrations ran, without naming the revision (anonymous clients)."""
        response = client.get("/api/health/ready")
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "ready", "service": "jarlpm", "schema": "at_head"}

    def test_unready_before_migrations(self, app_db: str, start_app: Callable[..., TestClient]) -> None:
        """Answers 503 with a reason before the migrations ran."""
        client = start_app(DATABASE_URL=app_db)
        response = client.get("/api/health/ready")
        assert response.status_code == 503
        assert response.json()["reason"] == "schema not at the code's head"

    def test_unready_behind_head(self, app_db: str, start_app: Callable[..., TestClient]) -> None:
        """Answers 503 when the database is at an older revision than the code."""
        migrate(app_db, "0002_features")
        client = start_app(DATABASE_URL=app_db)
        response = client.get("/api/health/ready")
        assert response.status_code == 503
        assert response.json()["reason"] == "schema not at the code's head"
        assert "0002_features" not in response.text

    def test_ready_when_database_ahead(self, migrated_db: str, start_app: Callable[..., TestClient]) -> None:
        """Stays ready when the database is at a revision newer than the code (a rolling deploy)."""
        engine = sa.create_engine(dburl.normalise(migrated_db))
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = '0099_future'"))
        engine.dispose()
        client = start_app(DATABASE_URL=migrated_db)
        response = client.get("/api/health/ready")
        assert response.status_code == 200, response.text
        assert response.json()["schema"] == "ahead"

    def test_unready_while_database_unreachable(self, start_app: Callable[..., TestClient]) -> None:
        """Answers 503 when the database does not answer."""
        url = closed_port_url()
        client = start_app(DATABASE_URL=url)
        response = client.get("/api/health/ready")
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "service": "jarlpm", "reason": "database unavailable"}

    def test_tells_an_anonymous_client_no_detail(self, start_app: Callable[..., TestClient],
                                                 caplog: pytest.LogCaptureFixture) -> None:
        """No host, port, user or path in the answer; the detail goes to the log, once per change."""
        url = closed_port_url()
        parts = dburl.parse(url)
        client = start_app(DATABASE_URL=url)
        with caplog.at_level("WARNING", logger="jarlpm.api"):
            bodies = [client.get("/api/health/ready").text for _ in range(3)]
        for body in bodies:
            assert str(parts.port) not in body and (parts.user or "") not in body and "127.0.0.1" not in body
        details = [r for r in caplog.records if r.getMessage() == "db.not_ready"]
        assert len(details) == 1 and str(parts.port) in details[0].detail  # type: ignore[attr-defined]

    def test_deadline_when_database_hangs(self, migrated_db: str) -> None:
        """Answers 503 within its deadline while a lock keeps the database from answering."""
        settings = Settings(database_url=dburl.normalise(migrated_db), ready_timeout_s=0.5)
        holder = sa.create_engine(dburl.normalise(migrated_db))
        with TestClient(create_app(settings)) as client, holder.connect() as connection:
            connection.execute(sa.text("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE"))
            started = time.monotonic()
            response = client.get("/api/health/ready")
            elapsed = time.monotonic() - started
            connection.rollback()
            assert response.status_code == 503
            assert elapsed < 2.5
            assert client.get("/api/health/ready").status_code == 200
        holder.dispose()

    def test_unready_without_database(self, start_app: Callable[..., TestClient]) -> None:
        """Answers 503 naming DATABASE_URL when none is configured."""
        response = start_app().get("/api/health/ready")
        assert response.status_code == 503
        assert response.json()["reason"] == "no database configured"

    def test_unready_without_migration_scripts(
        self, migrated_db: str, start_app: Callable[..., TestClient], tmp_path: Path
    ) -> None:
        """Answers 503 when JARLPM_ALEMBIC_INI names a missing file."""
        missing = str(tmp_path / "alembic.ini")
        client = start_app(DATABASE_URL=migrated_db, JARLPM_ALEMBIC_INI=missing)
        response = client.get("/api/health/ready")
        assert response.status_code == 503
        assert response.json()["reason"] == "migrations unavailable"
        assert str(tmp_path) not in response.text

    def test_unready_with_unreadable_migration_scripts(
        self, migrated_db: str, start_app: Callable[..., TestClient], tmp_path: Path
    ) -> None:
        """Answers 503 when Alembic cannot read the scripts (a script_location that does not exist)."""
        ini = tmp_path / "alembic.ini"
        ini.write_text(f"[alembic]\nscript_location = {tmp_path / 'nowhere'}\n")
        client = start_app(DATABASE_URL=migrated_db, JARLPM_ALEMBIC_INI=str(ini))
        response = client.get("/api/health/ready")
        assert response.status_code == 503
        assert response.json()["reason"] == "migrations unavailable"
        assert str(tmp_path) not in response.text

    def test_unready_once_stopping(self, client: TestClient) -> None:
        """Answers 503 as soon as shutdown begins, while requests drain."""
        runtime_of(client).stopping.set()
        response = client.get("/api/health/ready")
        assert response.status_code == 503
        assert response.json()["reason"] == "stopping"


class TestDatabaseUnavailable:
    """Requests needing the database get 503 + Retry-After, never 500, and recover by themselves."""

    def test_unreachable(self, start_app: Callable[..., TestClient]) -> None:
        """Answers 503 with Retry-After while the database refuses connections."""
        client = start_app(DATABASE_URL=closed_port_url())
        assert_unavailable(client.get("/api/epics"))
        assert_unavailable(client.post("/api/epics", json={"title": "x"}))

    def test_not_configured(self, start_app: Callable[..., TestClient]) -> None:
        """Answers 503 with Retry-After when no database is configured."""
        assert_unavailable(start_app().get("/api/epics/1"))

    def test_pool_exhausted(self, migrated_db: str, start_app: Callable[..., TestClient]) -> None:
        """Answers 503 + Retry-After when no pooled connection frees up within DB_POOL_TIMEOUT."""
        client = start_app(DATABASE_URL=migrated_db, DB_POOL_SIZE="1", DB_MAX_OVERFLOW="0", DB_POOL_TIMEOUT="0.2")
        engine = runtime_of(client).engine
        assert engine is not None
        with engine.connect():
            response = client.get("/api/epics")
            assert_unavailable(response)
            assert "no database connection free" in response.json()["detail"]
        assert client.get("/api/epics").status_code == 200

    def test_recovers_when_database_returns(
        self, own_cluster: LocalPostgres, start_app: Callable[..., TestClient]
    ) -> None:
        """Answers 503 while the database is down and 200 again once it is back, with no restart."""
        _, url = new_app_database(own_cluster)
        migrate(url)
        client = start_app(DATABASE_URL=url)
        assert client.get("/api/epics").status_code == 200
        own_cluster.stop(mode="fast")
        assert_unavailable(client.get("/api/epics"))
        assert client.get("/api/health/ready").status_code == 503
        own_cluster.start()
        deadline = time.monotonic() + 15
        while client.get("/api/epics").status_code != 200:
            assert time.monotonic() < deadline, "API did not recover after the database returned"
            time.sleep(0.1)
        assert client.get("/api/health/ready").status_code == 200


class TestEngine:
    """The server's engine: pool settings, timeouts, names and URLs from the environment."""

    def test_connection_settings(self, migrated_db: str, start_app: Callable[..., TestClient]) -> None:
        """Names connections jarlpm-server:<pid> and applies the statement and idle timeouts."""
        client = start_app(
            DATABASE_URL=migrated_db,
            DB_STATEMENT_TIMEOUT="1.5",
            DB_IDLE_IN_TRANSACTION_TIMEOUT="2",
        )
        engine = runtime_of(client).engine
        assert engine is not None
        with engine.connect() as connection:
            shown = {
                name: connection.execute(sa.text(f"SHOW {name}")).scalar_one()
                for name in (
                    "application_name",
                    "statement_timeout",
                    "idle_in_transaction_session_timeout",
                )
            }
        assert shown == {
            "application_name": f"jarlpm-server:{os.getpid()}",
            "statement_timeout": "1500ms",
            "idle_in_transaction_session_timeout": "2s",
        }

    def test_timeouts_off_by_default(self, client: TestClient) -> None:
        """Leaves the server's timeouts alone when the variables are unset (0 = off)."""
        engine = runtime_of(client).engine
        assert engine is not None
        with engine.connect() as connection:
            assert connection.execute(sa.text("SHOW statement_timeout")).scalar_one() == "0"

    def test_pool_settings_and_warmup(self, migrated_db: str, start_app: Callable[..., TestClient]) -> None:
        """Sizes the pool from DB_POOL_SIZE/DB_MAX_OVERFLOW and opens DB_POOL_SIZE at start."""
        client = start_app(DATABASE_URL=migrated_db, DB_POOL_SIZE="3", DB_MAX_OVERFLOW="4")
        engine = runtime_of(client).engine
        assert engine is not None
        pool: Any = engine.pool
        assert (pool.size(), pool._max_overflow) == (3, 4)
        assert pool.checkedin() == 3
        with engine.connect() as connection:
            count = connection.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = :name"
                ),
                {"name": f"jarlpm-server:{os.getpid()}"},
            ).scalar_one()
        assert count == 3

    def test_url_from_file(self, migrated_db: str, start_app: Callable[..., TestClient], tmp_path: Path) -> None:
        """Reads the URL from DATABASE_URL_FILE (a container secret)."""
        secret = tmp_path / "url"
        secret.write_text(migrated_db + "\n")
        client = start_app(DATABASE_URL_FILE=str(secret))
        assert client.get("/api/epics").status_code == 200

    def test_sessions_closed_on_every_path(self, client: TestClient) -> None:
        """Returns every connection to the pool after each request, errors included."""
        epic = create_epic(client)
        client.get("/api/epics/999")  # 404
        client.put(f"/api/epics/{epic['id']}/stage", json={"stage": "epic_locked"})  # 409
        client.post("/api/epics", json={"title": ""})  # 422
        client.get("/api/epics")
        engine = runtime_of(client).engine
        assert engine is not None
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


class TestSettings:
    """Reading the environment: defaults when absent, a clear error when malformed."""

    def test_defaults(self) -> None:
        """Uses the documented defaults when nothing is set."""
        settings = Settings.from_env({})
        assert settings.database_url is None
        assert (settings.pool_size, settings.max_overflow) == (5, 10)
        assert (settings.pool_timeout_s, settings.pool_recycle_s) == (30.0, 1800)
        assert settings.statement_timeout_s == settings.idle_in_transaction_timeout_s == 0
        assert settings.alembic_ini == REPO / "alembic.ini"

    def test_malformed_value_names_variable(self) -> None:
        """Raises the contract's ConfigError, in the supervisor's words: variable, problem, expected."""
        with pytest.raises(SettingsError, match="DB_POOL_SIZE is 'lots', which is not a whole number; "
                                                 "expected a whole number from 1 to 1000"):
            Settings.from_env({"DB_POOL_SIZE": "lots"})
        with pytest.raises(SettingsError, match="DB_MAX_OVERFLOW is -1, out of range"):
            Settings.from_env({"DB_MAX_OVERFLOW": "-1"})

    def test_alembic_ini_override(self) -> None:
        """Takes the alembic.ini path from JARLPM_ALEMBIC_INI."""
        assert Settings.from_env({"JARLPM_ALEMBIC_INI": "/etc/x.ini"}).alembic_ini == Path("/etc/x.ini")


class TestDatabaseUrl:
    """URL spellings are mapped to psycopg2 without losing anything (by ``supervisor.contract.dburl``)."""

    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("postgresql://u:p@h:5432/db", "postgresql+psycopg2://u:p@h:5432/db"),
            (
                "postgres://u:p@h/db?sslmode=require",
                "postgresql+psycopg2://u:p@h/db?sslmode=require",
            ),
            ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2://u@h/db"),
            (
                "  postgresql://u:p%40ss@h/db?sslmode=verify-full&sslrootcert=/ca.pem\n",
                "postgresql+psycopg2://u:p%40ss@h/db?sslmode=verify-full&sslrootcert=/ca.pem",
            ),
        ],
    )
    def test_normalise(self, given: str, expected: str) -> None:
        """Maps postgres:// and postgresql:// to psycopg2, keeping credentials and query."""
        assert sa.make_url(Settings.from_env({"DATABASE_URL": given}).database_url or "") == sa.make_url(expected)

    def test_env_then_file(self, tmp_path: Path) -> None:
        """Reads DATABASE_URL, else the file named by DATABASE_URL_FILE, else nothing."""
        secret = tmp_path / "s"
        secret.write_text("postgresql://u@from-file/db\n")
        assert Settings.from_env({"DATABASE_URL": "postgresql://u@direct/db"}).database_url == (
            "postgresql+psycopg2://u@direct/db")
        assert Settings.from_env({"DATABASE_URL_FILE": str(secret)}).database_url == (
            "postgresql+psycopg2://u@from-file/db")
        assert Settings.from_env({}).database_url is None

    def test_options_in_url_survive(self) -> None:
        """Appends the timeouts to ``options`` already in the URL instead of replacing them."""
        url = "postgresql+psycopg2://u@h/db?options=-c%20search_path%3Dapp"
        args = connect_args(Settings(database_url=url, statement_timeout_s=2))
        assert args["options"] == "-c search_path=app -c statement_timeout=2000"


class TestEpics:
    """``/api/epics``: create, read, list, edit, delete."""

    def test_create_and_get(self, client: TestClient) -> None:
        """Creates an epic at the first stage and returns it by id."""
        epic = create_epic(client, description="Make sign-up painless")
        assert epic["stage"] == "problem_capture"
        assert epic["next_stage"] == "problem_confirmed"
        assert epic["description"] == "Make sign-up painless"
        fetched = client.get(f"/api/epics/{epic['id']}")
        assert fetched.status_code == 200
        assert fetched.json() == epic

    def test_list_paginates(self, client: TestClient) -> None:
        """Lists epics oldest first, limit/offset slicing, with the total."""
        ids = [create_epic(client, title=f"Epic {n}")["id"] for n in range(5)]
        page = client.get("/api/epics", params={"limit": 2, "offset": 1}).json()
        assert [item["id"] for item in page["items"]] == ids[1:3]
        assert (page["total"], page["limit"], page["offset"]) == (5, 2, 1)
        assert client.get("/api/epics", params={"offset": 10}).json()["items"] == []

    def test_patch(self, client: TestClient) -> None:
        """Changes only the fields sent, and moves updated_at."""
        epic = create_epic(client, description="old")
        response = client.patch(f"/api/epics/{epic['id']}", json={"title": "  Renamed  "})
        assert response.status_code == 200
        body = response.json()
        assert (body["title"], body["description"]) == ("Renamed", "old")
        assert body["updated_at"] >= epic["updated_at"]
        cleared = client.patch(f"/api/epics/{epic['id']}", json={"problem_statement": None})
        assert cleared.status_code == 200

    def test_delete(self, client: TestClient) -> None:
        """Deletes an epic with 204; it is gone afterwards."""
        epic = create_epic(client)
        assert client.delete(f"/api/epics/{epic['id']}").status_code == 204
        assert client.get(f"/api/epics/{epic['id']}").status_code == 404

    @pytest.mark.parametrize("method", ["get", "patch", "delete"])
    def test_unknown_id(self, client: TestClient, method: str) -> None:
        """Answers 404 naming the epic for an unknown id."""
        kwargs: dict[str, Any] = {"json": {"title": "x"}} if method == "patch" else {}
        response = client.request(method.upper(), "/api/epics/424242", **kwargs)
        assert response.status_code == 404
        assert response.json()["detail"] == "epic 424242 not found"

    @pytest.mark.parametrize(
        "body",
        [
            {"title": ""},
            {"title": "   "},
            {"title": "x" * 201},
            {},
            {"title": "ok", "stage": "epic_locked"},
            {"title": "ok", "unknown": 1},
            {"title": None},
        ],
    )
    def test_create_validation(self, client: TestClient, body: dict[str, Any]) -> None:
        """Refuses an empty, blank, too long or missing title, a stage, unknown fields: 422."""
        assert client.post("/api/epics", json=body).status_code == 422

    def test_patch_validation(self, client: TestClient) -> None:
        """Refuses null for a required field and an unknown stage with 422."""
        epic = create_epic(client)
        assert client.patch(f"/api/epics/{epic['id']}", json={"title": None}).status_code == 422
        assert client.patch(f"/api/epics/{epic['id']}", json={"stage": "shipped"}).status_code == 422

    @pytest.mark.parametrize("path", ["/api/epics/abc", "/api/epics/0", f"/api/epics/{2**63}"])
    def test_bad_ids(self, client: TestClient, path: str) -> None:
        """Refuses ids that are not positive 64-bit integers with 422, not a database error."""
        assert client.get(path).status_code == 422

    @pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 201}, {"offset": -1}])
    def test_bad_pagination(self, client: TestClient, params: dict[str, int]) -> None:
        """Refuses limit outside 1-200 and a negative offset with 422."""
        assert client.get("/api/epics", params=params).status_code == 422


class TestStageRule:
    """Epics move forward one stage at a time, never backwards, and are frozen once locked."""

    def test_forward_one_step_at_a_time(self, client: TestClient) -> None:
        """Moves an epic through every stage, one step each, up to locked."""
        epic = create_epic(client, **CONTENT)
        for stage in STAGES[1:]:
            response = client.put(f"/api/epics/{epic['id']}/stage", json={"stage": stage})
            assert response.status_code == 200, response.text
            assert response.json()["stage"] == stage
        assert client.get(f"/api/epics/{epic['id']}").json()["next_stage"] is None

    def test_backwards_refused(self, client: TestClient) -> None:
        """Refuses to move an epic backwards with 409."""
        epic = create_epic(client)
        advance_to(client, epic["id"], Stage.OUTCOME_CAPTURE)
        response = client.put(f"/api/epics/{epic['id']}/stage", json={"stage": "problem_confirmed"})
        assert response.status_code == 409
        assert "backwards" in response.json()["detail"]
        assert client.get(f"/api/epics/{epic['id']}").json()["stage"] == "outcome_capture"

    def test_skip_refused(self, client: TestClient) -> None:
        """Refuses to skip a stage with 409, naming the next one."""
        epic = create_epic(client)
        response = client.put(f"/api/epics/{epic['id']}/stage", json={"stage": "outcome_capture"})
        assert response.status_code == 409
        assert "the next stage is problem_confirmed" in response.json()["detail"]

    def test_same_stage_is_a_no_op(self, client: TestClient) -> None:
        """Accepts the current stage as a no-op, so a retried request does not fail."""
        epic = create_epic(client)
        advance_to(client, epic["id"], Stage.PROBLEM_CONFIRMED)
        response = client.put(f"/api/epics/{epic['id']}/stage", json={"stage": "problem_confirmed"})
        assert response.status_code == 200
        assert response.json()["stage"] == "problem_confirmed"

    def test_rule_applies_to_patch(self, client: TestClient) -> None:
        """Applies the same rule to a stage sent with PATCH."""
        epic = create_epic(client, **CONTENT)
        url = f"/api/epics/{epic['id']}"
        assert client.patch(url, json={"stage": "outcome_confirmed"}).status_code == 409
        assert client.patch(url, json={"stage": "problem_confirmed"}).status_code == 200
        assert client.patch(url, json={"stage": "problem_capture"}).status_code == 409

    def test_locked_epic_is_frozen(self, client: TestClient) -> None:
        """Refuses to edit a locked epic's content with 409."""
        epic = create_epic(client)
        advance_to(client, epic["id"], Stage.EPIC_LOCKED)
        response = client.patch(f"/api/epics/{epic['id']}", json={"title": "Changed"})
        assert response.status_code == 409
        assert "locked" in response.json()["detail"]
        unchanged = client.patch(f"/api/epics/{epic['id']}", json={"title": epic["title"]})
        assert unchanged.status_code == 200

    def test_lock_and_edit_together(self, client: TestClient) -> None:
        """Accepts a last edit sent together with the move to locked."""
        epic = create_epic(client)
        advance_to(client, epic["id"], Stage.EPIC_DRAFTED)
        body = {"title": "Final", "stage": "epic_locked"}
        response = client.patch(f"/api/epics/{epic['id']}", json=body)
        assert response.status_code == 200
        assert (response.json()["title"], response.json()["stage"]) == ("Final", "epic_locked")

    def test_unknown_stage(self, client: TestClient) -> None:
        """Refuses an unknown stage with 422."""
        epic = create_epic(client)
        response = client.put(f"/api/epics/{epic['id']}/stage", json={"stage": "done"})
        assert response.status_code == 422

    def test_unknown_epic(self, client: TestClient) -> None:
        """Answers 404 for the stage of an unknown epic."""
        response = client.put("/api/epics/9999/stage", json={"stage": "problem_confirmed"})
        assert response.status_code == 404


class TestFeatures:
    """``/api/epics/{id}/features`` and ``/api/features/{id}``."""

    def test_crud(self, client: TestClient) -> None:
        """Creates, reads, lists, edits and deletes a feature."""
        epic = create_epic(client)
        feature = create_feature(client, epic["id"], priority="must_have")
        assert (feature["epic_id"], feature["priority"], feature["status"]) == (
            epic["id"],
            "must_have",
            "planned",
        )
        assert client.get(f"/api/features/{feature['id']}").json() == feature
        listed = client.get(f"/api/epics/{epic['id']}/features").json()
        assert [item["id"] for item in listed["items"]] == [feature["id"]]
        patched = client.patch(f"/api/features/{feature['id']}", json={"status": "in_progress"})
        assert patched.status_code == 200
        assert patched.json()["status"] == "in_progress"
        assert patched.json()["title"] == feature["title"]
        assert client.delete(f"/api/features/{feature['id']}").status_code == 204
        assert client.get(f"/api/features/{feature['id']}").status_code == 404

    def test_lists_only_the_epics_features(self, client: TestClient) -> None:
        """Lists only the features of the epic asked for."""
        first, second = create_epic(client), create_epic(client)
        create_feature(client, first["id"])
        mine = create_feature(client, second["id"])
        listed = client.get(f"/api/epics/{second['id']}/features").json()
        assert [item["id"] for item in listed["items"]] == [mine["id"]]
        assert listed["total"] == 1

    def test_locked_epic_accepts_features(self, client: TestClient) -> None:
        """Accepts features under a locked epic: locking freezes the epic; then work is sliced."""
        epic = create_epic(client)
        advance_to(client, epic["id"], Stage.EPIC_LOCKED)
        create_feature(client, epic["id"])

    def test_unknown_ids(self, client: TestClient) -> None:
        """Answers 404 for an unknown epic or feature."""
        assert client.get("/api/epics/9999/features").status_code == 404
        assert client.post("/api/epics/9999/features", json={"title": "x"}).status_code == 404
        assert client.get("/api/features/9999").status_code == 404
        assert client.patch("/api/features/9999", json={"title": "x"}).status_code == 404
        assert client.delete("/api/features/9999").status_code == 404

    @pytest.mark.parametrize(
        "body", [{"title": ""}, {"title": "x", "priority": "urgent"}, {"title": "x", "status": "?"}]
    )
    def test_validation(self, client: TestClient, body: dict[str, Any]) -> None:
        """Refuses an empty title and unknown priorities or statuses with 422."""
        epic = create_epic(client)
        assert client.post(f"/api/epics/{epic['id']}/features", json=body).status_code == 422


class TestStories:
    """``/api/features/{id}/stories`` and ``/api/stories/{id}``."""

    def test_crud(self, client: TestClient) -> None:
        """Creates, reads, lists, edits and deletes a user story."""
        feature = create_feature(client, create_epic(client)["id"])
        criteria = ["Given a new email, when I sign up, then I get a confirmation mail"]
        story = create_story(client, feature["id"], acceptance_criteria=criteria, story_points=3)
        assert story["feature_id"] == feature["id"]
        assert (story["as_a"], story["acceptance_criteria"], story["story_points"]) == (
            "new user",
            criteria,
            3,
        )
        assert story["status"] == "draft"
        assert client.get(f"/api/stories/{story['id']}").json() == story
        listed = client.get(f"/api/features/{feature['id']}/stories").json()
        assert [item["id"] for item in listed["items"]] == [story["id"]]
        patched = client.patch(f"/api/stories/{story['id']}", json={"story_points": None})
        assert patched.status_code == 200
        assert patched.json()["story_points"] is None
        assert patched.json()["acceptance_criteria"] == criteria
        assert client.delete(f"/api/stories/{story['id']}").status_code == 204
        assert client.get(f"/api/stories/{story['id']}").status_code == 404

    def test_unknown_ids(self, client: TestClient) -> None:
        """Answers 404 for an unknown feature or story."""
        assert client.get("/api/features/9999/stories").status_code == 404
        assert client.post("/api/features/9999/stories", json=STORY).status_code == 404
        assert client.get("/api/stories/9999").status_code == 404
        assert client.patch("/api/stories/9999", json={"title": "x"}).status_code == 404
        assert client.delete("/api/stories/9999").status_code == 404

    @pytest.mark.parametrize(
        "change",
        [
            {"as_a": ""},
            {"story_points": 101},
            {"story_points": -1},
            {"acceptance_criteria": [""]},
            {"status": "shipped"},
        ],
    )
    def test_validation(self, client: TestClient, change: dict[str, Any]) -> None:
        """Refuses empty story parts, points outside 0-100, blank criteria, bad statuses: 422."""
        feature = create_feature(client, create_epic(client)["id"])
        response = client.post(f"/api/features/{feature['id']}/stories", json={**STORY, **change})
        assert response.status_code == 422

    def test_patch_null_required_field(self, client: TestClient) -> None:
        """Refuses null for a required story field with 422."""
        story = create_story(client, create_feature(client, create_epic(client)["id"])["id"])
        response = client.patch(f"/api/stories/{story['id']}", json={"i_want": None})
        assert response.status_code == 422


class TestCascade:
    """Deleting a parent deletes its children, in the database itself."""

    def test_epic_delete_cascades(self, client: TestClient, migrated_db: str) -> None:
        """Deletes an epic's features and their stories with it."""
        epic = create_epic(client)
        feature = create_feature(client, epic["id"])
        story = create_story(client, feature["id"])
        other = create_story(client, create_feature(client, create_epic(client)["id"])["id"])
        assert client.delete(f"/api/epics/{epic['id']}").status_code == 204
        assert client.get(f"/api/features/{feature['id']}").status_code == 404
        assert client.get(f"/api/stories/{story['id']}").status_code == 404
        assert client.get(f"/api/stories/{other['id']}").status_code == 200

    def test_feature_delete_cascades(self, client: TestClient) -> None:
        """Deletes a feature's stories with it, and leaves its epic alone."""
        epic = create_epic(client)
        feature = create_feature(client, epic["id"])
        story = create_story(client, feature["id"])
        assert client.delete(f"/api/features/{feature['id']}").status_code == 204
        assert client.get(f"/api/stories/{story['id']}").status_code == 404
        assert client.get(f"/api/epics/{epic['id']}").status_code == 200

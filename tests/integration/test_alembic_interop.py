"""The migrations under the community's tools: pytest-alembic hands ``env.py`` an Engine, not a Connection."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config
from pytest_alembic import MigrationContext
from pytest_alembic.tests import default as builtin
from sqlalchemy.engine import Engine

from alembic import command
from supervisor.contract.dburl import normalise as normalise_database_url

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def alembic_config() -> dict[str, str]:
    """pytest-alembic reads the project's own alembic.ini (and so its env.py)."""
    return {"file": str(REPO / "alembic.ini")}


@pytest.fixture
def alembic_engine(app_db: str) -> Iterator[Engine]:
    """A fresh PostgreSQL database, handed to env.py as an Engine, the way pytest-alembic does."""
    engine = sa.create_engine(normalise_database_url(app_db))
    try:
        yield engine
    finally:
        engine.dispose()


class TestPytestAlembicBuiltins:
    """pytest-alembic's built-in tests pass against the project's migrations on a real PostgreSQL."""

    def test_single_head_revision(self, alembic_runner: MigrationContext) -> None:
        """The history has exactly one head."""
        builtin.test_single_head_revision(alembic_runner)

    def test_upgrade(self, alembic_runner: MigrationContext) -> None:
        """Every revision upgrades from base to head."""
        builtin.test_upgrade(alembic_runner)

    def test_model_definitions_match_ddl(self, alembic_runner: MigrationContext) -> None:
        """The models and the migrated schema agree (autogenerate finds nothing to do)."""
        builtin.test_model_definitions_match_ddl(alembic_runner)

    def test_up_down_consistency(self, alembic_runner: MigrationContext) -> None:
        """Every revision downgrades back to base."""
        builtin.test_up_down_consistency(alembic_runner)


class TestEnvAcceptsEngine:
    """``config.attributes["connection"]`` may be an Engine as well as a Connection."""

    def test_engine_handed_over(self, alembic_engine: Engine) -> None:
        """Migrates through an Engine handed over, commits, and leaves the engine usable."""
        config = Config(str(REPO / "alembic.ini"))
        config.attributes["connection"] = alembic_engine
        command.upgrade(config, "head")
        with alembic_engine.connect() as connection:
            assert connection.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
            assert sa.inspect(connection).has_table("epics")

    def test_connection_handed_over(self, alembic_engine: Engine) -> None:
        """Still migrates on a Connection handed over, the caller committing."""
        config = Config(str(REPO / "alembic.ini"))
        with alembic_engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()
        assert sa.inspect(alembic_engine).has_table("user_stories")

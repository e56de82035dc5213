"""Unit tests: pure logic, no database, no process of ours; global state restored after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from supervisor.contract import dburl


@pytest.fixture(autouse=True)
def _restore_registered_secrets() -> Iterator[None]:
    """Validating a URL registers its password process-wide; each test ends with the set it found."""
    saved = set(dburl._secrets)
    yield
    dburl._secrets.clear()
    dburl._secrets.update(saved)

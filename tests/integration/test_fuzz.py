"""A property-based API fuzzer (schemathesis) against a real uvicorn server on PostgreSQL finds nothing.

Every operation of the OpenAPI document gets generated requests, valid and
invalid; each response must be no 5xx, a status the document lists for that
operation, and a body matching the schema documented for that status.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as fixed_seed
from jarlpm.app import create_app
from pgfixtures import ExternalPostgres, drop_database, new_app_database  # type: ignore[import-not-found]
from schemathesis import BaseSchema, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from served import Served, served  # type: ignore[import-not-found]
from test_api import CONTENT, STORY, migrate  # type: ignore[import-not-found]

from supervisor.database.pgcluster import LocalPostgres

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
]
SEED = 20261204
EXAMPLES = 50


def seed_data(url: str) -> None:
    """A few epics, features and stories with small ids, which the fuzzer's small integers hit."""
    with httpx.Client(base_url=url, timeout=10) as http:
        for n in range(3):
            epic = http.post("/api/epics", json={"title": f"Epic {n}", **CONTENT}).json()
            feature = http.post(f"/api/epics/{epic['id']}/features", json={"title": f"Feature {n}"}).json()
            http.post(f"/api/features/{feature['id']}/stories", json=STORY).raise_for_status()


@pytest.fixture(scope="module")
def fuzzed_server(pg_server: LocalPostgres | ExternalPostgres) -> Iterator[Served]:
    """``uvicorn server:app`` on a migrated database holding a little data, for the module."""
    name, url = new_app_database(pg_server)
    try:
        migrate(url)
        with served(url) as running:
            seed_data(running.url)
            yield running
    finally:
        drop_database(pg_server, name)


@pytest.fixture(scope="module")
def api_schema(fuzzed_server: Served) -> BaseSchema:
    """The OpenAPI document as the running server serves it."""
    return schemathesis.openapi.from_url(f"{fuzzed_server.url}/openapi.json", timeout=10)


def fuzz_targets() -> list[tuple[str, str, GenerationMode]]:
    """(method, path, mode) of every operation, read from the app without serving it (collection time).

    Invalid requests only for operations that take input (an operation without
    parameters or body has no invalid request to generate).
    """
    document = create_app().openapi()
    targets = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            targets.append((method.upper(), path, GenerationMode.POSITIVE))
            if operation.get("parameters") or operation.get("requestBody"):
                targets.append((method.upper(), path, GenerationMode.NEGATIVE))
    return targets


@pytest.mark.slow
class TestFuzzer:
    """schemathesis, with a fixed seed and a bounded number of examples, finds nothing to report."""

    @pytest.mark.parametrize(("method", "path", "mode"), fuzz_targets())
    def test_operation(
        self, api_schema: BaseSchema, fuzzed_server: Served, method: str, path: str, mode: GenerationMode
    ) -> None:
        """Answers generated requests (valid, then invalid) with documented statuses and bodies, never a 5xx."""
        operation = api_schema[path][method]

        @fixed_seed(SEED)
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
        @given(case=operation.as_strategy(generation_mode=mode))
        def fuzz(case: Case) -> None:
            case.call_and_validate(base_url=fuzzed_server.url, checks=CHECKS, timeout=10)

        fuzz()

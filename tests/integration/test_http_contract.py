"""The HTTP contract over real HTTP (uvicorn, PostgreSQL): 422 for unstorable text, 413, ETag/If-Match, rules."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from jarlpm.api.limits import DEFAULT_MAX_BODY_BYTES, max_body_bytes
from jarlpm.settings import SettingsError
from pgfixtures import ExternalPostgres, drop_database, new_app_database  # type: ignore[import-not-found]
from served import Served, served, server_env  # type: ignore[import-not-found]
from test_api import CONTENT, STORY, migrate  # type: ignore[import-not-found]

from supervisor.database.pgcluster import LocalPostgres

BODY_LIMIT = 4096


@pytest.fixture(scope="module")
def server(pg_server: LocalPostgres | ExternalPostgres) -> Iterator[Served]:
    """One uvicorn server for the module, on a migrated database, with a 4 KiB body limit."""
    name, url = new_app_database(pg_server)
    try:
        migrate(url)
        with served(url, MAX_REQUEST_BODY_BYTES=str(BODY_LIMIT)) as running:
            yield running
    finally:
        drop_database(pg_server, name)


@pytest.fixture
def http(server: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def new_epic(http: httpx.Client, **fields: Any) -> dict[str, Any]:
    return created(http.post("/api/epics", json={"title": "Onboarding", **fields}))


def new_feature(http: httpx.Client) -> dict[str, Any]:
    return created(http.post(f"/api/epics/{new_epic(http)['id']}/features", json={"title": "Sign-up"}))


def locked_epic(http: httpx.Client) -> dict[str, Any]:
    epic = new_epic(http, **CONTENT)
    for stage in ("problem_confirmed", "outcome_capture", "outcome_confirmed", "epic_drafted", "epic_locked"):
        assert http.put(f"/api/epics/{epic['id']}/stage", json={"stage": stage}).status_code == 200
    return epic


def error_locations(response: httpx.Response) -> list[list[Any]]:
    assert response.status_code == 422, response.text
    return [error["loc"] for error in response.json()["detail"]]


class TestUnstorableText:
    """Text PostgreSQL cannot store is a 422 naming the field, never a driver error."""

    def test_nul_in_acceptance_criteria(self, http: httpx.Client) -> None:
        """Refuses NUL inside a criterion (a jsonb value) with 422 naming the criterion."""
        feature = new_feature(http)
        body = {**STORY, "acceptance_criteria": ["fine", "bad\u0000"]}
        response = http.post(f"/api/features/{feature['id']}/stories", json=body)
        assert error_locations(response) == [["body", "acceptance_criteria", 1]]
        assert "NUL" in response.json()["detail"][0]["msg"]

    def test_nul_in_text_column(self, http: httpx.Client) -> None:
        """Refuses NUL in a text column, on create and on edit."""
        assert error_locations(http.post("/api/epics", json={"title": "a\u0000b"})) == [["body", "title"]]
        epic = new_epic(http)
        response = http.patch(f"/api/epics/{epic['id']}", json={"problem_statement": "\u0000"})
        assert error_locations(response) == [["body", "problem_statement"]]

    def test_lone_surrogate(self, http: httpx.Client) -> None:
        """Refuses a lone surrogate (a JSON \\ud800 escape) with 422 naming the field, in a readable body."""
        for field in ("title", "description"):
            raw = b'{"title": "ok", "%s": "half \\ud800 a pair"}' % field.encode()
            response = http.post("/api/epics", content=raw, headers={"Content-Type": "application/json"})
            assert error_locations(response) == [["body", field]]

    def test_unicode_is_stored(self, http: httpx.Client) -> None:
        """Stores any other Unicode unchanged, astral planes included."""
        epic = new_epic(http, title="Ünïcødé 🚀", description="日本語")
        assert http.get(f"/api/epics/{epic['id']}").json()["title"] == "Ünïcødé 🚀"


class TestBodyLimit:
    """A body over MAX_REQUEST_BODY_BYTES is refused with 413 before it is read into memory."""

    def test_declared_length_over_limit(self, http: httpx.Client) -> None:
        """Answers 413 from Content-Length alone, naming the limit."""
        response = http.post("/api/epics", json={"title": "x", "description": "d" * BODY_LIMIT})
        assert response.status_code == 413
        assert response.json() == {"detail": f"request body too large: the limit is {BODY_LIMIT} bytes"}

    def test_chunked_body_over_limit(self, http: httpx.Client) -> None:
        """Counts a chunked body (no Content-Length) as it streams in, and answers 413."""

        def chunks() -> Iterator[bytes]:
            yield b'{"title": "x", "description": "'
            for _ in range(8):
                yield b"d" * 1024
            yield b'"}'

        response = http.post("/api/epics", content=chunks(), headers={"Content-Type": "application/json"})
        assert response.status_code == 413, response.text
        assert "the limit is 4096 bytes" in response.json()["detail"]

    def test_chunked_body_under_limit(self, http: httpx.Client) -> None:
        """Accepts a chunked body under the limit."""

        def chunks() -> Iterator[bytes]:
            yield b'{"title": '
            yield b'"chunked"}'

        response = http.post("/api/epics", content=chunks(), headers={"Content-Type": "application/json"})
        assert created(response)["title"] == "chunked"

    def test_setting(self) -> None:
        """Defaults to 1 MiB; 0 turns the limit off; anything else but a count of bytes is refused."""
        assert max_body_bytes({}) == DEFAULT_MAX_BODY_BYTES == 1024 * 1024
        assert max_body_bytes({"MAX_REQUEST_BODY_BYTES": "0"}) == 0
        with pytest.raises(SettingsError, match="MAX_REQUEST_BODY_BYTES is '1MB'"):
            max_body_bytes({"MAX_REQUEST_BODY_BYTES": "1MB"})

    def test_malformed_setting_stops_the_start(self) -> None:
        """Fails the server's start-up (uvicorn exits 3) naming the variable, instead of answering 500s."""
        server = Served(server_env("postgresql://u:p@127.0.0.1:1/none", MAX_REQUEST_BODY_BYTES="1MB"))
        try:
            assert server.proc.wait(30) == 3
        finally:
            server.stop()
        assert "MAX_REQUEST_BODY_BYTES is '1MB'" in server.output()


class TestConditionalRequests:
    """A GET returns an ETag; PATCH, PUT and DELETE with a stale If-Match get 412 and change nothing."""

    @pytest.mark.parametrize("kind", ["epics", "features", "stories"])
    def test_etag_moves_with_each_change(self, http: httpx.Client, kind: str) -> None:
        """Returns the same ETag until the resource changes, and the new one with the change."""
        feature = new_feature(http)
        resource = {
            "epics": lambda: new_epic(http),
            "features": lambda: feature,
            "stories": lambda: created(http.post(f"/api/features/{feature['id']}/stories", json=STORY)),
        }[kind]()
        url = f"/api/{kind}/{resource['id']}"
        first = http.get(url).headers["ETag"]
        assert first.startswith('"') and http.get(url).headers["ETag"] == first
        changed = http.patch(url, json={"title": "Renamed"}, headers={"If-Match": first})
        assert changed.status_code == 200, changed.text
        assert changed.headers["ETag"] != first
        assert http.get(url).headers["ETag"] == changed.headers["ETag"]

    def test_stale_patch_refused(self, http: httpx.Client) -> None:
        """Answers 412 with the current ETag to a PATCH based on an old version; the change is not applied."""
        epic = new_epic(http)
        url = f"/api/epics/{epic['id']}"
        seen = http.get(url).headers["ETag"]
        mine = http.patch(url, json={"title": "First editor"}, headers={"If-Match": seen})
        assert mine.status_code == 200
        theirs = http.patch(url, json={"title": "Second editor"}, headers={"If-Match": seen})
        assert theirs.status_code == 412
        assert theirs.headers["ETag"] == mine.headers["ETag"]
        assert "changed" in theirs.json()["detail"]
        assert http.get(url).json()["title"] == "First editor"

    def test_stale_stage_change_and_delete_refused(self, http: httpx.Client) -> None:
        """Answers 412 to a stale PUT /stage and a stale DELETE, which then change nothing."""
        epic = new_epic(http, **CONTENT)
        url = f"/api/epics/{epic['id']}"
        stale = http.get(url).headers["ETag"]
        assert http.patch(url, json={"description": "Edited"}).status_code == 200  # no If-Match: unconditional
        stage = http.put(f"{url}/stage", json={"stage": "problem_confirmed"}, headers={"If-Match": stale})
        assert stage.status_code == 412
        assert http.delete(url, headers={"If-Match": stale}).status_code == 412
        assert http.get(url).json()["stage"] == "problem_capture"
        current = http.get(url).headers["ETag"]
        assert http.delete(url, headers={"If-Match": current}).status_code == 204

    def test_weak_and_wildcard(self, http: httpx.Client) -> None:
        """Compares strongly (a weak W/ tag never matches, RFC 9110) and accepts * and a list of tags."""
        epic = new_epic(http)
        url = f"/api/epics/{epic['id']}"
        current = http.get(url).headers["ETag"]
        assert http.patch(url, json={"title": "a"}, headers={"If-Match": f"W/{current}"}).status_code == 412
        assert http.patch(url, json={"title": "b"}, headers={"If-Match": "*"}).status_code == 200
        current = http.get(url).headers["ETag"]
        assert http.patch(url, json={"title": "c"}, headers={"If-Match": f'"x", {current}'}).status_code == 200

    def test_concurrent_patches_with_the_same_etag(self, http: httpx.Client, server: Served) -> None:
        """Lets exactly one of several concurrent PATCHes with the same If-Match win; the others get 412."""
        epic = new_epic(http)
        url = f"/api/epics/{epic['id']}"
        seen = http.get(url).headers["ETag"]
        editors = 6
        barrier = threading.Barrier(editors)
        statuses: list[int] = []

        def edit(n: int) -> None:
            with httpx.Client(base_url=server.url, timeout=10) as own:
                barrier.wait(10)
                response = own.patch(url, json={"title": f"Editor {n}"}, headers={"If-Match": seen})
                statuses.append(response.status_code)

        threads = [threading.Thread(target=edit, args=(n,)) for n in range(editors)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(statuses) == [200] + [412] * (editors - 1)
        assert http.get(url).headers["ETag"] != seen


class TestProductRules:
    """The original JarlPM's rules: confirmed content must exist; a locked epic stays."""

    def test_locked_epic_cannot_be_deleted(self, http: httpx.Client) -> None:
        """Answers 409 naming the rule to a DELETE of a locked epic, which stays."""
        epic = locked_epic(http)
        response = http.delete(f"/api/epics/{epic['id']}")
        assert response.status_code == 409
        assert "a locked epic cannot be deleted" in response.json()["detail"]
        assert http.get(f"/api/epics/{epic['id']}").status_code == 200

    @pytest.mark.parametrize(
        ("filled", "stage", "missing"),
        [
            ({}, "problem_confirmed", "problem_statement"),
            ({"problem_statement": "p"}, "outcome_confirmed", "desired_outcome"),
            ({"problem_statement": "p", "desired_outcome": "o"}, "epic_locked", "description"),
        ],
    )
    def test_stage_needs_what_it_confirms(
        self, http: httpx.Client, filled: dict[str, str], stage: str, missing: str
    ) -> None:
        """Refuses with 409 naming the field to confirm a stage whose content is missing or blank."""
        epic = new_epic(http, **filled, description="  ")
        url = f"/api/epics/{epic['id']}"
        order = ["problem_confirmed", "outcome_capture", "outcome_confirmed", "epic_drafted", "epic_locked"]
        for before in order[: order.index(stage)]:
            assert http.put(f"{url}/stage", json={"stage": before}).status_code == 200
        response = http.put(f"{url}/stage", json={"stage": stage})
        assert response.status_code == 409
        assert missing in response.json()["detail"]

    def test_confirmed_content_cannot_be_cleared(self, http: httpx.Client) -> None:
        """Refuses with 409 to clear a confirmed problem statement; accepts it sent with the move."""
        epic = new_epic(http)
        url = f"/api/epics/{epic['id']}"
        moved = http.patch(url, json={"problem_statement": "Sign-up loses users", "stage": "problem_confirmed"})
        assert moved.status_code == 200, moved.text
        cleared = http.patch(url, json={"problem_statement": None})
        assert cleared.status_code == 409
        assert "problem_statement" in cleared.json()["detail"]


class TestLists:
    """Lists filter by stage, status and priority, sort, and keep offsets bounded."""

    def test_filter_and_sort_epics(self, http: httpx.Client) -> None:
        """Filters epics by stage and sorts them by title, descending."""
        marker = "Filter-and-sort"
        ids = [new_epic(http, title=f"{marker} {letter}", **CONTENT)["id"] for letter in "bca"]
        assert http.put(f"/api/epics/{ids[1]}/stage", json={"stage": "problem_confirmed"}).status_code == 200
        confirmed = http.get("/api/epics", params={"stage": "problem_confirmed", "limit": 200}).json()
        assert ids[1] in [item["id"] for item in confirmed["items"]]
        assert {item["stage"] for item in confirmed["items"]} == {"problem_confirmed"}
        listed = http.get("/api/epics", params={"sort": "-title", "limit": 200}).json()["items"]
        mine = [item["title"] for item in listed if item["title"].startswith(marker)]
        assert mine == [f"{marker} c", f"{marker} b", f"{marker} a"]

    def test_filter_features_and_stories(self, http: httpx.Client) -> None:
        """Filters an epic's features by status and priority, and a feature's stories by status."""
        epic = new_epic(http)
        base = f"/api/epics/{epic['id']}/features"
        must = created(http.post(base, json={"title": "a", "priority": "must_have", "status": "done"}))
        created(http.post(base, json={"title": "b", "priority": "could_have"}))
        assert [f["id"] for f in http.get(base, params={"priority": "must_have"}).json()["items"]] == [must["id"]]
        assert [f["id"] for f in http.get(base, params={"status": "done"}).json()["items"]] == [must["id"]]
        stories = f"/api/features/{must['id']}/stories"
        ready = created(http.post(stories, json={**STORY, "status": "ready"}))
        created(http.post(stories, json=STORY))
        listed = http.get(stories, params={"status": "ready"}).json()
        assert ([s["id"] for s in listed["items"]], listed["total"]) == ([ready["id"]], 1)

    @pytest.mark.parametrize("params", [{"offset": 10_001}, {"sort": "stage"}, {"stage": "shipped"}])
    def test_bounded_and_checked(self, http: httpx.Client, params: dict[str, Any]) -> None:
        """Refuses an offset beyond 10000, an unknown sort key and an unknown stage with 422."""
        assert http.get("/api/epics", params=params).status_code == 422

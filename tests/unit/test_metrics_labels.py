"""The pure parts of metrics: route templates, process states, restart reasons, the supervisor's families."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from supervisor.server.httpmetrics import UNMATCHED, HttpMetrics, route_template
from supervisor.supervision import metrics


def call(app: Any, path: str, method: str = "GET") -> int:
    """One HTTP request through an ASGI app, in-process; returns the status."""
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "root_path": "",
             "query_string": b"", "headers": [], "http_version": "1.1", "scheme": "http",
             "server": ("test", 80), "client": ("test", 1)}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return int(next(m["status"] for m in sent if m["type"] == "http.response.start"))


def nested_app() -> FastAPI:
    inner = APIRouter(prefix="/epics")

    @inner.get("/{epic_id}")
    def get_epic(epic_id: int) -> dict[str, int]:
        return {"id": epic_id}

    outer = APIRouter(prefix="/api")
    outer.include_router(inner)
    app = FastAPI()
    app.include_router(outer)
    return app


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


class TestHttpMetrics:
    """The middleware labels by route template, never by raw path."""

    def test_nested_routers_give_the_full_template(self) -> None:
        """/api/epics/5 and /api/epics/6 are one series, /api/epics/{epic_id}; a miss is ``unmatched``."""
        registry = CollectorRegistry()
        app = HttpMetrics(nested_app(), registry)
        assert call(app, "/api/epics/5") == 200 and call(app, "/api/epics/6") == 200
        assert call(app, "/api/nothing/here") == 404
        assert call(app, "/api/epics/5", method="BREW") == 405
        found = samples(registry)
        ok = ("jarlpm_http_requests_total", (("method", "GET"), ("route", "/api/epics/{epic_id}"), ("status", "200")))
        assert found[ok] == 2
        assert found[("jarlpm_http_requests_total", (("method", "GET"), ("route", UNMATCHED), ("status", "404")))] == 1
        assert not [k for k in found if "/api/epics/5" in str(k)]
        assert any(k[0] == "jarlpm_http_requests_total" and ("method", "other") in k[1] for k in found)

    def test_route_template_without_router(self) -> None:
        """A plain ASGI app records no route: ``unmatched``; a mount's root_path is kept."""
        assert route_template({"path": "/x"}) == UNMATCHED

        class Route:
            path = "/items/{id}"

        assert route_template({"route": Route(), "root_path": "/v1"}) == "/v1/items/{id}"


class TestSupervisorFigures:
    """What only the loop knows, as label values from small fixed sets."""

    def test_process_state(self) -> None:
        assert [metrics.process_state(r, s) for r, s in ((False, False), (True, False), (True, True))] == [
            "starting", "ready", "draining"]

    def test_restart_reason(self) -> None:
        assert metrics.restart_reason(True, True, True) == "unresponsive"
        assert metrics.restart_reason(False, False, True) == "startup_failed"
        assert metrics.restart_reason(True, False, True) == "killed"
        assert metrics.restart_reason(True, False, False) == "exited"

    def test_families(self) -> None:
        """The recorder's figures come out as Prometheus families with their units and labels."""
        recorder = metrics.Recorder()
        recorder.restart("killed")
        recorder.restart("killed")
        recorder.reload("success")
        recorder.phase("migrate", 0.25)

        class Proc:
            def __init__(self, ready: bool, stopping: bool, alive: bool = True) -> None:
                self.ready, self.stop_requested, self.alive = ready, stopping, alive

        recorder.observe_processes([Proc(True, False), Proc(False, False), Proc(True, True), Proc(True, False, False)])
        registry = CollectorRegistry()
        registry.register(metrics._SupervisorCollector(recorder))  # type: ignore[arg-type]
        found = samples(registry)
        assert found[("jarlpm_server_restarts_total", (("reason", "killed"),))] == 2
        assert found[("jarlpm_reloads_total", (("result", "success"),))] == 1
        assert found[("jarlpm_phase_duration_seconds", (("phase", "migrate"),))] == 0.25
        assert [found[("jarlpm_server_processes", (("state", s),))] for s in metrics.STATES] == [1, 1, 1]

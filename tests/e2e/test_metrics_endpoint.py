"""Prometheus metrics served by the supervisor: exact counts over processes, deaths, restarts, crash loops."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from typing import Any

import pytest
from procs import APPS, base_env, http_get, running, wait_for
from prometheus_client.parser import text_string_to_metric_families

from supervisor.database.pgcluster import free_port

SAMPLE = {"JARLPM_APP": "sampleapp:app", "JARLPM_APP_DIR": str(APPS)}


def scrape(port: int) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """The text and every sample, parsed by prometheus_client's own parser: (name, labels) -> value."""
    status, headers, body = http_get(port, "/metrics", timeout=10)
    assert status == 200 and headers["content-type"].startswith("text/plain")
    text = body.decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    return text, samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 when there are none)."""
    return sum(v for (n, lbls), v in samples.items() if n == name and set(labels.items()) <= set(lbls))


def count_of(port: int, name: str, **labels: str) -> float:
    return value(scrape(port)[1], name, **labels)


def metrics_env(database_url: str, **extra: str) -> dict[str, str]:
    return base_env(database_url, METRICS_PORT=str(free_port()), METRICS_HOST="127.0.0.1", **extra)


class TestAggregation:
    """Counts are exact over every server process, by route template, and the text is valid."""

    def test_requests_counted_exactly_over_two_processes(self, app_db: str) -> None:
        """WORKERS=2: N requests on a templated route are N, under the template; pool and phase figures too."""
        env = metrics_env(app_db, WORKERS="2")
        port = int(env["METRICS_PORT"])
        n = 40
        with running(env) as sup:
            sup.wait_event("supervisor.metrics_serving")
            sup.wait_event("supervisor.ready", timeout=90)
            for i in range(n):
                assert sup.get(f"/api/epics/{1000 + i}")[0] == 404
            for _ in range(3):
                assert sup.get("/api/health")[0] == 200
            assert sup.get("/no/such/path")[0] == 404
            answered = {e["pid"] for e in sup.find("http.access")}
            wait_for(lambda: count_of(port, "jarlpm_http_requests_total") == n + 4, 10, "every request counted")
            text, samples = scrape(port)
            # The route's template, never the raw path: 40 ids are one series.
            assert value(samples, "jarlpm_http_requests_total", method="GET", route="/api/epics/{epic_id}",
                         status="404") == n
            assert value(samples, "jarlpm_http_requests_total", route="/api/health", status="200") == 3
            assert value(samples, "jarlpm_http_requests_total", route="unmatched", status="404") == 1
            assert "/api/epics/1000" not in text
            assert value(samples, "jarlpm_http_request_duration_seconds_count", route="/api/epics/{epic_id}") == n
            assert value(samples, "jarlpm_server_processes", state="ready") == 2
            assert value(samples, "jarlpm_server_processes", state="starting") == 0
            for phase in ("validate_env", "wait_for_db", "migrate", "warm_pool"):
                assert ("jarlpm_phase_duration_seconds", (("phase", phase),)) in samples
            assert value(samples, "jarlpm_db_pool_checked_out") == 0
            assert value(samples, "jarlpm_db_pool_waiting") == 0
            assert ("jarlpm_db_pool_timeouts_total", ()) in samples
            assert ("jarlpm_db_pool_checkout_wait_seconds_count", ()) in samples
            assert len(answered) == 2  # both processes served (keep-alive off: each request a new connection)
        promtool = shutil.which("promtool")
        if promtool is not None:  # else test_promtool_is_installed says why this part did not run
            check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                                   timeout=30)
            # Names, units, types and help text follow Prometheus' conventions: promtool has nothing to say.
            assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), (
                check.stdout + check.stderr)

    def test_promtool_is_installed(self) -> None:
        """The text-format check above needs promtool; without it, say so here instead of passing silently."""
        if shutil.which("promtool") is None:
            pytest.skip("promtool is not installed and could not be (Debian's `prometheus` package: "
                        "apt-get install prometheus; .ci/run and `make test` try): the text was not checked")

    def test_port_taken_is_a_warning_not_an_outage(self, app_db: str) -> None:
        """METRICS_PORT held by another process: supervisor.metrics_unavailable, and the API serves anyway."""
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            env = base_env(app_db, **SAMPLE, METRICS_PORT=str(holder.getsockname()[1]), METRICS_HOST="127.0.0.1")
            with running(env) as sup:
                event = sup.wait_event("supervisor.metrics_unavailable")
                sup.wait_event("supervisor.ready")
                assert sup.get("/pid")[0] == 200
            assert event["level"] == "warning" and "METRICS_PORT" in event["hint"]

    def test_off_by_default(self, app_db: str) -> None:
        """Without METRICS_PORT nothing listens and the server processes get no metrics directory."""
        with running(base_env(app_db, **SAMPLE)) as sup:
            sup.wait_event("supervisor.ready")
            pid = sup.find("supervisor.ready")[0]["pids"][0]
            with open(f"/proc/{pid}/environ", "rb") as handle:
                assert b"PROMETHEUS_MULTIPROC_DIR" not in handle.read()
        assert not sup.find("supervisor.metrics_serving")


def promtool_available() -> bool:
    return shutil.which("promtool") is not None


class TestPoolFigures:
    """The backend's pool tracker feeds the pool gauges, the timeout counter and the wait histogram."""

    def test_leak_then_timeout(self, app_db: str) -> None:
        """A leaked connection shows as checked out; the next checkout waits DB_POOL_TIMEOUT, then counts a timeout."""
        env = metrics_env(app_db, JARLPM_APP="poolapp:app", JARLPM_APP_DIR=str(APPS), DB_POOL_SIZE="1",
                          DB_MAX_OVERFLOW="0", DB_POOL_TIMEOUT="1")
        port = int(env["METRICS_PORT"])
        with running(env) as sup:
            sup.wait_event("supervisor.ready")
            assert sup.get("/test/leak")[0] == 200
            assert count_of(port, "jarlpm_db_pool_checked_out") == 1
            assert sup.get("/api/epics", timeout=30)[0] == 503
            _, samples = scrape(port)
            assert value(samples, "jarlpm_db_pool_timeouts_total") == 1
            # Every checkout is observed (warm-up, the leak, the one that timed out); only the last waited.
            assert value(samples, "jarlpm_db_pool_checkout_wait_seconds_count") >= 2
            assert 0.9 <= value(samples, "jarlpm_db_pool_checkout_wait_seconds_sum") < 5
            assert value(samples, "jarlpm_db_pool_checkout_wait_seconds_bucket", le="0.5") == \
                value(samples, "jarlpm_db_pool_checkout_wait_seconds_count") - 1
            assert value(samples, "jarlpm_db_pool_waiting") == 0
            assert sup.get("/test/release")[0] == 200
            assert count_of(port, "jarlpm_db_pool_checked_out") == 0


class TestProcessDeaths:
    """A process that dies keeps its counts; restarts are counted; the endpoint outlives every process."""

    def test_sigkilled_process_counts_kept_and_restart_counted(self, app_db: str) -> None:
        """SIGKILL a server process that answered: its requests still count, and the restart shows."""
        env = metrics_env(app_db, **SAMPLE, WORKERS="2", RESTART_BACKOFF_MAX="0.5")
        port = int(env["METRICS_PORT"])
        with running(env) as sup:
            sup.wait_event("supervisor.ready")
            for _ in range(30):
                assert sup.get("/pid")[0] == 200
            wait_for(lambda: count_of(port, "jarlpm_http_requests_total", route="/pid") == 30, 10, "30 counted")
            by_pid = {e["pid"] for e in sup.find("http.access")}
            victim = sorted(by_pid)[0]
            os.kill(victim, signal.SIGKILL)
            sup.wait_event("child.restarting")
            wait_for(lambda: len(sup.find("child.ready")) == 3, 30, "the replacement ready")
            _, samples = scrape(port)
            assert value(samples, "jarlpm_http_requests_total", route="/pid") == 30
            assert value(samples, "jarlpm_server_restarts_total", reason="killed") == 1
            assert value(samples, "jarlpm_server_processes", state="ready") == 2
            for _ in range(10):
                assert sup.get("/pid")[0] == 200
            wait_for(lambda: count_of(port, "jarlpm_http_requests_total", route="/pid") == 40, 10, "40 counted")
            # A reload replaces every process: their counts stay, and the reload is counted.
            sup.signal(signal.SIGHUP)
            sup.wait_event("supervisor.reloaded", timeout=60)
            wait_for(lambda: count_of(port, "jarlpm_reloads_total", result="success") == 1, 10, "reload counted")
            assert count_of(port, "jarlpm_http_requests_total", route="/pid") == 40

    def test_endpoint_answers_during_a_crash_loop(self, app_db: str) -> None:
        """No server process ever starts: /metrics still answers, showing none ready and the restarts."""
        env = metrics_env(app_db, JARLPM_APP="badapp:app", JARLPM_APP_DIR=str(APPS), CRASH_LOOP_LIMIT="1000",
                          RESTART_BACKOFF_MAX="0.2")
        port = int(env["METRICS_PORT"])
        with running(env) as sup:
            sup.wait_event("supervisor.metrics_serving")
            wait_for(lambda: count_of(port, "jarlpm_server_restarts_total", reason="startup_failed") >= 3, 60,
                     "restarts counted while nothing serves")
            _, samples = scrape(port)
            assert value(samples, "jarlpm_server_processes", state="ready") == 0
            assert not sup.find("supervisor.ready")



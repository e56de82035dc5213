"""Prometheus metrics of the whole service, served by the supervisor (``METRICS_PORT``).

Two sources, one endpoint.  The supervisor's own figures (server processes by
state, restarts, reloads, phase durations) live in ``Recorder``, which the arbiter
calls at a few named points.  The server processes' figures (HTTP requests, the
pool) are written by each process into prometheus_client's multiprocess files in a
directory the supervisor creates fresh and private at each start; a scrape sums
them.  A counter of a process that died stays in its file (so no counter goes
down), the ``livesum`` gauges of a reaped process are dropped by
``mark_process_dead``, and the endpoint runs in its own thread, so it answers
while no server process is up (a crash loop) and never waits for the loop.

Why files and not counts sent over the control channel: a SIGKILLed process
(the OOM killer) would lose whatever it had not sent yet, and the request path
would pay for the batching anyway; a shared-memory increment costs about a
microsecond (see bench's instrumentation scenario).
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterable, Iterator
from typing import Any

METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"
STARTING, READY, DRAINING = "starting", "ready", "draining"  # jarlpm_server_processes{state}
STATES = (STARTING, READY, DRAINING)


class Recorder:
    """The supervisor's own figures; written by the loop, read by the endpoint's thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.processes = dict.fromkeys(STATES, 0)
        self.restarts: dict[str, int] = {}
        self.reloads: dict[str, int] = {}
        self.phases: dict[str, float] = {}
        self.directory: str | None = None  # the multiprocess directory, when metrics are on

    # -- the arbiter's hooks ---------------------------------------------------------------
    def observe_processes(self, processes: Iterable[Any]) -> None:
        """Count the server processes by state (called once per turn of the loop)."""
        counts = dict.fromkeys(STATES, 0)
        for proc in processes:
            if proc.alive:
                counts[process_state(proc.ready, proc.stop_requested)] += 1
        with self._lock:
            self.processes = counts

    def restart(self, reason: str) -> None:
        with self._lock:
            self.restarts[reason] = self.restarts.get(reason, 0) + 1

    def reload(self, result: str) -> None:
        with self._lock:
            self.reloads[result] = self.reloads.get(result, 0) + 1

    def phase(self, name: str, seconds: float) -> None:
        with self._lock:
            self.phases[name] = seconds

    def process_exited(self, pid: int) -> None:
        """Drop a reaped process's live gauges (its counters stay)."""
        if self.directory is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid, self.directory)  # type: ignore[no-untyped-call]

    # -- the endpoint's side -----------------------------------------------------------------
    def snapshot(self) -> tuple[dict[str, int], dict[str, int], dict[str, int], dict[str, float]]:
        with self._lock:
            return dict(self.processes), dict(self.restarts), dict(self.reloads), dict(self.phases)


def process_state(ready: bool, stopping: bool) -> str:
    """``draining`` once asked to stop, else ``ready`` or ``starting``."""
    if stopping:
        return DRAINING
    return READY if ready else STARTING


def restart_reason(was_ready: bool, unresponsive: bool, killed_by_signal: bool) -> str:
    """Why a process is being restarted, as a bounded label value."""
    if unresponsive:
        return "unresponsive"
    if not was_ready:
        return "startup_failed"
    return "killed" if killed_by_signal else "exited"


RECORDER = Recorder()


class _SupervisorCollector:
    """Turns the recorder's figures into metric families at each scrape."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        processes, restarts, reloads, phases = self.recorder.snapshot()
        gauge = GaugeMetricFamily("jarlpm_server_processes", "Server processes by state.", labels=["state"])
        for state in STATES:
            gauge.add_metric([state], processes.get(state, 0))
        yield gauge
        counter = CounterMetricFamily("jarlpm_server_restarts", "Server processes restarted, by why the "
                                      "previous one ended.", labels=["reason"])
        for reason, count in sorted(restarts.items()):
            counter.add_metric([reason], count)
        yield counter
        counter = CounterMetricFamily("jarlpm_reloads", "Reloads (SIGHUP), by result.", labels=["result"])
        for result, count in sorted(reloads.items()):
            counter.add_metric([result], count)
        yield counter
        gauge = GaugeMetricFamily("jarlpm_phase_duration_seconds", "Duration of the last run of each phase.",
                                  labels=["phase"])
        for name, seconds in phases.items():
            gauge.add_metric([name], seconds)
        yield gauge


class MetricsEndpoint:
    """``GET /metrics`` on METRICS_HOST:METRICS_PORT, in a thread of the supervisor.

    Not prometheus_client's ``start_http_server``: its ``serve_forever`` polls twice a
    second for a shutdown flag, and the supervisor must sleep at rest (issue #17).  This
    thread sleeps in ``select`` until a scrape arrives or ``close`` writes to its pipe.
    """

    def __init__(self, host: str, port: int, recorder: Recorder = RECORDER) -> None:
        from prometheus_client import CollectorRegistry, make_wsgi_app
        from prometheus_client.multiprocess import MultiProcessCollector

        # Fresh at each start (mkdtemp: mode 0700), so no file of a previous run is summed.
        self.directory = tempfile.mkdtemp(prefix="jarlpm-metrics-")
        self.recorder = recorder
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry, path=self.directory)  # type: ignore[no-untyped-call]
        registry.register(_SupervisorCollector(recorder))
        try:
            self.server = _bind(host, port, make_wsgi_app(registry))
        except OSError:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise
        self._wake_read, self._wake_write = os.pipe()
        self.thread = threading.Thread(target=self._serve, name="metrics", daemon=True)
        self.thread.start()
        recorder.directory = self.directory

    def _serve(self) -> None:
        while True:
            readable, _, _ = select.select([self.server, self._wake_read], [], [])
            if self._wake_read in readable:
                return
            self.server.handle_request()  # ready: accepts at once, answers in its own thread

    def close(self) -> None:
        self.recorder.directory = None
        os.write(self._wake_write, b"x")
        self.thread.join(5)
        self.server.server_close()
        for fd in (self._wake_read, self._wake_write):
            os.close(fd)
        shutil.rmtree(self.directory, ignore_errors=True)


def _bind(host: str, port: int, app: Any) -> Any:
    """The server on ``host`` (an IPv6 address gets an IPv6 socket) and ``port``.

    Imported here: http.server and its imports cost the supervisor memory, and only
    METRICS_PORT needs them.
    """
    import socketserver
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

    family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                   flags=socket.AI_PASSIVE)[0]

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
            """A scrape is not an event: nothing on stderr."""

    class Server(socketserver.ThreadingMixIn, WSGIServer):
        address_family = family
        daemon_threads = True  # a scrape in progress does not hold the supervisor's exit

    server = Server((str(sockaddr[0]), port), QuietHandler)
    server.set_app(app)
    return server

"""Specifications of the status socket's protocol: one request line in, one JSON line out, never blocking."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.supervision import reloadcli, status
from supervisor.supervision.status import StatusServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StatusServer]:
    srv = StatusServer(tmp_path / "jarlpm.sock")
    yield srv
    srv.close()


def connect(server: StatusServer) -> socket.socket:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(5)
    client.connect(str(server.path))
    return client


def requests_until(server: StatusServer, count: int, now: float | None = None) -> list[tuple[str, socket.socket]]:
    found: list[tuple[str, socket.socket]] = []
    deadline = time.monotonic() + 5
    while len(found) < count and time.monotonic() < deadline:
        found += server.requests(time.monotonic() if now is None else now)
    return found


class TestRequests:
    """The loop collects complete requests without ever waiting on a client."""

    def test_a_request_line_names_the_request(self, server: StatusServer) -> None:
        with connect(server) as client:
            client.sendall(b"reload\n")
            [(what, conn)] = requests_until(server, 1)
            assert what == status.RELOAD
            server.answer(conn, {"result": "reloaded"})
            assert json.loads(client.recv(1024)) == {"result": "reloaded"}

    def test_a_silent_client_gets_the_status_after_the_short_deadline(self, server: StatusServer) -> None:
        """Clients of earlier releases only read: they still get the snapshot."""
        with connect(server):
            assert server.requests(time.monotonic()) == []
            assert len(server.pending()) == 1 and server.next_deadline() is not None
            [(what, _)] = requests_until(server, 1, now=time.monotonic() + status.REQUEST_WAIT + 0.01)
            assert what == status.STATUS and server.pending() == []

    def test_a_client_that_hangs_up_unasked_is_dropped(self, server: StatusServer) -> None:
        """The probe a second supervisor makes at start-up is not a request."""
        connect(server).close()
        assert server.requests(time.monotonic()) == []  # accepted, then read: end of file
        deadline = time.monotonic() + 5
        while server.pending() and time.monotonic() < deadline:
            assert server.requests(time.monotonic()) == []
        assert server.pending() == []

    def test_request_reads_the_one_answer(self, server: StatusServer, tmp_path: Path) -> None:
        """The client end: send the line, read until the supervisor closes, within the deadline."""
        with connect(server) as client:
            client.sendall(b"status\n")
            [(_, conn)] = requests_until(server, 1)
        server.answer(conn, {"state": "running"})  # the first client left: not an error
        with pytest.raises(TimeoutError):
            status.request(status.RELOAD, server.path, timeout=0.3)


class TestRenderReload:
    """`jarlpm reload` tells a person the outcome in one line, with the hint when it failed."""

    def test_reloaded(self) -> None:
        text = reloadcli.render({"result": "reloaded", "exit_code": 0, "pids": [12, 13]})
        assert text == "jarlpm reload: reloaded; every server process runs the new code (pids 12, 13)"

    def test_failed(self) -> None:
        text = reloadcli.render({"result": "failed", "reason": "migrate", "exit_code": 65,
                                 "error": "x_fails: column exists", "hint": "fix it"})
        assert text.splitlines() == ["jarlpm reload: failed (migrate): x_fails: column exists", "  hint: fix it"]

"""Specifications of ``supervisor.supervision.backlog``: queued connections are answered, not reset."""

from __future__ import annotations

import http.client
import socket
import threading

from supervisor.supervision import backlog


class TestAnswerAndClose:
    """Every connection in the accept queue gets a 503 that says to retry; later ones are refused."""

    def test_queued_clients_get_503_with_retry_after(self) -> None:
        listener = socket.create_server(("127.0.0.1", 0), backlog=16)
        port = listener.getsockname()[1]
        conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=5) for _ in range(3)]
        for conn in conns:
            conn.request("GET", "/pid")  # queued: nobody accepts yet
        answered: list[int] = []
        worker = threading.Thread(target=lambda: answered.append(backlog.answer_and_close(listener)))
        worker.start()
        responses = [conn.getresponse() for conn in conns]
        worker.join(5)
        assert answered == [3]
        for resp in responses:
            assert resp.status == 503
            assert resp.getheader("Retry-After") == "1" and resp.getheader("Connection") == "close"
            assert b"stopping" in resp.read()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            refused = False
        except ConnectionRefusedError:
            refused = True
        assert refused

    def test_nothing_queued(self) -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        assert backlog.answer_and_close(listener) == 0
        assert listener.fileno() == -1

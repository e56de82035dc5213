"""Clients on loopback: threads looping on GET (bounded in time and count), and one-shot bursts.

Every request is classified the way a client sees it: ``ok`` (200), ``refused``
(ECONNREFUSED: nothing listens), ``failed`` (reset, closed without an answer,
timeout, or a non-200 status).  Samples keep their start and end times so a
scenario can split them around the moment it broke something.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from dataclasses import dataclass

HOST = "127.0.0.1"
PAUSE_AFTER_ERROR = 0.01  # a client that was refused retries after 10 ms, not in a hot loop


@dataclass(frozen=True)
class Sample:
    started: float
    ended: float
    outcome: str  # ok | refused | failed
    detail: str = ""

    @property
    def latency(self) -> float:
        return self.ended - self.started


def request(conn: http.client.HTTPConnection, path: str, close: bool) -> tuple[str, str]:
    """One GET on ``conn``; returns (outcome, detail)."""
    try:
        conn.request("GET", path, headers={"Connection": "close"} if close else {})
        response = conn.getresponse()
        response.read()
    except ConnectionRefusedError:
        return "refused", "ECONNREFUSED"
    except (OSError, http.client.HTTPException) as exc:
        return "failed", type(exc).__name__
    if response.status != 200:
        return "failed", f"HTTP {response.status}"
    return "ok", ""


class LoopingClients:
    """``threads`` clients, each sending GETs back to back (with ``think`` seconds between).

    Bounded: every thread stops at ``stop()``, at ``max_seconds`` or after
    ``max_requests`` requests, whichever comes first.
    """

    def __init__(self, port: int, path: str, threads: int = 4, think: float = 0.005,
                 keepalive: bool = False, timeout: float = 15.0, max_seconds: float = 60.0,
                 max_requests: int = 50_000) -> None:
        self.port = port
        self.path = path
        self.think = think
        self.keepalive = keepalive
        self.timeout = timeout
        self.max_requests = max_requests
        self.deadline = time.monotonic() + max_seconds
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, name=f"client-{i}", daemon=True)
                         for i in range(threads)]

    def start(self) -> LoopingClients:
        for thread in self._threads:
            thread.start()
        return self

    def run_for(self, seconds: float) -> list[Sample]:
        """Start, let the clients run for ``seconds``, stop; the samples."""
        self.start()
        self._stop.wait(seconds)
        return self.stop()

    def stop(self) -> list[Sample]:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)
        with self._lock:
            return sorted(self.samples, key=lambda s: s.started)

    def _client(self) -> None:
        conn: http.client.HTTPConnection | None = None
        for _ in range(self.max_requests):
            if self._stop.is_set() or time.monotonic() > self.deadline:
                break
            if conn is None:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
            started = time.monotonic()
            outcome, detail = request(conn, self.path, close=not self.keepalive)
            ended = time.monotonic()
            with self._lock:
                self.samples.append(Sample(started, ended, outcome, detail))
            if outcome != "ok" or not self.keepalive:
                conn.close()
                conn = None
            pause = PAUSE_AFTER_ERROR if outcome != "ok" else self.think
            if pause:
                self._stop.wait(pause)
        if conn is not None:
            conn.close()

    def first_ok_after(self, moment: float) -> float | None:
        """End time of the first successful request sent at or after ``moment``."""
        with self._lock:
            ends = [s.ended for s in self.samples if s.outcome == "ok" and s.started >= moment]
        return min(ends) if ends else None


def burst(port: int, path: str, count: int, timeout: float = 30.0,
          sent: threading.Semaphore | None = None) -> list[Sample]:
    """``count`` requests released together (a barrier), one connection each; waits for all.

    ``sent`` is released once per request whose bytes have been written, so a
    caller can act while they are all in flight.
    """
    barrier = threading.Barrier(count)
    results: list[Sample] = []
    lock = threading.Lock()

    def one() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
        try:
            barrier.wait(timeout)
            started = time.monotonic()
            try:
                conn.request("GET", path, headers={"Connection": "close"})
                if sent is not None:
                    sent.release()
                response = conn.getresponse()
                response.read()
                outcome, detail = ("ok", "") if response.status == 200 else ("failed", f"HTTP {response.status}")
            except ConnectionRefusedError:
                outcome, detail = "refused", "ECONNREFUSED"
            except (OSError, http.client.HTTPException) as exc:
                outcome, detail = "failed", type(exc).__name__
            with lock:
                results.append(Sample(started, time.monotonic(), outcome, detail))
        finally:
            conn.close()

    threads = [threading.Thread(target=one, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 10)
    return results


def tally(samples: list[Sample]) -> Counter[str]:
    return Counter(s.outcome for s in samples)

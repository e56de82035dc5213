"""Bounded loopback load for process tests: threads requesting in a loop, counting outcomes."""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    ok: int = 0
    refused: int = 0
    failed: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    pids: set[int] = field(default_factory=set)
    max_latency: float = 0.0  # seconds, the slowest answered request


class Load:
    """``threads`` clients GET ``path`` in a loop until stopped, at most ``max_seconds`` long."""

    def __init__(self, port: int, path: str = "/pid", threads: int = 4, max_seconds: float = 60,
                 max_requests: int = 100_000) -> None:
        self.port = port
        self.path = path
        self.result = LoadResult()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + max_seconds
        self._remaining = max_requests
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> LoadResult:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        return self.result

    def count(self) -> int:
        with self._lock:
            return self.result.ok + self.result.failed + self.result.refused

    def _loop(self) -> None:
        import json

        while not self._stop.is_set() and time.monotonic() < self._deadline:
            with self._lock:
                if self._remaining <= 0:
                    return
                self._remaining -= 1
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            started = time.monotonic()
            try:
                conn.request("GET", self.path)
                resp = conn.getresponse()
                body = resp.read()
                with self._lock:
                    self.result.max_latency = max(self.result.max_latency, time.monotonic() - started)
                    self.result.statuses[resp.status] += 1
                    if resp.status == 200:
                        self.result.ok += 1
                        try:
                            pid = json.loads(body).get("pid")
                            if pid:
                                self.result.pids.add(int(pid))
                        except ValueError:
                            pass
                    else:
                        self.result.failed += 1
            except ConnectionRefusedError as exc:
                with self._lock:
                    self.result.refused += 1
                    self.result.errors.append(repr(exc))
            except (OSError, http.client.HTTPException) as exc:
                with self._lock:
                    self.result.failed += 1
                    self.result.errors.append(repr(exc))
            finally:
                conn.close()

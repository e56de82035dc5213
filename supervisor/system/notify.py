"""systemd's notify protocol (sd_notify(3)) without a library: datagrams to $NOTIFY_SOCKET.

Follows the specification: the socket path may be a file path or an abstract name
(leading ``@``, sent as a NUL byte); each message is newline-separated KEY=VALUE
lines; the watchdog interval comes from WATCHDOG_USEC, for this process only when
WATCHDOG_PID is unset or names it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator


class Notifier:
    """Sends state changes to systemd; does nothing when not started by a notify unit."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ if env is None else env)
        self.address = self._address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_interval = self._watchdog_interval(env)
        self._last_watchdog = 0.0
        self._sock: socket.socket | None = None
        if self.address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        # Children must not inherit the socket and notify on our behalf.
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            os.environ.pop(name, None)

    @staticmethod
    def _address(path: str) -> str | None:
        if not path:
            return None
        if path.startswith("@"):
            return "\0" + path[1:]
        if path.startswith("/"):
            return path
        return None  # vsock and other families: not used by systemd for services here

    @staticmethod
    def _watchdog_interval(env: dict[str, str]) -> float | None:
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if not usec.isdigit() or int(usec) == 0:
            return None
        if pid and pid != str(os.getpid()):
            return None
        # Ping at half the interval, as sd_watchdog_enabled(3) recommends.
        return int(usec) / 1_000_000 / 2

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, **fields: object) -> None:
        """Send KEY=VALUE lines, e.g. ``send(READY=1, STATUS="serving")``."""
        if self._sock is None or self.address is None:
            return
        message = "\n".join(f"{key}={value}" for key, value in fields.items())
        with contextlib.suppress(OSError):
            self._sock.sendto(message.encode(), self.address)

    def ready(self, status: str) -> None:
        self.send(READY=1, STATUS=status)

    def status(self, status: str) -> None:
        self.send(STATUS=status)

    def stopping(self, status: str = "stopping") -> None:
        self.send(STOPPING=1, STATUS=status)

    def reloading(self) -> None:
        # MONOTONIC_USEC lets systemd ≥ 253 tell this reload from an earlier one.
        usec = int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1_000_000)
        self.send(RELOADING=1, STATUS="reloading", MONOTONIC_USEC=usec)

    def extend_timeout(self, seconds: float) -> None:
        self.send(EXTEND_TIMEOUT_USEC=int(seconds * 1_000_000))

    def watchdog(self, healthy: bool) -> None:
        """Ping the watchdog, but only while every server process is healthy."""
        if self.watchdog_interval is None or not healthy:
            return
        now = time.monotonic()
        if now - self._last_watchdog >= self.watchdog_interval:
            self._last_watchdog = now
            self.send(WATCHDOG=1)

    def watchdog_due(self, now: float) -> float | None:
        """When the loop must next wake for ``watchdog`` (None: no watchdog).

        Overdue means the last turn found a process unhealthy and sent nothing: look
        again a quarter of an interval later rather than spinning.
        """
        if self.watchdog_interval is None:
            return None
        due = self._last_watchdog + self.watchdog_interval
        return due if due > now else now + self.watchdog_interval / 4

    @contextlib.contextmanager
    def keepalive(self) -> Iterator[None]:
        """Ping the watchdog from a thread while the start-up phases run.

        The phases block the loop but each has its own deadline (DB_WAIT_TIMEOUT,
        MIGRATION_LOCK_TIMEOUT, ...), so a long database wait must not look like a hang.
        """
        if self.watchdog_interval is None:
            yield
            return
        done = threading.Event()
        interval = self.watchdog_interval

        def ping() -> None:
            while not done.wait(interval):
                self.send(WATCHDOG=1)

        thread = threading.Thread(target=ping, name="watchdog-keepalive", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(1)

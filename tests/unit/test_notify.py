"""Specifications of ``supervisor.system.notify``: sd_notify datagrams, checked on a real Unix datagram socket."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from supervisor.system.notify import Notifier

NOTIFY_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


@pytest.fixture(autouse=True)
def _clean_notify_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Notifier pops these from os.environ; monkeypatch puts back whatever was there before."""
    for name in NOTIFY_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket standing in for systemd, and its NOTIFY_SOCKET value."""
    path = tmp_path / "notify.sock"
    assert len(str(path)) < 100, "AF_UNIX paths are limited to 108 bytes"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        yield sock, str(path)


@pytest.fixture
def abstract_listener() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket in Linux's abstract namespace, as NOTIFY_SOCKET=@name addresses it."""
    name = f"jarlpm-unit-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        yield sock, "@" + name


def receive(sock: socket.socket, timeout: float = 2.0) -> dict[str, str]:
    sock.settimeout(timeout)
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.split("\n"))


def nothing_waiting(sock: socket.socket) -> bool:
    """sendto on a Unix datagram socket queues at once, so a non-blocking read tells."""
    sock.setblocking(False)
    try:
        sock.recv(4096)
    except BlockingIOError:
        return True
    finally:
        sock.setblocking(True)
    return False


Make = Callable[..., Notifier]


@pytest.fixture
def make() -> Iterator[Make]:
    """Notifier(env); its socket is closed afterwards (it has no close(): it lives as long as the supervisor)."""
    made: list[Notifier] = []

    def factory(env: dict[str, str] | None = None) -> Notifier:
        made.append(Notifier(env))
        return made[-1]

    yield factory
    for n in made:
        if n._sock is not None:
            n._sock.close()


@pytest.fixture
def notifier(monkeypatch: pytest.MonkeyPatch, make: Make) -> Make:
    """A Notifier built from os.environ with NOTIFY_SOCKET=address and the other variables given."""

    def factory(address: str, **env: str) -> Notifier:
        monkeypatch.setenv("NOTIFY_SOCKET", address)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        n = make()
        assert n.enabled
        return n

    return factory


class TestMessages:
    """State changes arrive as newline-separated KEY=VALUE lines."""

    def test_ready(self, notifier: Make, listener: tuple[socket.socket, str]) -> None:
        sock, address = listener
        notifier(address).ready("serving on 0.0.0.0:8001")
        assert receive(sock) == {"READY": "1", "STATUS": "serving on 0.0.0.0:8001"}

    def test_status(self, notifier: Make, listener: tuple[socket.socket, str]) -> None:
        sock, address = listener
        notifier(address).status("phase: migrate")
        assert receive(sock) == {"STATUS": "phase: migrate"}

    def test_stopping(self, notifier: Make, listener: tuple[socket.socket, str]) -> None:
        sock, address = listener
        n = notifier(address)
        n.stopping()
        n.stopping("draining")
        assert receive(sock) == {"STOPPING": "1", "STATUS": "stopping"}
        assert receive(sock) == {"STOPPING": "1", "STATUS": "draining"}

    def test_reloading(self, notifier: Make, listener: tuple[socket.socket, str]) -> None:
        sock, address = listener
        before = time.clock_gettime(time.CLOCK_MONOTONIC) * 1_000_000
        notifier(address).reloading()
        message = receive(sock)
        after = time.clock_gettime(time.CLOCK_MONOTONIC) * 1_000_000
        assert (message["RELOADING"], message["STATUS"]) == ("1", "reloading")
        assert before <= int(message["MONOTONIC_USEC"]) <= after

    def test_extend_timeout(self, notifier: Make, listener: tuple[socket.socket, str]) -> None:
        sock, address = listener
        notifier(address).extend_timeout(90.5)
        assert receive(sock) == {"EXTEND_TIMEOUT_USEC": "90500000"}

    def test_abstract_namespace(self, notifier: Make,
                                abstract_listener: tuple[socket.socket, str]) -> None:
        sock, address = abstract_listener
        n = notifier(address)
        assert n.address == "\0" + address[1:]
        n.ready("ok")
        assert receive(sock) == {"READY": "1", "STATUS": "ok"}


class TestEnvironment:
    """Without NOTIFY_SOCKET nothing is sent, and the variables are not passed on to children."""

    def test_without_notify_socket(self, make: Make, listener: tuple[socket.socket, str]) -> None:
        sock, _ = listener
        n = make()
        assert not n.enabled
        n.ready("x")
        n.stopping()
        n.watchdog(healthy=True)
        assert nothing_waiting(sock)

    @pytest.mark.parametrize("address", ["relative/path.sock", "vsock:2:1234"])
    def test_unsupported_addresses_disable_it(self, make: Make, address: str) -> None:
        assert not make({"NOTIFY_SOCKET": address}).enabled

    def test_variables_removed_from_the_environment(self, notifier: Make,
                                                    listener: tuple[socket.socket, str]) -> None:
        _, address = listener
        notifier(address, WATCHDOG_USEC="1000000", WATCHDOG_PID=str(os.getpid()))
        assert not any(name in os.environ for name in NOTIFY_VARS)

    def test_missing_socket_is_not_an_error(self, notifier: Make, tmp_path: Path) -> None:
        notifier(str(tmp_path / "gone.sock")).ready("x")


class TestWatchdog:
    """Watchdog pings go out only while healthy, at most every WATCHDOG_USEC/2, and only for our pid."""

    def test_interval_is_half_of_watchdog_usec(self, make: Make) -> None:
        assert make({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "30000000"}).watchdog_interval == 15.0

    @pytest.mark.parametrize("usec", ["", "0", "abc", "-5"])
    def test_disabled_without_a_valid_interval(self, make: Make, usec: str) -> None:
        assert make({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": usec}).watchdog_interval is None

    def test_due_tells_the_loop_when_to_wake(self, make: Make) -> None:
        """The loop sleeps until the next ping; overdue (unhealthy), it looks again a quarter interval later."""
        assert make({"NOTIFY_SOCKET": "@x"}).watchdog_due(100.0) is None
        n = make({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "8000000", "WATCHDOG_PID": str(os.getpid())})
        n._last_watchdog = 100.0
        assert n.watchdog_due(101.0) == 104.0
        assert n.watchdog_due(105.0) == 106.0

    def test_only_when_healthy(self, notifier: Make, listener: tuple[socket.socket, str]) -> None:
        sock, address = listener
        n = notifier(address, WATCHDOG_USEC="60000000")
        n.watchdog(healthy=False)
        assert nothing_waiting(sock)
        n.watchdog(healthy=True)
        assert receive(sock) == {"WATCHDOG": "1"}

    def test_at_most_every_half_interval(self, notifier: Make,
                                         listener: tuple[socket.socket, str]) -> None:
        sock, address = listener
        n = notifier(address, WATCHDOG_USEC="600000", WATCHDOG_PID=str(os.getpid()))
        n.watchdog(healthy=True)
        first = time.monotonic()
        assert receive(sock) == {"WATCHDOG": "1"}
        n.watchdog(healthy=True)
        n.watchdog(healthy=True)
        assert nothing_waiting(sock)
        deadline = first + 5.0
        while nothing_waiting(sock):
            assert time.monotonic() < deadline, "no second watchdog ping within 5 s"
            n.watchdog(healthy=True)
            time.sleep(0.01)
        assert time.monotonic() - first >= 0.3

    def test_another_process_watchdog_disables_it(self, notifier: Make,
                                                  listener: tuple[socket.socket, str]) -> None:
        sock, address = listener
        n = notifier(address, WATCHDOG_USEC="60000000", WATCHDOG_PID=str(os.getppid()))
        assert n.watchdog_interval is None
        n.watchdog(healthy=True)
        assert nothing_waiting(sock)
        n.status("still works")
        assert receive(sock) == {"STATUS": "still works"}

"""Socket activation: under systemd's protocol the supervisor serves on the socket it is handed."""

from __future__ import annotations

import shutil
import signal
import socket
import sys
import threading

import pytest
from procs import APPS, Supervisor, base_env, http_get, wait_for

from supervisor.database.pgcluster import free_port

SAMPLE = {"JARLPM_APP": "sampleapp:app", "JARLPM_APP_DIR": str(APPS)}


def refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


class TestSocketActivation:
    """``systemd-socket-activate -l 127.0.0.1:PORT … python -m supervisor run``, as the socket unit does."""

    def test_serves_on_the_handed_socket_and_binds_nothing(self, app_db: str) -> None:
        """The first connection starts it, waits in the handed socket's backlog, and is answered; PORT is not bound."""
        activate = shutil.which("systemd-socket-activate")
        if activate is None:
            pytest.skip("systemd-socket-activate is not installed (it comes with systemd)")
        handed = free_port()
        env = base_env(app_db, **SAMPLE)  # PORT: another free port, which must stay unbound
        configured = int(env["PORT"])
        # systemd-socket-activate passes only the variables it is given (-E), like systemd.
        command = [activate, "-l", f"127.0.0.1:{handed}",
                   *[f"-E{name}={value}" for name, value in env.items()],
                   sys.executable, "-m", "supervisor", "run"]
        sup = Supervisor(env, command=command)
        try:
            wait_for(lambda: any("Listening on" in line for line in sup.stderr_lines), 20, "the activator listening")
            answer: list[tuple[int, dict[str, str], bytes]] = []
            # The connection that starts the supervisor is queued, then served.
            first = threading.Thread(target=lambda: answer.append(http_get(handed, "/pid", timeout=60)))
            first.start()
            activated = sup.wait_event("supervisor.socket_activated", timeout=30)
            assert activated["listen"] == f"127.0.0.1:{handed}"
            ready = sup.wait_event("supervisor.ready", timeout=60)
            assert ready["listen"] == f"127.0.0.1:{handed}"
            first.join(60)
            assert answer and answer[0][0] == 200
            assert refuses(configured)
            sup.signal(signal.SIGTERM)
            assert sup.wait_exit(30) == 0
            assert sup.find("supervisor.stopped", exit_code=0)
        finally:
            sup.kill()
        sup.events()  # every stdout line is JSON (stderr has the activator's own messages)
